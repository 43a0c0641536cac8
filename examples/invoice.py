"""The invoice schema of the README quick start, also used by the integration tests and benchmarks.

The one place Invoice/Item are defined: ``from examples.invoice import Invoice`` (repository
root on the path), or ``from invoice import Invoice`` next to it.

``Quote`` fields must be spans of the input (the local backend enforces it in the grammar; other
backends check it and reask). ``EXAMPLES`` is a worked example: ``schemagen extract`` uses a
schema module's ``EXAMPLES`` when it has one (in Python, pass ``examples=``).
"""

from pydantic import BaseModel, Field

from schemagen import Example, Quote


class Item(BaseModel):
    description: Quote
    quantity: int
    unit_price: float


class Invoice(BaseModel):
    """An invoice found in the text."""

    invoice_number: Quote = Field(description="The invoice number exactly as printed")
    vendor: Quote
    total: float
    # A bound on the list keeps small models from repeating items until the token limit.
    items: list[Item] = Field(max_length=10)


EXAMPLES = [
    Example(
        input="INVOICE B-12\nFrom: Bolt Shop\n\n3 x Screw     @ 0.50 = 1.50\n"
              "1 x Drill     @ 60.00 = 60.00\n\nTOTAL: 61.50 USD",
        output={"invoice_number": "B-12", "vendor": "Bolt Shop", "total": 61.5, "items": [
            {"description": "Screw", "quantity": 3, "unit_price": 0.5},
            {"description": "Drill", "quantity": 1, "unit_price": 60.0},
        ]},
    ),
]
