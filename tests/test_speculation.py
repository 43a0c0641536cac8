"""Copy-from-input speculation: the drafting rule (pure) and, on the embedded model, that it
changes nothing but the number of forward passes."""

from __future__ import annotations

from typing import Any

import pytest

from schemagen.backends._lookup import continuation, draft, source_bytes
from schemagen.exchange import Request
from schemagen.grounding import all_strings, mark
from tests.test_local import TEXTS, Person, render, require_local

SOURCE = source_bytes("Maria Garcia (maria.garcia@example.com) works at Acme Robotics.\nMadrid, Spain")


def by_word(data: bytes) -> list[int]:
    """A toy tokenizer: one id per word or punctuation run, so drafts are easy to read."""
    import re

    return [hash(piece) for piece in re.findall(rb" ?\w+| ?[^\w ]+| ", data)]


def test_source_keeps_line_and_column_breaks_as_stops() -> None:
    assert source_bytes("a  b\nc d\te\r\n  f") == b"a\nb\nc d e\nf"


def test_continuation_follows_the_longest_matching_suffix_to_the_likely_value_end() -> None:
    # the value so far, '"name":"Maria', ends with a span of the text: its rest up to " ("
    assert continuation(SOURCE, b'{"name":"Maria') == (b" Garcia", True)
    assert continuation(SOURCE, b'"email":"maria') == (b".garcia@example.com", True)
    # a sentence end, a line break: the copy stops there
    assert continuation(SOURCE, b'"company":"Acme') == (b" Robotics", True)
    assert continuation(SOURCE, b'"city":"Mad') == (b"rid", True)
    # nothing of the tail occurs in the text
    assert continuation(SOURCE, b'"name":"') == (b"", False)


def test_ambiguous_match_drafts_only_what_every_occurrence_shares() -> None:
    src = b"Acme Tools Ltd and Acme Toys Ltd"
    rest, whole = continuation(src, b'"Acme')
    assert rest == b" To" and not whole  # "Tools" or "Toys": the draft stops where they part
    # a longer suffix picks one place
    assert continuation(src, b"and Acme") == (b" Toys Ltd", True)


def test_a_string_starts_at_a_word() -> None:
    src = source_bytes("+34 612 345 678, 12 Calle Mayor, Madrid")
    # '"12' opens a string: a grounded value starts a word, so '612' is no place for it
    assert continuation(src, b'"street":"12') == (b" Calle Mayor", True)
    # inside a string '12' may be the end of '612' as well: the places share only ' '
    assert continuation(src, b"x12") == (b" ", False)
    assert continuation(src, b" 612") == (b" 345 678", True)
    # one byte is enough where it occurs once
    assert continuation(src, b'"phone":"+') == (b"34 612 345 678", True)


def test_a_number_starts_at_a_word_too() -> None:
    src = source_bytes("INVOICE INV-2024-0117\n1 x Box of nails    @  4.75\nTOTAL DUE: 29.75 EUR")
    # '4' after ': ' starts a value: the 4 of 2024 is no place for it
    assert continuation(src, b'"unit_price": 4') == (b".75", True)
    assert continuation(src, b'"total": 29') == (b".75 EUR", True)


def test_draft_tokens_and_cut_words() -> None:
    ids, whole = draft(SOURCE, b'"maria', by_word, max_tokens=16)
    assert ids == by_word(b".garcia@example.com") and whole
    ids, whole = draft(SOURCE, b'"maria', by_word, max_tokens=2)
    assert ids == by_word(b".garcia") and not whole  # more follows: not the value's end
    # cut inside a word (the occurrences part at "To"): the last, maybe partial, token is dropped
    ids, whole = draft(b"Acme Tools Ltd and Acme Toys Ltd", b'"Acme', by_word, max_tokens=16)
    assert ids == [] and not whole
    assert draft(SOURCE, b"zzz", by_word, max_tokens=16) == ([], False)
    assert draft(SOURCE, b"Maria", by_word, max_tokens=0) == ([], False)


# --------------------------------------------------------------------------- on the model


@pytest.fixture(scope="module")
def backends() -> dict[tuple[bool, bool], Any]:
    """(compact, speculate) -> backend; all share the one loaded model."""
    require_local()
    from schemagen.backends.local import LocalBackend

    return {(c, s): LocalBackend(compact=c, speculate=s) for c in (True, False) for s in (True, False)}


