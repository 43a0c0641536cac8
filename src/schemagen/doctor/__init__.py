"""``schemagen doctor``: conformance checks for an OpenAI-compatible endpoint's tool-call path.

A chat/tool request goes through three stages on the server: the conversation is expanded
into one prompt with the chat template, the prompt is completed, the completion is parsed
back into ``tool_calls``. Each check below asks the server something whose right answer is
known and compares; each gives pass, fail or skip (with the reason) and the evidence.

1. ``forced-tool``: a named ``tool_choice`` is honoured and the arguments are schema-valid,
   over N samples of a prompt that invites no call at all.
2. ``chat-raw-parity``: at temperature 0 the chat endpoint and raw mode (local render +
   ``/v1/completions`` + schemagen's parsers) give the same arguments. Needs a template.
3. ``generation-prompt``: the server's prompt ends with the assistant header (its own
   rendering via llama.cpp ``/apply-template`` or vLLM ``/tokenize``, else ``prompt_tokens``
   against the local render's token count).
4. ``empty-content``: an assistant turn with ``content: ''`` next to ``tool_calls`` costs the
   server what it costs the local render (no ``[{'type': 'text', ...}]`` printed literally).
5. ``tools-injected``: ``prompt_tokens`` with tools > without: the model sees the schema.
6. ``markup-leak``: no tool-call markup left in ``content`` while ``tool_calls`` is empty.
7. ``finish-reason``: ``tool_calls``/``stop`` when a call completes, ``length`` when
   ``max_tokens`` cuts it.
8. ``auto-mode``: a fresh ``mode="auto"`` extraction: the mode it ends in, each step down with
   the server's words, and the extra requests it cost (see docs/modes.md).

I/O goes through the backend only (``complete``, plus ``server_post``/``server_get`` for the
routes outside the OpenAI API); the ``judge_*`` functions are pure and take plain data.
Token counts of local renders come from a pluggable :class:`Tokenizer`.
"""

from __future__ import annotations

import atexit
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from schemagen.engine.modes import RenderInput
from schemagen.engine.modes.raw import MODE as RAW
from schemagen.errors import MissingDependencyError, SchemagenError, TemplateError, TransportError
from schemagen.exchange import Completion, Request
from schemagen.parse.formats import PARSERS, get_parser
from schemagen.parse.jsonfix import NotJSON, loads_strict
from schemagen.parse.recover import NoToolCall
from schemagen.render.lint import (
    check_content_literals,
    check_generation_prompt,
    check_tools_present,
    generation_prompt_between,
)
from schemagen.render.messages import build_messages, render_chat
from schemagen.render.templates import ChatTemplate, load_template, normalize_messages
from schemagen.schema import ToolSpec, build_tool

Verdict = Literal["pass", "fail", "skip"]

#: (id, title) of every check, in the order they run and are printed.
CHECKS: tuple[tuple[str, str], ...] = (
    ("forced-tool", "Forced tool honoured, arguments schema-valid"),
    ("chat-raw-parity", "Chat and raw completions agree at temperature 0"),
    ("generation-prompt", "Generation prompt present in the server's prompt"),
    ("empty-content", "Empty content next to tool_calls renders as nothing"),
    ("tools-injected", "Tool schema reaches the prompt"),
    ("markup-leak", "No tool-call markup left in content"),
    ("finish-reason", "finish_reason: tool_calls/stop when complete, length when cut"),
    ("auto-mode", "The output mode mode='auto' picks, and why"),
)
TITLES = dict(CHECKS)


class DoctorCity(BaseModel):
    """A city named in the text."""

    name: str
    country: str


NO_CALL_PROMPT = "Hi! Just saying hello, nothing to do here."
CALL_PROMPT = "Paris is the capital of France."
_CUT_TOKENS = 3


@dataclass(frozen=True)
class CheckResult:
    id: str
    verdict: Verdict
    summary: str
    evidence: tuple[str, ...] = ()
    fix: str = ""

    @property
    def title(self) -> str:
        return TITLES.get(self.id, self.id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "verdict": self.verdict,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "fix": self.fix,
        }


@dataclass
class DoctorReport:
    model: str
    endpoint: str | None
    template: str | None
    tokenizer: str | None
    checks: list[CheckResult] = field(default_factory=list)
    auto_mode: dict[str, Any] | None = None  # what mode="auto" picked: mode, steps, extra_requests

    @property
    def ok(self) -> bool:
        return all(check.verdict != "fail" for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "endpoint": self.endpoint,
            "template": self.template,
            "tokenizer": self.tokenizer,
            "ok": self.ok,
            "auto_mode": self.auto_mode,
            "checks": [c.to_dict() for c in self.checks],
        }


# --------------------------------------------------------------------------- tokenizers


@dataclass(frozen=True)
class Tokenizer:
    """Counts the tokens of a prompt text, special-token markers parsed as special tokens.

    ``adds_bos``: whether counts include a BOS the tokenizer puts in front (None: unknown).
    """

    count: Callable[[str], int]
    name: str
    adds_bos: bool | None = None


