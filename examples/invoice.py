"""The invoice schema of the README quick start, also used by the integration tests and benchmarks.

The one place Invoice/Item are defined: ``from examples.invoice import Invoice`` (repository
root on the path), or ``from invoice import Invoice`` next to it.
"""

from pydantic import BaseModel, Field


class Item(BaseModel):
    description: str
    quantity: int
    unit_price: float


class Invoice(BaseModel):
    """An invoice found in the text."""

    invoice_number: str = Field(description="The invoice number exactly as printed")
    vendor: str
    total: float
    # A bound on the list keeps small models from repeating items until the token limit.
    items: list[Item] = Field(max_length=10)
