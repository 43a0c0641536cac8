"""``tool_choice="required"`` with the single tool: for servers that refuse a named choice
(gpt-oss on vLLM accepts only ``auto``/``required``)."""

from __future__ import annotations

from schemagen.engine.modes.base import Rendered, RenderInput
from schemagen.engine.modes.tools import render_tool_chat
from schemagen.exchange import Completion, Request
from schemagen.parse.recover import Recovered, recover_arguments
from schemagen.schema import ToolSpec


class ToolsRequiredMode:
    name = "tools_required"
    endpoint = "chat"

    def render(self, inp: RenderInput) -> Rendered:
        return render_tool_chat(inp, "required")

    def recover(self, spec: ToolSpec, completion: Completion, request: Request | None = None) -> Recovered:
        return recover_arguments(spec, completion)


MODE = ToolsRequiredMode()
