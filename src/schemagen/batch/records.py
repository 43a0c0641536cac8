"""Batch inputs: records with an id and a text, streamed one at a time.

Sources: an iterable of strings, ``(id, text)`` pairs, dicts or :class:`Record`;
or a path to a JSONL file, a CSV file or a folder of ``.txt``/``.md`` files.
Nothing is loaded whole. An input that can't be read becomes a :class:`Record`
with ``error`` set (and its line number), never a silent skip.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemagen.errors import ConfigurationError

JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
CSV_SUFFIXES = frozenset({".csv"})
TEXT_SUFFIXES = frozenset({".txt", ".md"})


@dataclass(frozen=True)
class Record:
    """One input. ``text`` is None when the input could not be read (``error`` says why)."""

    id: str
    text: str | None
    line: int | None = None  # 1-based line in the input file, when there is one
    error: str | None = None
    error_type: str = "InputError"


def is_path(source: Any) -> bool:
    """A ``str`` or ``PathLike`` names a file or folder (a bare str is never a list of records)."""
    return isinstance(source, str | os.PathLike)


def _id_of(value: Any) -> str | None:
    if value is None or isinstance(value, bool | dict | list):
        return None
    return str(value)


def from_mapping(data: Mapping[str, Any], default_id: str, *, text_field: str, id_field: str,
                 line: int | None = None) -> Record:
    rid = _id_of(data.get(id_field)) or default_id
    text = data.get(text_field)
    if text is None:
        return Record(rid, None, line, f"missing text field {text_field!r}")
    if not isinstance(text, str):
        return Record(rid, None, line, f"text field {text_field!r} is a {type(text).__name__}, not a string")
    return Record(rid, text, line)


def from_items(items: Iterable[Any], *, text_field: str = "text", id_field: str = "id") -> Iterator[Record]:
    """Records from Python objects; the default id is the 0-based position."""
    for i, item in enumerate(items):
        default_id = str(i)
        if isinstance(item, Record):
            yield item
        elif isinstance(item, str):
            yield Record(default_id, item)
        elif isinstance(item, Mapping):
            yield from_mapping(item, default_id, text_field=text_field, id_field=id_field)
        elif isinstance(item, tuple | list) and len(item) == 2:
            rid, text = item
            rid = _id_of(rid) or default_id
            if isinstance(text, str):
                yield Record(rid, text)
            else:
                yield Record(rid, None, error=f"text is a {type(text).__name__}, not a string")
        else:
            yield Record(default_id, None, error=f"unsupported record type {type(item).__name__} "
                         "(use a str, an (id, text) pair or a dict)")


def read_jsonl(path: Path | None, *, text_field: str = "text", id_field: str = "id") -> Iterator[Record]:
    """One record per non-blank line (``path=None`` reads stdin). The default id is the line number."""
    stream = sys.stdin.buffer if path is None else path.open("rb")
    try:
        for number, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue  # blank lines (e.g. a trailing one) are not records
            default_id = str(number)
            try:
                data = json.loads(raw)
            except UnicodeDecodeError as exc:
                yield Record(default_id, None, number, f"line {number} is not UTF-8: {exc}")
                continue
            except ValueError as exc:
                yield Record(default_id, None, number, f"line {number} is not valid JSON: {exc}")
                continue
            if isinstance(data, str):
                yield Record(default_id, data, number)
            elif isinstance(data, dict):
                yield from_mapping(data, default_id, text_field=text_field, id_field=id_field, line=number)
            else:
                yield Record(default_id, None, number,
                             f"line {number} is a JSON {type(data).__name__}, not an object or a string")
    finally:
        if path is not None:
            stream.close()


def _has_surrogates(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def read_csv(path: Path, *, text_field: str = "text", id_field: str = "id") -> Iterator[Record]:
    """One record per row; a header row names the columns. The default id is the row's line number."""
    # surrogateescape: one badly encoded row becomes an error record instead of ending the file.
    with path.open(encoding="utf-8", errors="surrogateescape", newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        if text_field not in fields:
            columns = ", ".join(fields) or "none"
            raise ConfigurationError(f"{path}: no {text_field!r} column (columns: {columns}); "
                                     "pass --text-field")
        start = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield Record(str(start), None, start, f"line {start}: unreadable CSV row: {exc}")
                start = reader.line_num + 1
                continue
            number, start = start, reader.line_num + 1
            if any(isinstance(v, str) and _has_surrogates(v) for v in row.values()):
                yield Record(str(number), None, number, f"line {number} is not UTF-8")
                continue
            if row.get(text_field) is None:
                yield Record(_id_of(row.get(id_field)) or str(number), None, number,
                             f"line {number}: the row has no {text_field!r} value")
                continue
            yield from_mapping(row, str(number), text_field=text_field, id_field=id_field, line=number)


def _walk_files(folder: Path) -> Iterator[Path]:
    """Text files under ``folder`` in a stable order (sorted per directory)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _walk_files(Path(entry.path))
        elif Path(entry.name).suffix.lower() in TEXT_SUFFIXES:
            yield Path(entry.path)


def read_folder(folder: Path) -> Iterator[Record]:
    """One record per ``.txt``/``.md`` file; the id is the path relative to ``folder``."""
    for path in _walk_files(folder):
        rid = path.relative_to(folder).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            yield Record(rid, None, None, f"can't read {rid}: {exc}")
            continue
        yield Record(rid, text)


def _open_path(path: Path, *, text_field: str, id_field: str) -> Iterator[Record]:
    if str(path) == "-":
        return read_jsonl(None, text_field=text_field, id_field=id_field)
    if path.is_dir():
        return read_folder(path)
    if not path.is_file():
        raise ConfigurationError(f"input not found: {path}")
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return read_jsonl(path, text_field=text_field, id_field=id_field)
    if suffix in CSV_SUFFIXES:
        return read_csv(path, text_field=text_field, id_field=id_field)
    raise ConfigurationError(f"{path}: unknown input format {suffix or '(none)'}; "
                             "use .jsonl, .csv or a folder of .txt/.md files")


def iter_records(source: Any, *, text_field: str = "text", id_field: str = "id") -> Iterator[Record]:
    """Records from any supported source, with unique ids.

    A repeated id becomes an error record with id ``"<id>#<line or position>"``, so every
    output id stays unique and ``--resume`` stays exact.
    """
    if is_path(source):
        records = _open_path(Path(source), text_field=text_field, id_field=id_field)
    else:
        records = from_items(source, text_field=text_field, id_field=id_field)
    return _unique(records)


def _unique(records: Iterator[Record]) -> Iterator[Record]:
    seen: dict[str, int | None] = {}  # id -> line, for the message; ids only, so memory stays small
    for position, record in enumerate(records):
        if record.id in seen:
            where = record.line if record.line is not None else position
            first = seen[record.id]
            yield Record(f"{record.id}#{where}", None, record.line,
                         f"duplicate id {record.id!r}" + (f" (first on line {first})" if first else ""),
                         "DuplicateIdError")
            continue
        seen[record.id] = record.line
        yield record


def count_records(source: Any) -> int | None:
    """How many records ``source`` holds, by a cheap streaming pass; None when unknown."""
    if not is_path(source):
        try:
            return len(source)
        except TypeError:
            return None
    path = Path(source)
    if str(path) == "-":
        return None
    if path.is_dir():
        return sum(1 for _ in _walk_files(path))
    if not path.is_file():
        return None
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        with path.open("rb") as handle:
            return sum(1 for raw in handle if raw.strip())
    if suffix in CSV_SUFFIXES:
        with path.open(encoding="utf-8", errors="surrogateescape", newline="") as handle:
            try:
                return sum(1 for _ in csv.DictReader(handle))
            except csv.Error:
                return None
    return None