_VOCABS: dict[str, Any] = {}


def _close_vocabs() -> None:
    # Closed before interpreter teardown: llama-cpp-python's __del__ fails once its module is gone.
    while _VOCABS:
        _VOCABS.popitem()[1].close()


def _gguf_vocab(path: str) -> Any:
    if path not in _VOCABS:
        import llama_cpp

        if not _VOCABS:
            atexit.register(_close_vocabs)
        _VOCABS[path] = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    return _VOCABS[path]


def gguf_tokenizer(path: str | Path) -> Tokenizer:
    """The tokenizer of a GGUF file, read with llama-cpp-python's ``vocab_only`` (no weights)."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            "Counting tokens with a GGUF tokenizer", "local", "llama-cpp-python"
        ) from exc
    vocab = _gguf_vocab(str(Path(path).resolve()))

    def count(text: str) -> int:
        return len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    return Tokenizer(count, f"gguf:{Path(path).name}", adds_bos=False)


def hf_tokenizer(path: str | Path) -> Tokenizer:
    """A Hugging Face ``tokenizer.json`` (or a model folder holding one), read with ``tokenizers``."""
    path = Path(path)
    file = path / "tokenizer.json" if path.is_dir() else path
    try:
        from tokenizers import Tokenizer as HFTokenizer
    except ImportError as exc:
        raise MissingDependencyError(
            "Counting tokens with a tokenizer.json", "transformers", "tokenizers"
        ) from exc
    try:
        tokenizer = HFTokenizer.from_file(str(file))
    except Exception as exc:  # tokenizers raises its own exception type for unreadable files
        raise ValueError(f"cannot read a tokenizer from {str(file)!r}: {exc}") from exc

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return Tokenizer(count, f"tokenizers:{file.parent.name}/{file.name}", adds_bos=False)


def tokenizer_from_path(path: str | Path) -> Tokenizer:
    """A ``.gguf`` file's tokenizer, else a Hugging Face ``tokenizer.json`` (file or folder)."""
    return gguf_tokenizer(path) if str(path).lower().endswith(".gguf") else hf_tokenizer(path)


def backend_tokenizer(backend: Any) -> Tokenizer | None:
    """The backend's own counter (the local backend has ``count_tokens``)."""
    counter = getattr(backend, "count_tokens", None)
    return Tokenizer(counter, f"{type(backend).__name__}.count_tokens") if callable(counter) else None


def server_tokenizer(backend: Any) -> Tokenizer | None:
    """The server's tokenizer through its tokenize route: llama-cpp-python ``/extras/tokenize``,
    vLLM ``/tokenize`` (``prompt``), llama.cpp ``/tokenize`` (``content``). None if none answers."""
    post = getattr(backend, "server_post", None)
    if post is None:
        return None
    model = getattr(backend, "model", "")
    forms: list[tuple[str, str, Callable[[str], dict[str, Any]]]] = [
        ("/extras/tokenize", "llama-cpp-python /extras/tokenize", lambda t: {"input": t, "model": model}),
        ("/tokenize", "vLLM /tokenize", lambda t: {"model": model, "prompt": t, "add_special_tokens": False}),
        (
            "/tokenize",
            "llama.cpp /tokenize",
            lambda t: {"content": t, "add_special": False, "parse_special": True},
        ),
    ]
    for path, name, make in forms:

        def count(text: str, path: str = path, make: Callable[[str], dict[str, Any]] = make) -> int:
            return _token_count(post(path, make(text)))

        try:
            if count("hello world") > 0:
                return Tokenizer(count, f"server {name}", adds_bos=None)
        except (TransportError, ValueError):
            continue
    return None


def _token_count(data: Any) -> int:
    if isinstance(data, Mapping):
        if isinstance(data.get("count"), int):
            return int(data["count"])
        if isinstance(data.get("tokens"), list):
            return len(data["tokens"])
    raise ValueError(f"not a tokenize response: {str(data)[:100]}")


# --------------------------------------------------------------------------- pure judges


def _preview(text: str | None, limit: int = 80) -> str:
    text = text or ""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _call_problem(spec: ToolSpec, completion: Completion) -> str | None:
    """What keeps ``completion`` from being a complete, schema-valid forced call; None if nothing."""
    if not completion.tool_calls:
        finish, content = completion.finish_reason, _preview(completion.content)
        return f"no tool_calls (finish_reason={finish}; content {content})"
    call = completion.tool_calls[0]
    if call.name != spec.name:
        return f"called {call.name!r}, not the forced {spec.name!r}"
    try:
        arguments = loads_strict(call.arguments)
    except (NotJSON, ValueError) as exc:
        return f"arguments are not JSON ({exc}): {_preview(call.arguments)}"
    try:
        spec.validate(arguments)
    except ValidationError as exc:
        return f"arguments fail the schema ({exc.error_count()} errors): {_preview(call.arguments)}"
    return None


def _cut(completion: Completion, max_tokens: int | None) -> bool:
    """Stopped by max_tokens: said so, or used them all (some servers say "tool_calls" anyway)."""
    used = completion.usage.completion_tokens
    return completion.finish_reason == "length" or bool(max_tokens and used >= max_tokens)


