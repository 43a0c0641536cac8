"""No server-side constraint at all: the schema in the prompt, and a tolerant read of the answer
(bare JSON, fenced JSON, JSON in prose, or native tool-call markup). Works on any chat server;
the model alone decides whether the answer is well formed, and a reask fixes what it gets wrong."""

from __future__ import annotations

from typing import Any

from schemagen.engine.modes._structured import json_messages, recover_json
from schemagen.engine.modes.base import Rendered, RenderInput
from schemagen.exchange import Completion, Request
from schemagen.parse.recover import Recovered
from schemagen.schema import ToolSpec


class PromptMode:
    name = "prompt"
    endpoint = "chat"

    def render(self, inp: RenderInput) -> Rendered:
        body: dict[str, Any] = {"model": inp.model, "messages": json_messages(inp.spec, inp.messages)}
        body.update({k: v for k, v in inp.params.items() if v is not None})
        return Rendered(Request(endpoint="chat", body=body))

    def recover(self, spec: ToolSpec, completion: Completion, request: Request | None = None) -> Recovered:
        return recover_json(spec, completion, source="content:prompt")


MODE = PromptMode()
