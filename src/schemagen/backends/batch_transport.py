"""The batch-transport protocol: the Files and Batches I/O that ``mode='batch_api'`` needs.

A backend that can run provider batch jobs returns one from ``batch_transport()``. The batch
driver (:mod:`schemagen.batch.openai_batch`) only plans, checkpoints and parses; every byte
it sends or fetches goes through these methods, which raise
:class:`~schemagen.errors.TransportError` subclasses (retrying stays with the driver).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class BatchJob:
    """A provider batch job as the driver needs it: plain data, no SDK objects."""

    id: str
    status: str
    output_file_id: str | None = None
    error_file_id: str | None = None
    #: requests finished so far (completed + failed)
    done: int = 0
    #: the job's own error messages (validation failures), a few at most
    errors: tuple[str, ...] = ()
    metadata: dict[str, str] | None = None
    created_at: float | None = None  # epoch seconds


@runtime_checkable
class BatchTransport(Protocol):
    async def upload(self, path: Path) -> str:
        """Upload a JSONL request file for a batch; returns its file id."""
        ...

    async def create(self, input_file_id: str, endpoint: str, metadata: dict[str, Any]) -> BatchJob:
        """Start a batch job over an uploaded file (24h window)."""
        ...

    async def retrieve(self, batch_id: str) -> BatchJob:
        """The job's current state."""
        ...

    async def download(self, file_id: str, dest: Path) -> None:
        """Stream a file's content (an output or error file) to ``dest``."""
        ...

    async def list(self, limit: int = 20) -> list[BatchJob]:
        """The most recent jobs, newest first."""
        ...

    async def find(self, metadata: dict[str, str], since: float) -> BatchJob | None:
        """The newest job whose metadata holds every item of ``metadata``, looking back no
        further than jobs created at ``since`` (epoch seconds); None when there is none."""
        ...


__all__ = ["BatchJob", "BatchTransport"]
