"""``mode="auto"``: which mode to try next, and what was learned about an endpoint. Pure.

The ladder, top to bottom::

    tools -> tools_required -> tools_auto -> json_schema -> json_object -> prompt

``auto`` starts at ``tools`` (or where an earlier extraction against the same endpoint and
model ended) and steps down only on an answer about capability: a rejection that names the
feature (see ``schemagen.backends.capability``), or a constraint the server ignored (no tool
call; content that is not JSON). Which rung comes next depends on what was refused:

==================  ===================================================================
refused             next mode
==================  ===================================================================
``tool_choice``     the next rung (named -> ``required`` -> ``auto`` -> ``json_schema``);
                    ``auto`` at once when the server says only ``auto`` is allowed
``tools``           ``json_schema`` (no tool calling at all)
thinking            ``tools_auto`` (keeps the reasoning), from there ``json_schema``
``response_format`` ``json_schema`` -> ``json_object`` -> ``prompt``
ignored             tool modes -> ``json_schema``; ``json_schema`` -> ``json_object`` -> ``prompt``
==================  ===================================================================

Not step-downs, and done in any mode: a refused ``strict`` schema is retried once non-strict;
a refused ``max_tokens`` is resent as ``max_completion_tokens``; a refused ``schema`` beside
``json_object`` (llama-cpp-python's extension) is left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

LADDER: tuple[str, ...] = ("tools", "tools_required", "tools_auto", "json_schema", "json_object", "prompt")
TOOL_MODES = ("tools", "tools_required", "tools_auto")
IGNORED = "ignored"
#: Requests one extraction may spend on negotiation before giving up on it.
MAX_NEGOTIATION = len(LADDER) + 3
_ONLY_AUTO = re.compile(r"only\W+auto|must be\W+auto", re.I)


def step_down(mode: str, refused: str, said: str = "") -> str | None:
    """The mode to try after ``mode`` when the server refused (or ignored) ``refused``; None: none.
    ``said``: the server's words; one that allows only ``auto`` skips ``required``."""
    if refused == "tool_choice" and mode == "tools" and _ONLY_AUTO.search(said) and "required" not in said:
        return "tools_auto"
    if mode not in LADDER or refused in ("strict", "max_tokens"):  # fixed in place, not by a mode
        return None
    at = LADDER.index(mode)
    after = LADDER[at + 1:]
    if not after:
        return None
    if refused == "thinking":
        target = "tools_auto" if at < LADDER.index("tools_auto") else "json_schema"
    elif refused == "tools" or (refused == IGNORED and mode in TOOL_MODES):
        target = "json_schema"
    elif refused == "response_format" and mode in TOOL_MODES:
        return None  # a tool request carries no response_format: not ours to interpret
    else:
        target = after[0]
    return target if LADDER.index(target) > at else after[0]


@dataclass(frozen=True)
class Step:
    """One step down: from which mode, to which, why, and the server's words."""

    from_mode: str
    to_mode: str
    refused: str
    said: str

    def __str__(self) -> str:
        what = "ignored the constraint" if self.refused == IGNORED else f"refused `{self.refused}`"
        return f"{self.from_mode} -> {self.to_mode}: the server {what}: {self.said}"

    def to_dict(self) -> dict[str, str]:
        return {"from": self.from_mode, "to": self.to_mode, "refused": self.refused, "said": self.said}


@dataclass(frozen=True)
class Learned:
    """What negotiation found out about one (base_url, model): where ``auto`` starts next time."""

    mode: str = "tools"
    relax: tuple[str, ...] = ()  # "strict", "schema_extension": parts left out
    completion_key: bool = False  # send max_completion_tokens instead of max_tokens
    steps: tuple[str, ...] = field(default=())  # why, one line per step, for doctor and debug
    reasoning: bool = False  # the model reasons before answering: derived bounds leave room for it

    @property
    def changed(self) -> bool:
        return self.mode != LADDER[0] or bool(self.relax) or self.completion_key or self.reasoning

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "relax": list(self.relax), "completion_key": self.completion_key,
                "steps": list(self.steps), "reasoning": self.reasoning}

    @classmethod
    def from_dict(cls, data: Any) -> Learned | None:
        if not isinstance(data, dict) or not isinstance(data.get("mode"), str):
            return None
        return cls(mode=data["mode"], relax=tuple(str(r) for r in data.get("relax") or ()),
                   completion_key=bool(data.get("completion_key")),
                   steps=tuple(str(s) for s in data.get("steps") or ()),
                   reasoning=bool(data.get("reasoning")))


__all__ = ["IGNORED", "LADDER", "MAX_NEGOTIATION", "TOOL_MODES", "Learned", "Step", "step_down"]