def judge_forced_tool(
    spec: ToolSpec, samples: Sequence[Completion | Exception], max_tokens: int | None = None
) -> CheckResult:
    """Every sample must be a call to the forced tool with schema-valid JSON arguments. A sample
    cut off by ``max_tokens`` before its call was complete proves nothing either way."""
    evidence, failures, cut = [], 0, 0
    for i, sample in enumerate(samples, 1):
        if isinstance(sample, Exception):
            failures += 1
            evidence.append(f"sample {i}: request failed: {sample}")
            continue
        problem = _call_problem(spec, sample)
        if problem and _cut(sample, max_tokens):
            cut += 1
            evidence.append(f"sample {i}: cut off at max_tokens={max_tokens}, inconclusive ({problem})")
        elif problem:
            failures += 1
            evidence.append(f"sample {i}: {problem}")
        else:
            call = sample.tool_calls[0]
            evidence.append(f"sample {i}: {spec.name}({call.arguments}) finish_reason={sample.finish_reason}")
    judged = len(samples) - cut
    if not samples:
        return CheckResult("forced-tool", "skip", "no samples were asked for (--samples 0)")
    if failures:
        return CheckResult(
            "forced-tool",
            "fail",
            f"{failures} of {judged} samples were not a valid forced call",
            tuple(evidence),
            "The server ignores or loosely enforces a named tool_choice. Use a server/model with "
            "constrained tool calls (vLLM, llama.cpp with --jinja), or mode='raw' with a parser that "
            "accepts the model's format; schemagen's reasks cover occasional misses.",
        )
    if not judged:
        summary = "every sample was cut off by max_tokens (raise --max-tokens)"
        return CheckResult("forced-tool", "skip", summary, tuple(evidence))
    return CheckResult(
        "forced-tool",
        "pass",
        f"{judged} of {judged} samples called {spec.name} with schema-valid arguments"
        + (f" ({cut} cut off, not judged)" if cut else ""),
        tuple(evidence),
    )


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
        chat_error = f"no tool_calls; content {_preview(chat.content)}"
    else:
        try:
            chat_arguments = loads_strict(chat.tool_calls[0].arguments)
        except (NotJSON, ValueError):
            chat_error = f"arguments are not JSON: {_preview(chat.tool_calls[0].arguments)}"
    evidence.append(f"chat: {chat_error or json.dumps(chat_arguments, ensure_ascii=False)}")
    raw_text = raw.text if isinstance(raw, Completion) else ""
    if isinstance(raw, Exception):
        raw_error = f"request failed: {raw}"
    evidence.append(
        f"raw: {raw_error or json.dumps(raw_arguments, ensure_ascii=False)}"
        + (f" (read by {raw_source})" if raw_source and not raw_error else "")
    )
    evidence.append(f"raw completion: {_preview(raw_text, 200)}")
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


def judge_generation_prompt(
    *,
    generation_prompt: str,
    server_prompt: str | None = None,
    server_tokens: int | None = None,
    local_with: int | None = None,
    local_without: int | None = None,
    bos_slack: int = 0,
    how: str = "",
) -> CheckResult:
    """From the server's own prompt text if there is one, else from token counts."""
    if not generation_prompt:
        finding = check_generation_prompt("", "")[0]
        return CheckResult("generation-prompt", "fail", f"the template itself: {finding.message}",
                           (str(finding),), _GEN_FIX)
    gen = f"generation prompt {generation_prompt!r}"
    if server_prompt is not None:
        findings = check_generation_prompt(server_prompt, generation_prompt)
        evidence: tuple[str, ...] = (f"server prompt via {how} ends with {server_prompt[-60:]!r}",)
        if findings:
            return CheckResult(
                "generation-prompt",
                "fail",
                findings[0].message,
                evidence + tuple(map(str, findings)),
                _GEN_FIX,
            )
        return CheckResult("generation-prompt", "pass", f"the server's prompt ends with the {gen}", evidence)
    if server_tokens is None or local_with is None or local_without is None:
        return CheckResult(
            "generation-prompt", "skip", "the server shows neither its prompt nor prompt_tokens"
        )
    evidence = (
        f"server prompt_tokens={server_tokens} ({how})",
        f"local render: {local_with} tokens with the {gen}, {local_without} without",
    )
    extra_with, extra_without = server_tokens - local_with, server_tokens - local_without
    if 0 <= extra_with <= bos_slack:
        note = "" if extra_with == 0 else f" (+{extra_with}: the server's BOS)"
        return CheckResult("generation-prompt", "pass", f"server and local render agree{note}", evidence)
    if local_with != local_without and 0 <= extra_without <= bos_slack:
        return CheckResult(
            "generation-prompt",
            "fail",
            f"the server's prompt has the token count of a render without the {gen}",
            evidence,
            _GEN_FIX,
        )
    return CheckResult(
        "generation-prompt",
        "fail",
        f"the server's prompt is {extra_with:+d} tokens off the local render; the {gen} can't be confirmed",
        evidence,
        "The server renders with a different template than the one given (or adds/strips tokens). "
        "Pass the server's exact template with --template, or inspect its prompt (llama.cpp "
        "/apply-template, vLLM /tokenize).",
    )


