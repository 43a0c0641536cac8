"""``schemagen extract --stream``: the object filling in, live (rich ``Live`` on stderr)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from schemagen.engine.run import Extraction
from schemagen.engine.stream import Partial

VALUE_WIDTH = 70


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


def render_partial(partial: Partial[Any] | None, *, title: str = "") -> RenderableType:
    """One frame: each field with its value so far and a mark (✓ validated, ✗ invalid, … arriving)."""
    if partial is None:
        return Text(f"{title}waiting for the first token…", style="dim")
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("", width=1)
    table.add_column("field", style="cyan")
    table.add_column("value")
    data = partial.data
    rows = data.items() if isinstance(data, dict) else enumerate(data if isinstance(data, list) else [data])
    for key, value in rows:
        if partial.done or key in partial.fields:
            mark = Text("✓", style="green")
        elif key in partial.errors:
            mark = Text("✗", style="red")
        else:
            mark = Text("…", style="yellow")
        if isinstance(value, list) and value and isinstance(value[0], dict):  # nested items, a row each
            table.add_row(mark, str(key), Text(f"{len(value)} so far", style="dim"))
            for i, item in enumerate(value):
                table.add_row("", f"  [{i}]", Text(_short(item)))
        else:
            table.add_row(mark, str(key), Text(_short(value)))
    state = "done" if partial.done else "streaming"
    head = Text(f"{title}attempt {partial.attempt} · {state}", style="bold green" if partial.done else "bold")
    errors = [Text(f"✗ {key}: {msg}", style="red") for key, msg in partial.errors.items()]
    return Group(head, table, *errors)


def stream_extraction(stream: Any, console: Console) -> Extraction[Any]:
    """Drive ``stream`` (a ``Client.stream``) under a Live view; the Extraction at the end."""
    with Live(render_partial(None), console=console, refresh_per_second=12, transient=False) as live:
        for partial in stream:
            live.update(render_partial(partial))
    result: Extraction[Any] = stream.extraction
    return result


__all__ = ["render_partial", "stream_extraction"]
