"""OpenAI's Files and Batches APIs as a :class:`~schemagen.backends.batch_transport.BatchTransport`.

Reached through ``OpenAIBackend.batch_transport()``; SDK errors become typed schemagen errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import openai

from schemagen.backends.batch_transport import BatchJob

T = TypeVar("T")


def job_from_sdk(batch: Any) -> BatchJob:
    """The plain :class:`BatchJob` for an SDK ``Batch`` object."""
    counts = batch.request_counts
    errors = batch.errors.data[:5] if batch.errors and batch.errors.data else []
    return BatchJob(
        id=batch.id,
        status=batch.status,
        output_file_id=batch.output_file_id,
        error_file_id=batch.error_file_id,
        done=(counts.completed + counts.failed) if counts else 0,
        errors=tuple(str(e.message) for e in errors),
        metadata=dict(batch.metadata) if batch.metadata else None,
        created_at=float(batch.created_at) if batch.created_at else None,
    )


class OpenAIBatchTransport:
    """``client``: returns the backend's ``AsyncOpenAI`` for the running loop (it is loop-bound)."""

    def __init__(self, client: Callable[[], openai.AsyncOpenAI]) -> None:
        self._sdk = client

    def _client(self) -> openai.AsyncOpenAI:
        # The driver retries with the Client's policy; the SDK's own retries would multiply it.
        return self._sdk().with_options(max_retries=0)

    async def _mapped(self, call: Awaitable[T]) -> T:
        from schemagen.backends.openai_compat import map_openai_error
        from schemagen.redact import RedactedError

        try:
            return await call
        except openai.OpenAIError as exc:
            raise map_openai_error(exc) from RedactedError.of(exc)

    async def upload(self, path: Path) -> str:
        uploaded = await self._mapped(self._client().files.create(file=path, purpose="batch"))
        return str(uploaded.id)

    async def create(self, input_file_id: str, endpoint: str, metadata: dict[str, Any]) -> BatchJob:
        created = await self._mapped(
            self._client().batches.create(
                input_file_id=input_file_id,
                endpoint=endpoint,  # type: ignore[arg-type]  # the SDK types it as a Literal of routes
                completion_window="24h",
                metadata=metadata,
            )
        )
        return job_from_sdk(created)

    async def retrieve(self, batch_id: str) -> BatchJob:
        return job_from_sdk(await self._mapped(self._client().batches.retrieve(batch_id)))

    async def download(self, file_id: str, dest: Path) -> None:
        async def fetch() -> None:
            async with self._client().files.with_streaming_response.content(file_id) as response:
                await response.stream_to_file(dest)

        await self._mapped(fetch())

    async def list(self, limit: int = 20) -> list[BatchJob]:
        page = await self._mapped(self._client().batches.list(limit=limit))
        return [job_from_sdk(batch) for batch in page.data]

    async def find(self, metadata: dict[str, str], since: float) -> BatchJob | None:
        async def scan() -> BatchJob | None:
            async for batch in self._client().batches.list(limit=100):  # newest first, every page
                job = job_from_sdk(batch)
                if job.metadata and all(job.metadata.get(k) == v for k, v in metadata.items()):
                    return job
                if job.created_at is not None and job.created_at < since:
                    return None
            return None

        return await self._mapped(scan())


__all__ = ["OpenAIBatchTransport", "job_from_sdk"]