_GEN_FIX = (
    "The server renders without add_generation_prompt (or its template ignores it), so the model "
    "continues the last turn. Fix the template/server flag, or use mode='raw', which always adds it."
)


def judge_empty_content(
    *,
    server_empty: int | None,
    server_ref: int | None,
    local_empty: int | None = None,
    local_ref: int | None = None,
    variants: Mapping[str, int] | None = None,
    server_prompt: str | None = None,
    messages: Sequence[Mapping[str, Any]] = (),
    how: str = "",
) -> CheckResult:
    """``server_*``: the server's prompt tokens for the history with ``content: ''`` and with a
    short reference content; ``local_*`` the same for the local render; ``variants`` token
    counts of local renders that print the empty content wrongly (name -> count)."""
    fix = (
        "The server (or its template) prints empty content as a literal list/None. Send content "
        "null, fix the template (`{% if message.content is string %}`), or use mode='raw', "
        "which renders empty content as nothing."
    )
    if server_prompt is not None:
        findings = check_content_literals(server_prompt, normalize_messages(messages))
        if findings:
            return CheckResult(
                "empty-content",
                "fail",
                findings[0].message,
                tuple(f"{f} (server prompt via {how})" for f in findings),
                fix,
            )
        return CheckResult(
            "empty-content",
            "pass",
            "no content literal in the server's prompt",
            (f"server prompt via {how}",),
        )
    if server_empty is None or server_ref is None:
        return CheckResult("empty-content", "skip", "the server reports no prompt_tokens")
    evidence = [
        f"server prompt_tokens: {server_empty} with content '', {server_ref} with content 'OK' ({how})"
    ]
    if local_empty is None or local_ref is None:
        if server_empty > server_ref:
            return CheckResult(
                "empty-content",
                "fail",
                "content '' costs the server more prompt tokens than content 'OK'",
                tuple(evidence),
                fix,
            )
        return CheckResult(
            "empty-content",
            "skip",
            "no template/tokenizer for the exact comparison (heuristic found nothing: "
            "'' costs no more than 'OK')",
            tuple(evidence),
        )
    evidence.append(f"local render: {local_empty} tokens with content '', {local_ref} with 'OK'")
    offset = server_ref - local_ref  # what the server adds anyway (BOS, a different system prompt...)
    extra = server_empty - local_empty - offset
    if extra == 0:
        return CheckResult(
            "empty-content",
            "pass",
            "content '' costs the server what it costs the local render",
            tuple(evidence),
        )
    for name, count in (variants or {}).items():
        if server_empty - count == offset:
            evidence.append(f"the server's count matches a local render that prints the content as {name}")
    return CheckResult(
        "empty-content",
        "fail",
        f"content '' costs the server {extra:+d} tokens more than the local render",
        tuple(evidence),
        fix,
    )


def judge_tools_injected(
    *,
    with_tools: int | None,
    without_tools: int | None,
    server_prompt: str | None = None,
    tools: Sequence[Mapping[str, Any]] = (),
    how: str = "",
) -> CheckResult:
    fix = (
        "The server's chat template ignores `tools`, so the model never sees the schema (a grammar may "
        "still force the shape, but field meanings and descriptions are lost). Use a template that "
        "renders tools (llama.cpp --jinja, a tool-use template), or mode='raw', which injects the "
        "schema into the system message."
    )
    if server_prompt is not None:
        findings = check_tools_present(server_prompt, tools)
        if findings:
            return CheckResult(
                "tools-injected", "fail", findings[0].message, (f"server prompt via {how}",), fix
            )
        return CheckResult(
            "tools-injected",
            "pass",
            "the tool is named in the server's prompt",
            (f"server prompt via {how}",),
        )
    if with_tools is None or without_tools is None:
        return CheckResult("tools-injected", "skip", "the server reports no prompt_tokens")
    evidence = (f"prompt_tokens: {with_tools} with the tool, {without_tools} without",)
    if with_tools > without_tools:
        return CheckResult(
            "tools-injected", "pass", f"the tool adds {with_tools - without_tools} prompt tokens", evidence
        )
    return CheckResult(
        "tools-injected",
        "fail",
        "the prompt is no longer with the tool than without it: tools are not in the prompt",
        evidence,
        fix,
    )


def leaked_markup(spec: ToolSpec, content: str) -> str | None:
    """Which tool-call format ``content`` carries (markers, or JSON of the call); None if none."""
    for name in PARSERS:
        if name != "json" and get_parser(name).detect(content):
            report = get_parser(name).parse(content, schema=spec.parameters)
            return f"{name} markup" + (" (a parsable call)" if report.ok else "")
    for call in get_parser("json").parse(content, schema=spec.parameters).calls:
        if call.name == spec.name:
            return f"a JSON call to {spec.name}"
        if call.name is None:
            try:
                spec.validate(call.arguments)
            except (ValidationError, ValueError, TypeError):
                continue
            return f"{spec.name} arguments as JSON"
    return None


