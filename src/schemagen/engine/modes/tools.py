"""Chat completions with a forced tool call: the default mode."""

from __future__ import annotations

from schemagen.engine.modes.base import Rendered, RenderInput
from schemagen.exchange import Completion, Request
from schemagen.parse.recover import Recovered, recover_arguments
from schemagen.render.messages import render_chat
from schemagen.schema import ToolSpec


class ToolsMode:
    name = "tools"
    endpoint = "chat"

    def render(self, inp: RenderInput) -> Rendered:
        request = render_chat(
            inp.spec, inp.messages, model=inp.model, params=inp.params,
            single_tool_call=inp.single_tool_call,
        )
        return Rendered(request)

    def recover(self, spec: ToolSpec, completion: Completion, request: Request | None = None) -> Recovered:
        return recover_arguments(spec, completion)


MODE = ToolsMode()
