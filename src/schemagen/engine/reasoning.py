"""Reasoning text, taken out of a completion before any mode parses it. Pure.

Reasoning models write their thinking either inline, between markers (``<think>...</think>``
and the other pairs in :data:`MARKERS`), or in a separate field of the message
(``reasoning_content``: DeepSeek, vLLM, llama.cpp; ``reasoning``: OpenRouter, Ollama).
Both are kept for the trace; only what is left is parsed. A closing marker with no
opening one (the chat template opened ``<think>`` in the prompt) means everything before
it was reasoning; an opening marker never closed (cut off while thinking) means the rest is.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from schemagen.exchange import Completion

#: (open, close) pairs of inline reasoning markers.
MARKERS: tuple[tuple[str, str], ...] = (
    ("<think>", "</think>"),  # DeepSeek-R1, Qwen3, QwQ, SmolLM3
    ("<thinking>", "</thinking>"),
    ("<reasoning>", "</reasoning>"),
    ("◁think▷", "◁/think▷"),  # Kimi
    ("[THINK]", "[/THINK]"),  # Magistral
    ("<|begin_of_thought|>", "<|end_of_thought|>"),
    ("<|channel|>analysis<|message|>", "<|end|>"),  # gpt-oss (harmony)
)
#: What gpt-oss writes before its final answer, once the analysis is cut out.
_HARMONY_FINAL = re.compile(r"^\s*(?:<\|start\|>assistant)?<\|channel\|>final<\|message\|>")
#: Message fields that carry reasoning apart from the content.
FIELDS = ("reasoning_content", "reasoning")


def split_reasoning(text: str) -> tuple[str, str]:
    """``(reasoning, rest)``: the inline reasoning of ``text`` and the text without it."""
    found: list[str] = []
    rest = text
    for opening, closing in MARKERS:
        while True:
            start = rest.find(opening)
            end = rest.find(closing, start + len(opening) if start >= 0 else 0)
            if start >= 0 and end >= 0:
                found.append(rest[start + len(opening):end])
                rest = rest[:start] + rest[end + len(closing):]
            elif start >= 0:  # never closed: cut off while thinking
                found.append(rest[start + len(opening):])
                rest = rest[:start]
            elif end >= 0 and opening != MARKERS[-1][0]:  # opened by the template, in the prompt
                found.append(rest[:end])
                rest = rest[end + len(closing):]
            else:
                break
    if found:
        rest = _HARMONY_FINAL.sub("", rest)
    reasoning = "\n".join(part.strip() for part in found if part.strip())
    return reasoning, rest.strip() if found else rest


def field_reasoning(raw: dict[str, Any]) -> str:
    """Reasoning the server returned in a field of the message, if any."""
    try:
        message = raw["choices"][0].get("message") or {}
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""
    parts = [message.get(name) for name in FIELDS]
    return "\n".join(p for p in parts if isinstance(p, str) and p.strip())


def strip_reasoning(completion: Completion) -> tuple[Completion, str]:
    """The completion with inline reasoning cut from its content, and all the reasoning found."""
    inline, rest = split_reasoning(completion.content or "") if completion.content else ("", "")
    separate = field_reasoning(completion.raw)
    reasoning = "\n".join(p for p in (separate, inline) if p)
    if inline:
        completion = dataclasses.replace(completion, content=rest or None)
    return completion, reasoning


__all__ = ["FIELDS", "MARKERS", "field_reasoning", "split_reasoning", "strip_reasoning"]
