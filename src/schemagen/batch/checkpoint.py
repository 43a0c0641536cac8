"""The batch output file: JSON lines appended one whole line at a time, resumable.

Durability, and why it is enough:

- Each finished item is one ``os.write`` of one complete line to an ``O_APPEND`` file
  descriptor, right when the item finishes. Once ``write`` returns, the bytes are in the
  kernel's page cache: killing the process (even SIGKILL) can't lose them.
- ``fsync`` only protects against an OS crash or power cut. It costs milliseconds, so it
  runs at most once per ``fsync_interval`` seconds (and on close); ``0`` syncs every line.
  A crash can lose at most that last interval, and the items lost are simply redone.
- A write can still be cut short (a fatal signal during a large write, a full disk, a
  power cut). On resume, a last line that lacks its newline or isn't valid JSON is a torn
  write: it is truncated away, and that item is redone. A bad line *before* the last is
  not a torn write, so it stops the resume rather than being deleted.
- An exclusive ``flock`` keeps two processes from appending to the same file.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from schemagen.errors import ConfigurationError

try:
    import fcntl
except ImportError:  # Windows: no advisory lock
    fcntl = None  # type: ignore[assignment]


class Checkpoint:
    """An append-only JSONL file of results keyed by ``"id"``."""

    def __init__(self, path: str | os.PathLike[str], *, fsync_interval: float = 1.0) -> None:
        self.path: Path = Path(path)
        self.fsync_interval = fsync_interval
        self.truncated_bytes: int = 0  # size of the torn last line removed on resume
        self.dropped_errors: int = 0  # error records removed by retry_errors
        self.prior_errors: int = 0  # error records kept from earlier runs
        self._fd: int | None = None
        self._swap_fd: int | None = None  # the descriptor of a rewritten file (retry_errors)
        self._last_sync = 0.0
        self._dirty = False

    # ------------------------------------------------------------ opening

    def open(self, *, resume: bool = False, overwrite: bool = False, retry_errors: bool = False) -> set[str]:
        """Open for appending; returns the ids already done (empty unless resuming)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        exists = self.path.exists() and self.path.stat().st_size > 0
        if exists and not (resume or overwrite):
            raise ConfigurationError(
                f"{self.path} already holds results. Pass resume (--resume) to continue it, "
                "or overwrite (--overwrite) to start again."
            )
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        fd = os.open(self.path, flags, 0o644)
        try:
            self._lock(fd)
            if overwrite and not resume:
                os.ftruncate(fd, 0)
                return self._opened(fd, set())
            done = self._scan(fd, retry_errors=retry_errors) if exists else set()
        except BaseException:
            if self._swap_fd is None:
                os.close(fd)
            raise
        if self._swap_fd is not None:  # the file was replaced by a rewrite: append to the new one
            fd, self._swap_fd = self._swap_fd, None
        return self._opened(fd, done)

    def _opened(self, fd: int, done: set[str]) -> set[str]:
        self._fd = fd
        self._last_sync = time.monotonic()
        return done

    def _lock(self, fd: int) -> None:
        if fcntl is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigurationError(f"{self.path} is being written by another process") from None

    def _scan(self, fd: int, *, retry_errors: bool) -> set[str]:
        """The ids in the file; truncates a torn last line; drops error lines if asked."""
        done: set[str] = set()
        good_end = 0  # offset just past the last good line
        bad: tuple[int, str] | None = None  # (line number, why) of a bad line not yet known to be last
        errors = 0
        with self.path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if bad is not None:
                    raise ConfigurationError(
                        f"{self.path}: line {bad[0]} is {bad[1]}, and it is not the last line, so it "
                        "isn't a torn write. Fix or remove that line, then resume."
                    )
                why = _check_line(raw)
                if isinstance(why, str):
                    bad = (number, why)
                    continue
                done.add(why[0])
                errors += not why[1]
                good_end += len(raw)
        if bad is not None:
            self.truncated_bytes = self.path.stat().st_size - good_end
            os.ftruncate(fd, good_end)
            os.fsync(fd)
        if retry_errors and errors:
            done = self._drop_errors(fd)
        else:
            self.prior_errors = errors
        return done

    def _drop_errors(self, fd: int) -> set[str]:
        """Rewrite the file without its error records, atomically: a temp file, fsync, rename.

        A crash at any point leaves either the old file or the new one, never a mix. The
        temp file is locked before the rename, so the lock moves with it; the old
        descriptor (of the replaced file) is closed and the new one takes its place.
        """
        done: set[str] = set()
        tmp = self.path.with_name(self.path.name + ".tmp")
        new_fd = os.open(tmp, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self._lock(new_fd)
            pending = bytearray()
            with self.path.open("rb") as src:
                for raw in src:
                    checked = _check_line(raw)  # every line passed _scan
                    if isinstance(checked, tuple) and checked[1]:
                        pending += raw
                        done.add(checked[0])
                    else:
                        self.dropped_errors += 1
                    if len(pending) >= 1 << 20:
                        _write_all(new_fd, bytes(pending))
                        pending.clear()
            _write_all(new_fd, bytes(pending))
            os.fsync(new_fd)
            os.replace(tmp, self.path)
            _sync_dir(self.path.parent)
        except BaseException:
            os.close(new_fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        self._swap_fd = new_fd
        return done

    # ------------------------------------------------------------ writing

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as one line, in one write."""
        if self._fd is None:
            raise RuntimeError("the checkpoint is not open")
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
        _write_all(self._fd, line.encode("utf-8"))
        self._dirty = True
        if self.fsync_interval <= 0 or time.monotonic() - self._last_sync >= self.fsync_interval:
            self.sync()

    def sync(self) -> None:
        if self._fd is not None and self._dirty:
            os.fsync(self._fd)
            self._dirty = False
        self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            self.sync()
        finally:
            os.close(self._fd)  # also releases the flock
            self._fd = None


def _sync_dir(folder: Path) -> None:
    """fsync a folder so a rename in it survives a power cut (no-op where unsupported)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _check_line(raw: bytes) -> tuple[str, bool] | str:
    """``(id, ok)`` of a good line, or why the line is bad."""
    if not raw.endswith(b"\n"):
        return "incomplete (no newline)"
    try:
        data = json.loads(raw)
    except ValueError:
        return "not valid JSON"
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        return "not a result record (no string id)"
    return data["id"], data.get("ok") is not False
