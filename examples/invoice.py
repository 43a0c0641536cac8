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
    items: list[Item]
