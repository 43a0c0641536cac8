"""``chat-raw-parity``: at temperature 0 the chat endpoint and raw mode (local render +
``/v1/completions`` + schemagen's parsers) give the same arguments. Needs a template."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from schemagen.doctor.checks.base import Check, preview
from schemagen.doctor.report import CheckResult
from schemagen.engine.modes import RenderInput
from schemagen.engine.modes.raw import MODE as RAW
from schemagen.exchange import Completion
from schemagen.parse.jsonfix import NotJSON, loads_strict
from schemagen.parse.recover import NoToolCall

if TYPE_CHECKING:
    from schemagen.doctor.session import Doctor


def judge_parity(
    chat: Completion | Exception,
    raw: Completion | Exception,
    raw_arguments: Any,
    raw_error: str | None,
    raw_source: str = "",
) -> CheckResult:
    """Chat ``tool_calls`` arguments and the arguments raw mode read from the completion agree."""
    evidence = []
    chat_arguments: Any = None
    chat_error = None
    if isinstance(chat, Exception):
        chat_error = f"request failed: {chat}"
    elif not chat.tool_calls:
        chat_error = f"no tool_calls; content {preview(chat.content)}"
    else:
        try:
            chat_arguments = loads_strict(chat.tool_calls[0].arguments)
        except (NotJSON, ValueError):
            chat_error = f"arguments are not JSON: {preview(chat.tool_calls[0].arguments)}"
    evidence.append(f"chat: {chat_error or json.dumps(chat_arguments, ensure_ascii=False)}")
    raw_text = raw.text if isinstance(raw, Completion) else ""
    if isinstance(raw, Exception):
        raw_error = f"request failed: {raw}"
    evidence.append(
        f"raw: {raw_error or json.dumps(raw_arguments, ensure_ascii=False)}"
        + (f" (read by {raw_source})" if raw_source and not raw_error else "")
    )
    evidence.append(f"raw completion: {preview(raw_text, 200)}")
    if chat_error is None and raw_error is None and chat_arguments == raw_arguments:
        return CheckResult(
            "chat-raw-parity", "pass", "chat and raw mode produced the same arguments", tuple(evidence)
        )
    if chat_error and raw_error is None:
        summary = "raw mode recovered a call where the chat endpoint returned none"
        fix = (
            "The server's tool parser drops calls the model makes (e.g. an id or marker it does not "
            "expect). Fix the server's parser/template, or use mode='raw'."
        )
    elif raw_error and chat_error is None:
        summary = "the chat endpoint returned a call; raw mode read none from the same model"
        fix = (
            "The chat path may constrain the output (a grammar) while /v1/completions does not, or "
            "the local template differs from the server's. Compare the prompts (schemagen render) "
            "and keep mode='tools' for this server."
        )
    else:
        summary = (
            "chat and raw mode disagree" if not (chat_error and raw_error) else "neither path gave a call"
        )
        fix = (
            "Different prompts or different decoding: check generation-prompt/empty-content/"
            "tools-injected, and compare `schemagen render` with the server's prompt."
        )
    return CheckResult("chat-raw-parity", "fail", summary, tuple(evidence), fix)


def run(doctor: Doctor) -> CheckResult:
    if doctor.template is None:
        return CheckResult("chat-raw-parity", "skip", "no chat template (pass --template)")
    if "completions" not in getattr(doctor.backend, "endpoints", ()):
        return CheckResult("chat-raw-parity", "skip", "the backend has no /v1/completions endpoint")
    params = {"temperature": 0.0, "max_tokens": doctor.max_tokens}
    rendered = RAW.render(
        RenderInput(
            spec=doctor.spec,
            messages=doctor.call_messages(),
            model=doctor.backend.model,
            params=params,
            template=doctor.template,
        )
    )
    raw = doctor.send(rendered.request)
    arguments, error, source = None, None, ""
    if isinstance(raw, Completion):
        try:
            recovered = RAW.recover(doctor.spec, raw, rendered.request)
            arguments, source = recovered.arguments, recovered.source
        except NoToolCall as exc:
            error = f"no call read: {exc}"
    return judge_parity(doctor.full_call(), raw, arguments, error, source)


CHECK = Check("chat-raw-parity", "Chat and raw completions agree at temperature 0", run)
