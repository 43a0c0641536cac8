"""One estimator for budgets and the batch limiter: the engine and BatchRun agree on prompt
tokens, and differ only where documented (window rest vs. the batch's output reserve)."""

from __future__ import annotations

from pydantic import BaseModel

from schemagen.engine.estimate import Estimator
from schemagen.engine.run import ExtractionRun, Settings
from schemagen.exchange import Request
from schemagen.tokens import count_request, counter_for


class Person(BaseModel):
    name: str
    age: int


def test_engine_and_batch_estimate_the_same_prompt() -> None:
    extraction = ExtractionRun(Person, "Ann is 30.", Settings(model="gpt-4o-mini"))
    request = extraction.next_request()
    counter = counter_for("gpt-4o-mini")
    batch = Estimator(counter, "gpt-4o-mini", output_reserve=1024)
    expected = count_request(request, counter)
    assert extraction.prompt_tokens(request) == batch.prompt_tokens(request) == expected
    assert batch.prompt_tokens(request) == batch.prompt_tokens(request)  # second time from the tool cache
    bound = request.max_tokens
    assert bound and extraction.estimate(request).completion_tokens == bound
    assert batch.estimate(request).total_tokens == count_request(request, counter) + bound
    assert extraction.estimate(request).cost is not None  # gpt-4o-mini has a known price


def test_without_max_tokens_window_rest_or_reserve() -> None:
    counter = counter_for(None)
    request = Request("chat", {"model": "m", "messages": [{"role": "user", "content": "hello there"}]})
    prompt = count_request(request, counter)
    estimator = Estimator(counter, "m", output_reserve=1024)
    assert estimator.estimate(request).completion_tokens == 1024
    assert estimator.estimate(request, window=4096).completion_tokens == 4096 - prompt
    assert Estimator(counter, "m").estimate(request).completion_tokens == 0
