"""Schemas of the accuracy benchmark (benchmarks/accuracy.py); labels are in cases.jsonl."""

from __future__ import annotations

from typing import Literal, Optional

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
    items: list[Item] = Field(max_length=10)


class Contact(BaseModel):
    """A person's contact details."""

    name: str
    email: str
    phone: Optional[str] = None  # noqa: UP045 (the benchmark runs on Python 3.9 too)
    company: Optional[str] = None  # noqa: UP045


class Event(BaseModel):
    """An event announced in the text."""

    title: str
    date: str = Field(description="The date as YYYY-MM-DD")
    city: str


class OrderStatus(BaseModel):
    """The status of a customer order."""

    order_id: str
    status: Literal["pending", "shipped", "delivered", "cancelled"]


class Payment(BaseModel):
    """A payment mentioned in the text."""

    payer: str
    amount: float
    currency: Literal["EUR", "USD", "GBP"]


class Person(BaseModel):
    """A person described in the text."""

    name: str
    age: int
    city: str


# ------------------------------------------------------------------ function calling
# Small public-style function-calling set: a user request in, the call's arguments out.


class GetWeather(BaseModel):
    """Get the current weather for a city."""

    city: str
    unit: Literal["celsius", "fahrenheit"] = "celsius"


class SendEmail(BaseModel):
    """Send an email."""

    to: str = Field(description="Recipient email address")
    subject: str


class SetTimer(BaseModel):
    """Start a countdown timer."""

    minutes: int
    label: Optional[str] = None  # noqa: UP045


SCHEMAS: dict[str, type[BaseModel]] = {
    "Invoice": Invoice,
    "Contact": Contact,
    "Event": Event,
    "OrderStatus": OrderStatus,
    "Payment": Payment,
    "Person": Person,
    "GetWeather": GetWeather,
    "SendEmail": SendEmail,
    "SetTimer": SetTimer,
}
FUNCTION_CALLING = ("GetWeather", "SendEmail", "SetTimer")