def judge_markup_leak(
    spec: ToolSpec, completions: Sequence[tuple[str, Completion | Exception]]
) -> CheckResult:
    """``completions``: (label, completion). A leak: empty ``tool_calls`` with a call in ``content``."""
    evidence, leaks, looked = [], 0, 0
    for label, completion in completions:
        if isinstance(completion, Exception):
            continue
        looked += 1
        if completion.tool_calls:
            evidence.append(f"{label}: tool_calls present")
            continue
        found = leaked_markup(spec, completion.text)
        if found:
            leaks += 1
            evidence.append(
                f"{label}: tool_calls empty but content holds {found}: {_preview(completion.text)}"
            )
        else:
            evidence.append(f"{label}: no call, no markup (content {_preview(completion.text)})")
    if not looked:
        return CheckResult("markup-leak", "skip", "no completion to look at (the requests failed)")
    if leaks:
        return CheckResult(
            "markup-leak",
            "fail",
            f"{leaks} of {looked} responses left a tool call in content",
            tuple(evidence),
            "The server's tool parser does not recognise the model's format (wrong --tool-call-parser, "
            "an unexpected id or a missing end marker). schemagen recovers such calls from content; "
            "fix the server parser or use mode='raw' to take it out of the path.",
        )
    return CheckResult(
        "markup-leak", "pass", f"no tool-call markup in content ({looked} responses)", tuple(evidence)
    )


def judge_finish_reason(
    spec: ToolSpec, full: Completion | Exception, cut: Completion | Exception, cut_tokens: int = _CUT_TOKENS
) -> CheckResult:
    """A complete forced call ends with tool_calls/stop; one cut by max_tokens with length."""
    evidence, problems = [], []
    if isinstance(full, Exception):
        evidence.append(f"complete call: request failed: {full}")
    else:
        problem = _call_problem(spec, full)
        evidence.append(
            f"complete call: finish_reason={full.finish_reason!r}" + (f" ({problem})" if problem else "")
        )
        if problem is None and full.finish_reason not in ("tool_calls", "stop"):
            problems.append(f"a complete call ended with finish_reason={full.finish_reason!r}")
    if isinstance(cut, Exception):
        evidence.append(f"max_tokens={cut_tokens}: request failed: {cut}")
    else:
        shown = cut.tool_calls[0].arguments if cut.tool_calls else cut.text
        evidence.append(
            f"max_tokens={cut_tokens}: finish_reason={cut.finish_reason!r}, output {_preview(shown)}"
        )
        if cut.finish_reason != "length" and (not cut.tool_calls or _call_problem(spec, cut)):
            problems.append(
                f"a call cut at max_tokens={cut_tokens} reported finish_reason={cut.finish_reason!r}, "
                "not 'length'"
            )
    if isinstance(full, Exception) and isinstance(cut, Exception):
        return CheckResult("finish-reason", "skip", "both requests failed", tuple(evidence))
    if problems:
        return CheckResult(
            "finish-reason",
            "fail",
            "; ".join(problems),
            tuple(evidence),
            "Clients use finish_reason to tell a cut-off call from a complete one. With a server that "
            "reports a cut call as complete, truncated arguments look final: set max_tokens generously "
            "and rely on validation (schemagen reasks on broken JSON).",
        )
    return CheckResult(
        "finish-reason", "pass", "complete and cut-off calls are reported correctly", tuple(evidence)
    )


# --------------------------------------------------------------------------- the doctor


def auto_mode_summary(outcome: Any) -> dict[str, Any] | None:
    """mode, steps and extra requests of an auto extraction (an Extraction or its error)."""
    trace = getattr(outcome, "trace", None)
    if trace is None:
        return None
    steps = list(trace.steps)
    extra = sum(1 for a in trace.attempts if a.outcome in ("rejected", "ignored"))
    return {"mode": trace.mode, "steps": steps, "extra_requests": extra}


def judge_auto_mode(outcome: Any) -> CheckResult:
    """``outcome``: the Extraction of a fresh ``mode="auto"`` run, or the error it raised."""
    summary = auto_mode_summary(outcome)
    if summary is None:
        return CheckResult("auto-mode", "fail", f"auto could not run: {outcome}")
    steps = summary["steps"]
    evidence = [f"{s['from']} -> {s['to']}: the server "
                + ("ignored the constraint" if s["refused"] == "ignored" else f"refused `{s['refused']}`")
                + f": {_preview(s['said'], 200)}" for s in steps]
    trace = outcome.trace
    notes = [n for a in trace.attempts for n in a.notes if "non-strict" in n or "max_completion" in n]
    evidence += notes
    if isinstance(outcome, Exception):
        attempts = trace.attempts
        evidence.append(f"{len(attempts)} requests; last outcome: {attempts[-1].outcome}"
                        if attempts else "no request was sent")
        return CheckResult("auto-mode", "fail", f"auto ended at `{summary['mode']}` without a value: "
                           f"{_preview(str(outcome), 200)}", tuple(evidence),
                           fix="See docs/modes.md; pick a mode by hand with mode=... to see its own error.")
    how = (f"after {len(steps)} step{'s' * (len(steps) != 1)} down ({summary['extra_requests']} extra "
           "request, once per process)" if steps else "at the top of the ladder: nothing refused or ignored")
    return CheckResult("auto-mode", "pass", f"auto picks `{summary['mode']}` {how}",
                       (*evidence, f"value: {outcome.value!r}"))


