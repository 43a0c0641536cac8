"""The README's invoice without grounding or bounds, for paths whose answers don't copy from
the text: integration tests over a chat server, loopback benchmarks with scripted answers, the
docs examples. The one place this shape is defined; the quick start uses ``examples/invoice.py``.
"""

from pydantic import BaseModel


class Item(BaseModel):
    description: str
    quantity: int
    unit_price: float


class Invoice(BaseModel):
    """An invoice found in the text."""

    invoice_number: str
    vendor: str
    total: float
    items: list[Item]
