"""``tool_choice="auto"``: the tool is offered, the system message asks for the call, and the
answer is read tolerantly (a call in ``tool_calls``, else tool-call markup or JSON in the prose).
The mode for servers that refuse any forced choice, and for thinking models, where forcing a
tool turns reasoning off (Anthropic-compatible endpoints refuse the combination outright)."""

from __future__ import annotations

from schemagen.engine.modes.base import Rendered, RenderInput
from schemagen.engine.modes.tools import render_tool_chat
from schemagen.exchange import Completion, Request
from schemagen.parse.recover import Recovered, recover_arguments
from schemagen.schema import ToolSpec


class ToolsAutoMode:
    name = "tools_auto"
    endpoint = "chat"

    def render(self, inp: RenderInput) -> Rendered:
        return render_tool_chat(inp, "auto")

    def recover(self, spec: ToolSpec, completion: Completion, request: Request | None = None) -> Recovered:
        recovered = recover_arguments(spec, completion)
        if recovered.notes and recovered.notes[0].startswith("the server ignored tool_choice"):
            recovered.notes[0] = "tool_choice=auto: no tool call; arguments recovered from content"
        return recovered


MODE = ToolsAutoMode()