def server_template(backend: Any) -> ChatTemplate | None:
    """The chat template a llama.cpp server publishes on ``/props``, if it does."""
    get = getattr(backend, "server_get", None)
    if get is None:
        return None
    try:
        props = get("/props")
    except TransportError:
        return None
    if not isinstance(props, Mapping) or not isinstance(props.get("chat_template"), str):
        return None
    return ChatTemplate.from_string(
        props["chat_template"],
        bos_token=str(props.get("bos_token") or ""),
        eos_token=str(props.get("eos_token") or ""),
        name="server /props template",
    )


class Doctor:
    """Runs the checks against one backend. ``template``: the model's chat template (path or
    :class:`ChatTemplate`; without it a llama.cpp server's ``/props`` is asked); ``tokenizer``:
    counts tokens of local renders (a :class:`Tokenizer`, a callable, a ``.gguf`` path, or
    ``"server"``; by default the template's GGUF, the backend's counter, then the server's)."""

    def __init__(
        self,
        backend: Any,
        *,
        template: Any = None,
        tokenizer: Any = None,
        samples: int = 3,
        max_tokens: int = 200,
        temperature: float = 0.8,
    ) -> None:
        self.backend = backend
        self.samples = samples
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.spec = build_tool(DoctorCity, False)
        self.template_note = ""
        self.template: ChatTemplate | None = None
        if template is not None:
            self.template = load_template(template)
        else:
            self.template = server_template(backend)
            self.template_note = " (from the server's /props)" if self.template else ""
        self.tokenizer, self.tokenizer_note = self._tokenizer(tokenizer, template)
        self._how: str | None = None  # which server route shows prompts, once found
        self._cache: dict[str, Any] = {}

    # ---- setup

    def _tokenizer(self, choice: Any, template: Any) -> tuple[Tokenizer | None, str]:
        if isinstance(choice, Tokenizer):
            return choice, ""
        if callable(choice):
            return Tokenizer(choice, getattr(choice, "__name__", "custom")), ""
        if choice in (None, "auto", "server"):
            candidates: list[Callable[[], Tokenizer | None]] = []
            source = template if choice != "server" and isinstance(template, str | Path) else None
            if isinstance(source, str) and ("{%" in source or "{{" in source):
                source = None  # Jinja source, not a path
            if source is not None and (
                str(source).lower().endswith(".gguf") or (Path(source) / "tokenizer.json").is_file()
            ):
                candidates.append(lambda: tokenizer_from_path(source))
            if choice != "server":
                candidates.append(lambda: backend_tokenizer(self.backend))
            candidates.append(lambda: server_tokenizer(self.backend))
            reasons = []
            for make in candidates:
                try:
                    found = make()
                except (SchemagenError, OSError, ValueError) as exc:
                    reasons.append(str(exc))
                    continue
                if found is not None:
                    return found, ""
            return None, "no tokenizer: pass --tokenizer (a .gguf file or tokenizer.json)" + (
                f" ({'; '.join(reasons)})" if reasons else ""
            )
        if choice == "none":
            return None, "tokenizer disabled (--tokenizer none)"
        return tokenizer_from_path(choice), ""

    # ---- I/O, all through the backend

    def _send(self, request: Request) -> Completion | Exception:
        try:
            return self.backend.complete(request)
        except SchemagenError as exc:
            return exc

    def _chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: bool = True,
        max_tokens: int | None = None,
        **params: Any,
    ) -> Completion | Exception:
        params = {"temperature": 0.0, "max_tokens": max_tokens or self.max_tokens, **params}
        if tools:
            request = render_chat(self.spec, messages, model=self.backend.model, params=params)
        else:
            request = Request(
                "chat", {"model": self.backend.model, "messages": [dict(m) for m in messages], **params}
            )
        return self._send(request)

    def _prompt_tokens(self, messages: Sequence[Mapping[str, Any]], *, tools: bool = True) -> int | None:
        result = self._chat(messages, tools=tools, max_tokens=1)
        if isinstance(result, Exception) or not result.usage.prompt_tokens:
            return None
        return result.usage.prompt_tokens

    def _server_prompt(self, messages: Sequence[Mapping[str, Any]]) -> tuple[str | None, str]:
        """The server's own rendering of a forced-tool chat request, where it shows one."""
        post = getattr(self.backend, "server_post", None)
        if post is None or self._how == "none":
            return None, ""
        body = render_chat(self.spec, messages, model=self.backend.model).body
        if self._how in (None, "llama.cpp /apply-template"):
            try:
                data = post("/apply-template", body)
                if isinstance(data, Mapping) and isinstance(data.get("prompt"), str):
                    self._how = "llama.cpp /apply-template"
                    return data["prompt"], self._how
            except TransportError:
                pass
        if self._how in (None, "vLLM /tokenize + /detokenize"):
            try:
                tokenized = post(
                    "/tokenize",
                    {
                        "model": self.backend.model,
                        "messages": body["messages"],
                        "tools": body["tools"],
                        "add_generation_prompt": True,
                    },
                )
                if (
                    isinstance(tokenized, Mapping)
                    and isinstance(tokenized.get("tokens"), list)
                    and tokenized.get("count")
                ):
                    data = post("/detokenize", {"model": self.backend.model, "tokens": tokenized["tokens"]})
                    if isinstance(data, Mapping) and isinstance(data.get("prompt"), str):
                        self._how = "vLLM /tokenize + /detokenize"
                        return data["prompt"], self._how
            except TransportError:
                pass
        self._how = "none"
        return None, ""

    def _count(
        self,
        template: ChatTemplate,
        messages: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = True,
        normalize: bool = True,
    ) -> int | None:
        if self.tokenizer is None:
            return None
        try:
            text = template.render(
                messages,
                tools=[self.spec.tool],
                add_generation_prompt=add_generation_prompt,
                normalize=normalize,
            )
        except TemplateError:
            return None
        return self.tokenizer.count(text)

    # ---- the checks

    def _samples(self) -> list[Completion | Exception]:
        if "samples" not in self._cache:
            messages = [{"role": "user", "content": NO_CALL_PROMPT}]
            self._cache["samples"] = [
                self._chat(messages, temperature=self.temperature, seed=i) for i in range(self.samples)
            ]
        return list(self._cache["samples"])

    def _call_messages(self) -> list[dict[str, Any]]:
        return build_messages(self.spec, CALL_PROMPT)

    def _full(self) -> Completion | Exception:
        if "full" not in self._cache:
            self._cache["full"] = self._chat(self._call_messages())
        result: Completion | Exception = self._cache["full"]
        return result

    def check_forced_tool(self) -> CheckResult:
        return judge_forced_tool(self.spec, self._samples(), self.max_tokens)

    def check_parity(self) -> CheckResult:
        if self.template is None:
            return CheckResult("chat-raw-parity", "skip", "no chat template (pass --template)")
        if "completions" not in getattr(self.backend, "endpoints", ()):
            return CheckResult("chat-raw-parity", "skip", "the backend has no /v1/completions endpoint")
        params = {"temperature": 0.0, "max_tokens": self.max_tokens}
        rendered = RAW.render(
            RenderInput(
                spec=self.spec,
                messages=self._call_messages(),
                model=self.backend.model,
                params=params,
                template=self.template,
            )
        )
        raw = self._send(rendered.request)
        arguments, error, source = None, None, ""
        if isinstance(raw, Completion):
            try:
                recovered = RAW.recover(self.spec, raw, rendered.request)
                arguments, source = recovered.arguments, recovered.source
            except NoToolCall as exc:
                error = f"no call read: {exc}"
        return judge_parity(self._full(), raw, arguments, error, source)

    def _gen_prompt(self, template: ChatTemplate, messages: Sequence[Mapping[str, Any]]) -> str:
        tools = [self.spec.tool]
        return generation_prompt_between(
            template.render(messages, tools=tools, add_generation_prompt=True),
            template.render(messages, tools=tools, add_generation_prompt=False),
        )

    def check_generation_prompt(self) -> CheckResult:
        if self.template is None:
            return CheckResult(
                "generation-prompt", "skip", "no chat template to compare with (pass --template)"
            )
        messages = self._call_messages()
        try:
            gen = self._gen_prompt(self.template, messages)
        except TemplateError as exc:
            return CheckResult("generation-prompt", "skip", f"the template does not render: {exc}")
        server_prompt, how = self._server_prompt(messages)
        if server_prompt is not None:
            return judge_generation_prompt(generation_prompt=gen, server_prompt=server_prompt, how=how)
        if self.tokenizer is None:
            return CheckResult("generation-prompt", "skip", self.tokenizer_note)
        adds_bos = self.tokenizer.adds_bos is False and self.template.tokenizer_adds_bos is not False
        return judge_generation_prompt(
            generation_prompt=gen,
            server_tokens=self._prompt_tokens(messages),
            local_with=self._count(self.template, messages),
            local_without=self._count(self.template, messages, add_generation_prompt=False),
            bos_slack=1 if adds_bos else 0,
            how="chat usage.prompt_tokens",
        )

    def _history(self, content: Any) -> list[dict[str, Any]]:
        call = {
            "id": "call_doctor_0",
            "type": "function",
            "function": {
                "name": self.spec.name,
                "arguments": json.dumps({"name": "Paris", "country": "France"}),
            },
        }
        return [
            *self._call_messages(),
            {"role": "assistant", "content": content, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_doctor_0", "content": "Recorded."},
        ]

    def check_empty_content(self) -> CheckResult:
        empty = self._history("")
        server_prompt, how = self._server_prompt(empty)
        if server_prompt is not None:
            return judge_empty_content(
                server_empty=None, server_ref=None, server_prompt=server_prompt, messages=empty, how=how
            )
        server_empty = self._prompt_tokens(empty)
        server_ref = self._prompt_tokens(self._history("OK"))
        local: dict[str, int | None] = {"empty": None, "ref": None}
        variants: dict[str, int] = {}
        if self.template is not None and self.tokenizer is not None:
            local = {
                "empty": self._count(self.template, empty),
                "ref": self._count(self.template, self._history("OK")),
            }
            for name, content in (
                ("[{'type': 'text', 'text': ''}]", [{"type": "text", "text": ""}]),
                ("None", None),
            ):
                count = self._count(self.template, self._history(content), normalize=False)
                if count is not None and count != local["empty"]:
                    variants[name] = count
        return judge_empty_content(
            server_empty=server_empty,
            server_ref=server_ref,
            local_empty=local["empty"],
            local_ref=local["ref"],
            variants=variants,
            how="chat usage.prompt_tokens",
        )

    def check_tools_injected(self) -> CheckResult:
        # No system message: the default one names the tool, which would hide a template that drops it.
        messages = [{"role": "user", "content": CALL_PROMPT}]
        server_prompt, how = self._server_prompt(messages)
        if server_prompt is not None:
            return judge_tools_injected(
                with_tools=None,
                without_tools=None,
                server_prompt=server_prompt,
                tools=[self.spec.tool],
                how=how,
            )
        return judge_tools_injected(
            with_tools=self._prompt_tokens(messages), without_tools=self._prompt_tokens(messages, tools=False)
        )

    def check_markup_leak(self) -> CheckResult:
        auto = self._send(
            render_chat(
                self.spec,
                self._call_messages(),
                model=self.backend.model,
                params={"temperature": 0.0, "max_tokens": self.max_tokens, "tool_choice": "auto"},
            )
        )
        labelled = [(f"sample {i}", c) for i, c in enumerate(self._samples(), 1)]
        labelled += [("forced call", self._full()), ("tool_choice=auto", auto)]
        return judge_markup_leak(self.spec, labelled)

    def check_finish_reason(self) -> CheckResult:
        cut = self._chat(self._call_messages(), max_tokens=_CUT_TOKENS)
        return judge_finish_reason(self.spec, self._full(), cut)

    def check_auto_mode(self) -> CheckResult:
        from schemagen.client import Client
        from schemagen.mode_cache import ModeMemory

        sg = Client(backend=self.backend, mode="auto", retries=1, transport_retries=0,
                    max_tokens=self.max_tokens, temperature=0.0)
        sg.memory = ModeMemory()  # a fresh negotiation, not what this process learned before
        try:
            outcome: Any = sg.extract_result(DoctorCity, CALL_PROMPT)
        except SchemagenError as exc:
            outcome = exc
        self._cache["auto"] = auto_mode_summary(outcome)
        return judge_auto_mode(outcome)

    def run(self, only: Sequence[str] | None = None) -> DoctorReport:
        runners: dict[str, Callable[[], CheckResult]] = {
            "forced-tool": self.check_forced_tool,
            "chat-raw-parity": self.check_parity,
            "generation-prompt": self.check_generation_prompt,
            "empty-content": self.check_empty_content,
            "tools-injected": self.check_tools_injected,
            "markup-leak": self.check_markup_leak,
            "finish-reason": self.check_finish_reason,
            "auto-mode": self.check_auto_mode,
        }
        report = DoctorReport(
            model=self.backend.model,
            endpoint=getattr(self.backend, "base_url", None),
            template=(self.template.name + self.template_note) if self.template else None,
            tokenizer=self.tokenizer.name if self.tokenizer else None,
        )
        for check_id, _ in CHECKS:
            if only and check_id not in only:
                continue
            try:
                report.checks.append(runners[check_id]())
            except (SchemagenError, OSError, ValueError) as exc:
                report.checks.append(CheckResult(check_id, "fail", f"the check could not run: {exc}"))
        report.auto_mode = self._cache.get("auto")
        return report


def run_doctor(backend: Any, **options: Any) -> DoctorReport:
    """Run every check against ``backend`` (see :class:`Doctor` for the options)."""
    return Doctor(backend, **{k: v for k, v in options.items() if k != "only"}).run(options.get("only"))


__all__ = [
    "CHECKS",
    "CheckResult",
    "Doctor",
    "DoctorCity",
    "DoctorReport",
    "Tokenizer",
    "auto_mode_summary",
    "backend_tokenizer",
    "gguf_tokenizer",
    "hf_tokenizer",
    "judge_auto_mode",
    "judge_empty_content",
    "judge_finish_reason",
    "judge_forced_tool",
    "judge_generation_prompt",
    "judge_markup_leak",
    "judge_parity",
    "judge_tools_injected",
    "leaked_markup",
    "run_doctor",
    "server_template",
    "server_tokenizer",
    "tokenizer_from_path",
]
