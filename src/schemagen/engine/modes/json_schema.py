"""``response_format={"type": "json_schema", ...}``: the server constrains the content to the
schema (OpenAI structured outputs, vLLM, SGLang, llama.cpp's llama-server, Ollama). ``strict``
is set when the schema was made strict."""

from __future__ import annotations

from typing import Any

from schemagen.engine.modes._structured import json_messages, recover_json
from schemagen.engine.modes.base import Rendered, RenderInput
from schemagen.exchange import Completion, Request
from schemagen.parse.recover import Recovered
from schemagen.schema import ToolSpec


class JsonSchemaMode:
    name = "json_schema"
    endpoint = "chat"

    def render(self, inp: RenderInput) -> Rendered:
        spec = inp.spec
        schema: dict[str, Any] = {"name": spec.name, "schema": spec.parameters}
        if spec.description:
            schema["description"] = spec.description
        if spec.strict:
            schema["strict"] = True
        body: dict[str, Any] = {
            "model": inp.model,
            "messages": json_messages(spec, inp.messages),
            "response_format": {"type": "json_schema", "json_schema": schema},
        }
        body.update({k: v for k, v in inp.params.items() if v is not None})
        return Rendered(Request(endpoint="chat", body=body))

    def recover(self, spec: ToolSpec, completion: Completion, request: Request | None = None) -> Recovered:
        return recover_json(spec, completion, source="content:json_schema")


MODE = JsonSchemaMode()
