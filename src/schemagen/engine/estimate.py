"""One estimator of what a request may spend, for budgets (per call and per batch) and the
batch rate limiter: its prompt tokens plus its whole output bound. Pure: counts, no I/O."""

from __future__ import annotations

import json

from schemagen.engine.pricing import estimate_cost
from schemagen.exchange import Request, Usage
from schemagen.tokens import Counter, count_messages, count_request, count_tools


class Estimator:
    """``output_reserve``: the output assumed for a request with neither ``max_tokens`` nor a
    known context window (a batch's TPM booking)."""

    def __init__(self, counter: Counter, model: str | None, *, output_reserve: int = 0) -> None:
        self.counter = counter
        self.model = model
        self.output_reserve = output_reserve
        self._tool_tokens: dict[str, int] = {}
        self.tool_cache_misses: int = 0

    def prompt_tokens(self, request: Request) -> int:
        tools = request.body.get("tools")
        if request.endpoint != "chat" or not tools:
            return count_request(request, self.counter)
        # Requests of one run carry the same tools, rebuilt per request: keyed by content, they
        # are counted once, not per request.
        key = json.dumps(tools, sort_keys=True, default=str)
        cached = self._tool_tokens.get(key)
        if cached is None:
            if len(self._tool_tokens) > 64:  # many different tools: don't grow without end
                self._tool_tokens.clear()
            cached = self._tool_tokens[key] = count_tools(tools, self.counter)
            self.tool_cache_misses += 1
        return count_messages(request.body.get("messages", []), self.counter) + cached

    def estimate(self, request: Request, *, window: int | None = None) -> Usage:
        """Prompt tokens plus the output bound (``max_tokens``, else the rest of the context
        ``window``, else the reserve), with the cost where the model's price is known."""
        prompt = self.prompt_tokens(request)
        completion = request.max_tokens
        if not completion:
            completion = max(0, window - prompt) if window is not None else self.output_reserve
        return Usage(prompt_tokens=prompt, completion_tokens=completion, requests=1,
                     cost=estimate_cost(self.model, prompt, completion))


__all__ = ["Estimator"]
