"""Prices per model, and usage turned into money. Pure, plus a user-extendable table.

Prices are USD per 1M tokens, from OpenAI's public price list (standard tier,
checked 2025-08). They change: check https://openai.com/api/pricing and override or
add with :func:`register_price`. A model is matched by its exact name, or its name
without a date suffix (``gpt-4o-mini-2024-07-18`` -> ``gpt-4o-mini``); anything else is
unknown and shows tokens only (``Usage.cost`` is None), never a guessed price.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from schemagen.exchange import Usage


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens. ``cached_input`` None means cached tokens cost the input price."""

    input: float
    output: float
    cached_input: float | None = None

    def cost(self, usage: Usage) -> float:
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        return (
            (usage.prompt_tokens - cached) * self.input
            + cached * cached_rate
            + usage.completion_tokens * self.output
        ) / 1_000_000


PRICES: dict[str, Price] = {
    "gpt-5": Price(1.25, 10.00, 0.125),
    "gpt-5-mini": Price(0.25, 2.00, 0.025),
    "gpt-5-nano": Price(0.05, 0.40, 0.005),
    "gpt-4.1": Price(2.00, 8.00, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4o-2024-05-13": Price(5.00, 15.00),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "o1": Price(15.00, 60.00, 7.50),
    "o1-mini": Price(1.10, 4.40, 0.55),
    "o1-pro": Price(150.00, 600.00),
    "o3": Price(2.00, 8.00, 0.50),
    "o3-mini": Price(1.10, 4.40, 0.55),
    "o3-pro": Price(20.00, 80.00),
    "o4-mini": Price(1.10, 4.40, 0.275),
    "gpt-4-turbo": Price(10.00, 30.00),
    "gpt-4": Price(30.00, 60.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),
}
_lock = threading.Lock()
_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4}|\d{8})$")


def register_price(model: str, *, input: float, output: float, cached_input: float | None = None) -> None:
    """Add or replace the price of ``model`` (USD per 1M tokens), e.g. for a fine-tune,
    a proxy's model alias, or a local server you want to account at some rate."""
    for name, value in (("input", input), ("output", output), ("cached_input", cached_input)):
        if value is not None and value < 0:
            raise ValueError(f"{name} price must be >= 0, got {value!r}")
    with _lock:
        PRICES[_normalise(model)] = Price(float(input), float(output),
                                          None if cached_input is None else float(cached_input))


def _normalise(model: str) -> str:
    name = model.strip().lower()
    return name[len("openai/"):] if name.startswith("openai/") else name


def price_for(model: str | None) -> Price | None:
    """The price of ``model``, or None when it is not in the table."""
    if not model:
        return None
    name = _normalise(model)
    with _lock:
        found = PRICES.get(name)
        if found is None:
            found = PRICES.get(_DATE_SUFFIX.sub("", name))
    return found


def with_cost(usage: Usage, model: str | None) -> Usage:
    """``usage`` with ``cost`` filled in when the model's price is known (kept if already set)."""
    if usage.cost is not None:
        return usage
    price = price_for(model)
    if price is None:
        return usage
    return Usage(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.requests,
                 price.cost(usage))


def estimate_cost(model: str | None, prompt_tokens: int, completion_tokens: int) -> float | None:
    """Cost of an attempt before it is sent (no cache assumed), or None when unpriced."""
    price = price_for(model)
    return None if price is None else price.cost(Usage(prompt_tokens, completion_tokens))
