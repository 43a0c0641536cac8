"""The invoice schema used by the README quick start."""

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
