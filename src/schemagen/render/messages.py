"""Stage 2: the request, built as plain data. Pure functions, no I/O.

``build_messages`` makes the conversation; ``render_chat`` turns it into the exact
``/v1/chat/completions`` body. Reasks rebuild from the original messages plus only
the last failed call, so the history never grows with retries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from schemagen.exchange import Request
from schemagen.schema import ToolSpec

DEFAULT_SYSTEM = (
    "You extract structured data from the user's text. Call the `{tool}` tool exactly once, "
    "with arguments taken from the text. Do not invent values that are not in the text."
)
REASK_CALL_ID = "call_failed"
EXAMPLE_CALL_ID = "call_example_"


@dataclass(frozen=True)
class Example:
    """A worked example: an input text and the arguments the tool should get for it."""

    input: str
    output: Mapping[str, Any] | BaseModel


def _arguments_json(output: Mapping[str, Any] | BaseModel) -> str:
    if isinstance(output, BaseModel):
        return output.model_dump_json()
    return json.dumps(output, ensure_ascii=False)


def build_messages(
    spec: ToolSpec,
    text: str,
    *,
    system: str | None = None,
    examples: Iterable[Example] = (),
) -> list[dict[str, Any]]:
    """System instruction, optional examples as earlier tool-call turns, then the text."""
    instruction = (system if system is not None else DEFAULT_SYSTEM).replace("{tool}", spec.name)
    messages: list[dict[str, Any]] = [{"role": "system", "content": instruction}]
    for i, example in enumerate(examples):
        call_id = f"{EXAMPLE_CALL_ID}{i}"
        messages += [
            {"role": "user", "content": example.input},
            {
                "role": "assistant",
                "content": "",  # not null: llama-cpp-python's server answers 500 to a null content
                "tool_calls": [{
                    "id": call_id,
                    "type": "function",
                    "function": {"name": spec.name, "arguments": _arguments_json(example.output)},
                }],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "Recorded."},
        ]
    messages.append({"role": "user", "content": text})
    return messages


def is_default_system(message: Mapping[str, Any], spec: ToolSpec) -> bool:
    """Whether ``message`` is schemagen's default system message (not a caller's ``system=``)."""
    ours = DEFAULT_SYSTEM.replace("{tool}", spec.name)
    return message.get("role") == "system" and message.get("content") == ours


def after_native_system(
    messages: Sequence[Mapping[str, Any]], native: str | None, instruction: str,
) -> list[dict[str, Any]]:
    """``messages`` whose system turn is ``instruction``, placed after ``native``: the system
    prompt a chat template writes itself when a conversation has none. Replacing that prompt
    costs a small model accuracy; keeping it and adding ours gained most (docs/local.md)."""
    out = [dict(m) for m in messages]
    system = f"{native}\n\n{instruction}" if native else instruction
    if out and out[0].get("role") == "system":
        out[0]["content"] = system
    else:
        out.insert(0, {"role": "system", "content": system})
    return out


def reask_messages(
    spec: ToolSpec, messages: Sequence[Mapping[str, Any]], failed_output: str, errors: str
) -> list[Mapping[str, Any]]:
    """The original messages, the failed call, and the errors as its tool result.

    ``function.arguments`` is always valid JSON (servers that decode the history reject
    anything else): output that isn't (prose instead of a call, a cut-off call) is sent
    as ``{}`` and quoted in the tool result instead. The assistant's ``content`` is ``""``
    rather than null, which every server accepts next to ``tool_calls``.
    """
    try:
        json.loads(failed_output)
        arguments, quoted = failed_output, ""
    except ValueError:
        arguments, quoted = "{}", f"Your output, which is not valid JSON arguments:\n{failed_output}\n"
    return [
        *messages,
        {
            "role": "assistant",
            # "" rather than None: llama-cpp-python's server answers 500 to a null content, and its
            # template reads message.content, so the key can't be left out either.
            "content": "",
            "tool_calls": [{
                "id": REASK_CALL_ID,
                "type": "function",
                "function": {"name": spec.name, "arguments": arguments},
            }],
        },
        {
            "role": "tool",
            "tool_call_id": REASK_CALL_ID,
            "content": (
                f"{quoted}The arguments failed validation:\n{errors}\n"
                f"Call `{spec.name}` again with every error fixed."
            ),
        },
    ]


def render_chat(
    spec: ToolSpec,
    messages: Sequence[Mapping[str, Any]],
    *,
    model: str,
    params: Mapping[str, Any] | None = None,
    single_tool_call: bool = True,
) -> Request:
    """The exact chat-completions body: the forced tool, a named tool_choice, params passed through.
    ``single_tool_call`` sends ``parallel_tool_calls: false``."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [dict(m) for m in messages],
        "tools": [spec.tool],
        "tool_choice": spec.tool_choice,
    }
    if single_tool_call:
        body["parallel_tool_calls"] = False
    body.update({k: v for k, v in (params or {}).items() if v is not None})
    return Request(endpoint="chat", body=body)
