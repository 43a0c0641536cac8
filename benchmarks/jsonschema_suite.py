"""Grammar fidelity on the official JSON Schema Test Suite (draft 2020-12), no model needed.

For every case: does the constraint schemagen's local backend compiles (llguidance, the
backend's own options and ``close_objects``) accept the instance's compact JSON text
exactly when the case says it is valid? And does a value the grammar lets through pass
schemagen's validation only when it is valid? Outlines' default backend (outlines_core's
regex from the schema) is measured on the same cases. Shared by ``tests/test_compliance.py``
(a fast subset in CI) and ``benchmarks/compliance.py`` (the full table).

The vendored suite (``benchmarks/data/json_schema_test_suite``, MIT, see its LICENSE) comes from
the jsonschema 4.26.0 sdist: ``pip download --no-binary :all: --no-deps jsonschema==4.26.0``.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from schemagen.errors import SchemagenError
from schemagen.schema import ToolSpec, build_tool

SUITE = Path(__file__).parent / "data" / "json_schema_test_suite" / "draft2020-12"


@dataclass(frozen=True)
class Case:
    file: str  # the keyword file, e.g. "minLength"
    group: str
    schema: Any
    description: str
    data: Any
    valid: bool


def load_cases(files: list[str] | None = None) -> list[Case]:
    out = []
    for path in sorted(SUITE.glob("*.json")):
        if files is not None and path.stem not in files:
            continue
        for group in json.loads(path.read_text(encoding="utf-8")):
            for test in group["tests"]:
                out.append(
                    Case(
                        path.stem,
                        group["description"],
                        group["schema"],
                        test["description"],
                        test["data"],
                        test["valid"],
                    )
                )
    return out


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------- llguidance, as the local backend runs it


class _ByteTokens:
    """A 256-byte vocabulary plus EOS, so the grammar sees the exact instance text."""

    eos_token_id = 256
    bos_token_id = None
    special_token_ids = (256,)
    tokens = (*(bytes([i]) for i in range(256)), b"<eos>")

    def __call__(self, text: bytes) -> list[int]:
        return list(text)


class _ByteRuntime:
    def llguidance_tokenizer(self) -> Any:
        import llguidance

        return llguidance.LLTokenizer(llguidance.TokenizerWrapper(_ByteTokens()))


_ENGINE: Any = None


def _engine() -> Any:
    global _ENGINE
    if _ENGINE is None:
        from schemagen.backends._local_engines import LLGuidanceEngine

        _ENGINE = LLGuidanceEngine(_ByteRuntime())  # type: ignore[arg-type]
    return _ENGINE


def grammar_for(spec: ToolSpec) -> Any:
    """The compiled constraint, as LocalBackend builds it (closed objects, compact JSON)."""
    from schemagen.backends.local import close_objects

    return _engine().compile(close_objects(spec.constraint), compact=True)


def grammar_accepts(grammar: Any, text: str) -> bool:
    from schemagen.backends._local_engines import ConstraintError

    state = grammar.new_state()
    try:
        state.consume(list(text.encode("utf-8")))
    except ConstraintError:
        return False
    return bool(state.is_accepting())


# ---------------------------------------------------------------- outlines' default backend


def outlines_regex(schema: Any) -> re.Pattern[str]:
    from outlines_core.json_schema import build_regex_from_schema

    return re.compile(build_regex_from_schema(json.dumps(schema)))


# ---------------------------------------------------------------- verdicts


@dataclass
class Tally:
    cases: int = 0
    refused: int = 0
    correct: int = 0
    wrongly_accepted: int = 0  # by the grammar
    wrongly_accepted_enforced: int = 0  # ... where the report said every keyword is in the grammar
    caught: int = 0  # wrongly accepted by the grammar, rejected by validation
    returned_invalid: int = 0  # wrongly accepted and passed validation: must stay 0
    wrongly_rejected: int = 0
    seconds: float = 0.0
    misses: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        for name in (
            "cases",
            "refused",
            "correct",
            "wrongly_accepted",
            "wrongly_accepted_enforced",
            "caught",
            "returned_invalid",
            "wrongly_rejected",
            "seconds",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.misses += other.misses


def _compile_once(cache: dict[str, Any], schema: Any, compile_schema: Callable[[Any], Any],
                  errors: type[Exception]) -> Any:
    """``compile_schema(schema)`` once per distinct schema; an error it raises is kept (and
    returned) in its place, so a refused schema is refused once."""
    key = compact(schema)
    if key not in cache:
        try:
            cache[key] = compile_schema(schema)
        except errors as exc:
            cache[key] = exc
    return cache[key]


def _spec_and_grammar(schema: Any) -> tuple[Any, Any]:
    spec = build_tool(schema, strict=False)
    return spec, grammar_for(spec)


def _schemagen_verdicts(cases: list[Case]) -> Tally:
    tally = Tally()
    compiled: dict[str, Any] = {}
    for case in cases:
        tally.cases += 1
        entry = _compile_once(compiled, case.schema, _spec_and_grammar, SchemagenError)
        if isinstance(entry, Exception):
            tally.refused += 1
            continue
        spec, grammar = entry
        text = compact({"value": case.data} if spec.wrapped else case.data)
        accepted = grammar_accepts(grammar, text)
        if accepted == case.valid:
            tally.correct += 1
            continue
        if not accepted:
            tally.wrongly_rejected += 1
            continue
        tally.wrongly_accepted += 1
        enforced = all(e.grammar for e in spec.enforcement)
        tally.wrongly_accepted_enforced += enforced
        if enforced:
            tally.misses.append(f"{case.file}: {case.group} / {case.description}")
        try:
            spec.validate(json.loads(text))
        except ValidationError:
            tally.caught += 1
        else:
            tally.returned_invalid += 1
            tally.misses.append(f"RETURNED {case.file}: {case.group} / {case.description}")
    return tally


def _outlines_verdicts(cases: list[Case]) -> Tally:
    tally = Tally()
    compiled: dict[str, Any] = {}
    for case in cases:
        tally.cases += 1
        # Exception: outlines raises many types for schemas it can't compile
        entry = _compile_once(compiled, case.schema, outlines_regex, Exception)
        if isinstance(entry, Exception):
            tally.refused += 1
            continue
        accepted = entry.fullmatch(compact(case.data)) is not None
        if accepted == case.valid:
            tally.correct += 1
        elif accepted:
            tally.wrongly_accepted += 1
            tally.returned_invalid += 1  # nothing validates after Outlines' grammar
        else:
            tally.wrongly_rejected += 1
    return tally


def fidelity(cases: list[Case], *, outlines: bool = True) -> dict[str, tuple[Tally, Tally | None]]:
    """Per keyword file: (schemagen's tally, Outlines' tally or None)."""
    by_file: dict[str, list[Case]] = {}
    for case in cases:
        by_file.setdefault(case.file, []).append(case)
    out: dict[str, tuple[Tally, Tally | None]] = {}
    for name, group in by_file.items():
        start = time.perf_counter()
        ours = _schemagen_verdicts(group)
        ours.seconds = time.perf_counter() - start
        theirs = None
        if outlines:
            start = time.perf_counter()
            theirs = _outlines_verdicts(group)
            theirs.seconds = time.perf_counter() - start
        out[name] = (ours, theirs)
    return out


def totals(table: dict[str, tuple[Tally, Tally | None]]) -> tuple[Tally, Tally]:
    ours, theirs = Tally(), Tally()
    for a, b in table.values():
        ours.add(a)
        if b is not None:
            theirs.add(b)
    return ours, theirs


def refused_reasons(cases: list[Case]) -> Counter[str]:
    """Why schemas were refused up front, by error keyword (for the docs)."""
    reasons: Counter[str] = Counter()
    for schema in {compact(c.schema): c.schema for c in cases}.values():
        try:
            grammar_for(build_tool(schema, strict=False))
        except SchemagenError as exc:
            reasons[f"{type(exc).__name__}:{getattr(exc, 'keyword', None)}"] += 1
    return reasons