@pytest.mark.local
@pytest.mark.parametrize("compact", [True, False], ids=["compact", "spaced"])
@pytest.mark.parametrize("text", TEXTS[:2])
def test_speculation_changes_nothing_but_the_forward_passes(
    backends: dict[tuple[bool, bool], Any], text: str, compact: bool
) -> None:
    on, off = backends[compact, True], backends[compact, False]
    schema = mark(Person.model_json_schema(), all_strings(Person.model_json_schema()))
    req = Request("completions", {"prompt": render(on, text), "max_tokens": 40}, constraint=schema,
                  source_text=text)
    fast, plain = on.complete(req), off.complete(req)
    assert fast.raw["grounded"] and plain.raw["grounded"]
    assert fast.text == plain.text  # the same tokens, greedy, with or without drafts
    person = Person.model_validate_json(fast.text)
    assert person.name in text and person.city in text
    assert fast.raw["accepted_tokens"] > 0
    assert fast.raw["drafted_tokens"] >= fast.raw["accepted_tokens"]
    assert fast.raw["decode_steps"] < plain.raw["decode_steps"]
    assert plain.raw["drafted_tokens"] == 0
    # off by default on llama.cpp, where a CPU batch costs nearly as much per token as single steps
    from schemagen.backends.local import LocalBackend

    assert LocalBackend(compact=compact).complete(req).raw["drafted_tokens"] == 0


@pytest.mark.local
def test_a_copied_number_is_closed_where_the_grammar_cuts_the_copy(
    backends: dict[tuple[bool, bool], Any],
) -> None:
    from schemagen.backends.local import _Drafter

    backend = backends[True, True]
    text = "Order 12 from Acme Tools. TOTAL DUE: 29.75 EUR"
    schema = {"type": "object", "properties": {"total": {"type": "number"}, "vendor": {"type": "string"}},
              "required": ["total", "vendor"]}
    grammar = backend._grammar_for(Request("completions", {"prompt": "", "max_tokens": 9},
                                           constraint=mark(schema, all_strings(schema)), source_text=text))[0]
    rt = backend._runtime
    drafter = _Drafter(text, backend._engine().tokenizer, spaced=False)
    drafter.budget = drafter.MAX_DRAFT

    def draft_after(written: str) -> str:
        state = grammar.new_state()
        out = rt.tokenize(written, prompt=False)
        state.consume(out)
        return rt.detokenize(drafter.propose(state, out, 40))

    # " EUR" can't follow a number: the copy ends there, and so does the value
    assert draft_after('{"total":2') == '9.75,"vendor":"'
    # one digit of "12" where "29.75" was meant is too little to close on
    assert draft_after('{"total":1') == "2"


@pytest.mark.local
def test_a_forced_ending_costs_no_forward_pass(backends: dict[tuple[bool, bool], Any]) -> None:
    # Once the model picks "p", the grammar forces 'ending"}' to the end: nothing reads the
    # logits after it, so only the forced '{"status":"' is fed before the choice.
    backend = backends[True, False]
    schema = {"type": "object", "properties": {"status": {"enum": ["shipped", "pending"]}},
              "required": ["status"]}
    req = Request("completions", {"prompt": "Order 7 is still pending.\nJSON:", "max_tokens": 20},
                  constraint=schema)
    completion = backend.complete(req)
    assert completion.text == '{"status":"pending"}'
    assert completion.raw["decode_steps"] == 1
    state = backend.compiled_grammar(schema)[0].new_state()
    tokens = backend._runtime.tokenize('{"status":"pending"}', prompt=False)
    assert state.stops_after(tokens) and not state.stops_after(tokens[:-1])
    assert state.valid_prefix(tokens) == len(tokens)  # the peek left the state where it was


@pytest.mark.transformers
def test_speculation_on_transformers_changes_nothing_but_the_forward_passes() -> None:
    from tests.test_local import require_transformers

    require_transformers()
    from schemagen.backends.local import LocalBackend

    on = LocalBackend(runtime="transformers", device="cpu", n_threads=1, compact=True)  # the default
    off = LocalBackend(runtime="transformers", device="cpu", n_threads=1, compact=True, speculate=False)
    text = TEXTS[0]
    schema = mark(Person.model_json_schema(), all_strings(Person.model_json_schema()))
    req = Request("completions", {"prompt": render(on, text), "max_tokens": 40}, constraint=schema,
                  source_text=text)
    fast, plain = on.complete(req), off.complete(req)
    assert fast.text == plain.text
    person = Person.model_validate_json(fast.text)
    assert person.name in text and person.city in text
    assert 0 < fast.raw["accepted_tokens"] <= fast.raw["drafted_tokens"]
    assert fast.raw["decode_steps"] < plain.raw["decode_steps"]

    # the runtime's batch: one row per asked position, equal to feeding one token at a time;
    # a rewind forgets the rejected tail
    rt = on._runtime
    prompt, more = rt.tokenize(text), rt.tokenize(" Berlin, Germany", prompt=False)
    rt.start(prompt)
    one_by_one = [rt.step([t]) for t in more]
    rt.start(prompt)
    rows = rt.step_all(more, [0, len(more) - 1])
    assert rows.shape == (2, rt.vocab_size)
    assert int(rows[0].argmax()) == int(one_by_one[0].argmax())
    assert int(rows[1].argmax()) == int(one_by_one[-1].argmax())
    rt.rewind(len(more) - 1)
    again = rt.step(more[1:])
    assert int(again.argmax()) == int(one_by_one[-1].argmax())
    assert abs(float(again.max()) - float(one_by_one[-1].max())) < 1e-3
