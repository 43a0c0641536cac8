"""The batch progress bar (rich, on stderr): done/total, rate, tokens, errors, ETA."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

if TYPE_CHECKING:
    from schemagen.batch.results import BatchSummary


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} items/s" if speed else "- items/s", style="progress.data.speed")


class BatchProgress:
    """Follows a :class:`BatchSummary`; ``update()`` after each item. Items already done
    (resume) shrink the total instead of counting as progress, so rate and ETA stay true."""

    def __init__(self, summary: BatchSummary, console: Console | None = None) -> None:
        self.summary = summary
        self.progress: Progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TextColumn("{task.fields[tokens]:,} tokens"),
            TextColumn("[red]{task.fields[errors]} errors"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=console or Console(stderr=True),
            refresh_per_second=4,
        )
        self.task: TaskID = self.progress.add_task(
            "batch", total=summary.total, tokens=0, errors=0, status="")

    def start(self) -> None:
        self.progress.start()

    def update(self, *, skipped: bool = False, **fields: Any) -> None:
        s = self.summary
        total = None if s.total is None else max(0, s.total - s.skipped)
        self.progress.update(self.task, completed=s.done, total=total, tokens=s.usage.total_tokens,
                             errors=s.failed, **fields)

    def set_status(self, status: str) -> None:
        self.update(status=status)

    def stop(self) -> None:
        self.update()
        self.progress.stop()
