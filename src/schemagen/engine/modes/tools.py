"""Chat completions with a forced tool call: the default mode."""

from __future__ import annotations

from schemagen.engine.modes.base import Rendered, RenderInput
from schemagen.exchange import Completion, Request
from schemagen.parse.recover import Recovered, recover_arguments
from schemagen.render.messages import after_native_system, is_default_system, render_chat
from schemagen.render.templates import ChatTemplate, default_system_prompt
from schemagen.schema import ToolSpec


def render_tool_chat(inp: RenderInput, tool_choice: str | None = None) -> Rendered:
    """The chat body offering the tool: forced by name, or with ``tool_choice`` instead.

    The server applies the chat template, so schemagen can't see a default system prompt the
    template writes itself; when the caller names the template (``template=``), our system
    message follows that prompt instead of evicting it, as in raw mode.
    """
    messages = inp.messages
    notes: tuple[str, ...] = ()
    if isinstance(inp.template, ChatTemplate) and messages and is_default_system(messages[0], inp.spec):
        native = default_system_prompt(inp.template)
        if native:
            messages = after_native_system(messages, native, str(messages[0]["content"]))
            notes = (f"the chat template's own system prompt is kept ({native[:60]!r}); schemagen's "
                     "instruction follows it in the system message",)
    request = render_chat(inp.spec, messages, model=inp.model, params=inp.params,
                          single_tool_call=inp.single_tool_call)
    if tool_choice is not None:
        request.body["tool_choice"] = tool_choice
    return Rendered(request, notes=notes)


class ToolsMode:
    name = "tools"
    endpoint = "chat"

    def render(self, inp: RenderInput) -> Rendered:
        return render_tool_chat(inp)

    def recover(self, spec: ToolSpec, completion: Completion, request: Request | None = None) -> Recovered:
        return recover_arguments(spec, completion)


MODE = ToolsMode()
