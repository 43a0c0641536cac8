"""Field-level scoring for benchmarks/accuracy.py: labelled cases in, per-field hits out."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"


def load_cases(schemas: set[str] | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    cases = [json.loads(line) for line in (DATA / "cases.jsonl").read_text().splitlines() if line.strip()]
    if schemas:
        cases = [c for c in cases if c["schema"] in schemas]
    if limit:
        # spread a subset over the schemas rather than taking the first N
        per: dict[str, list[dict[str, Any]]] = {}
        for c in cases:
            per.setdefault(c["schema"], []).append(c)
        picked: list[dict[str, Any]] = []
        while len(picked) < limit and any(per.values()):
            for group in per.values():
                if group and len(picked) < limit:
                    picked.append(group.pop(0))
        cases = picked
    return cases


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return re.sub(r"\s+", " ", value).strip().strip(".").casefold()
    return value


def same(expected: Any, got: Any) -> bool:
    if isinstance(expected, bool) or isinstance(got, bool):
        return expected is got
    if isinstance(expected, (int, float)) and isinstance(got, (int, float)):
        return abs(float(expected) - float(got)) < 0.005
    if expected is None or got is None:
        return expected is None and (got is None or got == "")
    return bool(_norm(expected) == _norm(got))


def leaves(label: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(path, value) for every labelled leaf; list items are compared by position."""
    if isinstance(label, dict):
        return [leaf for key, value in label.items() for leaf in leaves(value, f"{prefix}.{key}")]
    if isinstance(label, list):
        out = [(f"{prefix}#len", len(label))]
        for i, value in enumerate(label):
            out += leaves(value, f"{prefix}[{i}]")
        return out
    return [(prefix, label)]


def lookup(value: Any, path: str) -> Any:
    for part in re.findall(r"\.([^.\[#]+)|\[(\d+)\]|#(len)", path):
        key, index, length = part
        if length:
            return len(value) if isinstance(value, list) else None
        if key:
            value = value.get(key) if isinstance(value, dict) else None
        else:
            i = int(index)
            value = value[i] if isinstance(value, list) and i < len(value) else None
    return value


def score(label: dict[str, Any], got: dict[str, Any] | None) -> tuple[int, int]:
    """(right, total) leaf fields; an invalid answer (None) gets every field wrong."""
    fields = leaves(label)
    if got is None:
        return 0, len(fields)
    return sum(same(expected, lookup(got, path)) for path, expected in fields), len(fields)


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def occurs(value: str, text: str) -> bool:
    """Whether ``value`` occurs in ``text`` (whitespace runs equal, case-insensitive)."""
    pattern = r"\s+".join(re.escape(part) for part in value.split())
    return not value.strip() or re.search(pattern, text, re.IGNORECASE) is not None
