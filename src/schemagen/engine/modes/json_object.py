"""``response_format={"type": "json_object"}`` with the schema in the prompt: the server only
promises JSON. llama-cpp-python also reads a ``schema`` beside the type and constrains the
output to it; that extension is sent too, and left out (once, recorded) by a server that
refuses it (``RenderInput.relax`` holds ``"schema_extension"``)."""

from __future__ import annotations

from typing import Any

from schemagen.engine.modes._structured import json_messages, recover_json
from schemagen.engine.modes.base import Rendered, RenderInput
from schemagen.exchange import Completion, Request
from schemagen.parse.recover import Recovered
from schemagen.schema import ToolSpec

SCHEMA_EXTENSION = "schema_extension"


class JsonObjectMode:
    name = "json_object"
    endpoint = "chat"

    def render(self, inp: RenderInput) -> Rendered:
        fmt: dict[str, Any] = {"type": "json_object"}
        if SCHEMA_EXTENSION not in inp.relax:
            fmt["schema"] = inp.spec.parameters
        body: dict[str, Any] = {
            "model": inp.model,
            "messages": json_messages(inp.spec, inp.messages),
            "response_format": fmt,
        }
        body.update({k: v for k, v in inp.params.items() if v is not None})
        return Rendered(Request(endpoint="chat", body=body))

    def recover(self, spec: ToolSpec, completion: Completion, request: Request | None = None) -> Recovered:
        return recover_json(spec, completion, source="content:json_object")


MODE = JsonObjectMode()
