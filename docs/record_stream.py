"""Make docs/streaming.svg: frames of the ``schemagen extract --stream`` view, exported by rich.

The frames are the CLI's own renderer (``schemagen.cli.stream_view.render_partial``) fed by a
real ``Client.stream`` over the scripted SSE server (tests/stream_server.py), so the picture
is what the terminal shows at those moments.

    python docs/record_stream.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from pydantic import BaseModel  # noqa: E402

import schemagen  # noqa: E402
from schemagen.cli.stream_view import render_partial  # noqa: E402
from schemagen.testing.streaming import StreamScript as Script  # noqa: E402
from schemagen.testing.streaming import StreamServer  # noqa: E402


class Line(BaseModel):
    description: str
    quantity: int
    unit_price: float


class Invoice(BaseModel):
    invoice_number: str
    vendor: str
    total: float
    lines: list[Line]


ANSWER = {"invoice_number": "INV-2024-0042", "vendor": "Blue Harbor Supplies", "total": 57.5,
          "lines": [{"description": "brass hinge, polished", "quantity": 4, "unit_price": 6.25},
                    {"description": "oak shelf bracket", "quantity": 2, "unit_price": 16.25}]}


def main() -> None:
    console = Console(record=True, width=96, force_terminal=True)
    with StreamServer() as server:
        server.scripts.append(Script(json.dumps(ANSWER), piece=3, delay=0))
        sg = schemagen.Client(base_url=server.base_url, model="m", api_key="x")
        partials = list(sg.stream(Invoice, "Invoice INV-2024-0042 ..."))
    picks = sorted({4, len(partials) // 4, len(partials) // 2, 3 * len(partials) // 4, len(partials) - 1})
    console.print("$ schemagen extract invoice.txt --schema shop.py:Invoice --stream", style="bold")
    for i in picks:
        console.print(Rule(f"partial {i + 1} of {len(partials)}", style="dim"))
        console.print(render_partial(partials[i]))
    out = ROOT / "docs" / "streaming.svg"
    console.save_svg(str(out), title="schemagen extract --stream")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
