"""The doctor: one backend, the chat template and tokenizer to compare with, and the probes.

Every request goes through the backend (``complete``, plus ``server_post``/``server_get`` for
routes outside the OpenAI API). Answers are cached, so checks that need the same completion
(the forced samples, the complete call) share one request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from schemagen.backends.base import Backend
from schemagen.doctor.checks import REGISTRY, get_check
from schemagen.doctor.checks.base import CALL_PROMPT, NO_CALL_PROMPT, DoctorCity
from schemagen.doctor.report import CheckResult, DoctorReport
from schemagen.doctor.tokenizers import Tokenizer, backend_tokenizer, server_tokenizer, tokenizer_from_path
from schemagen.errors import SchemagenError, TemplateError, TransportError
from schemagen.exchange import Completion, Request
from schemagen.render.lint import generation_prompt_between
from schemagen.render.messages import build_messages, render_chat
from schemagen.render.templates import ChatTemplate, load_template
from schemagen.schema import ToolSpec, build_tool


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
        backend: Backend,
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
        self.spec: ToolSpec = build_tool(DoctorCity, False)
        self.template_note: str = ""
        self.template: ChatTemplate | None = None
        if template is not None:
            self.template = load_template(template)
        else:
            self.template = server_template(backend)
            self.template_note = " (from the server's /props)" if self.template else ""
        self.tokenizer: Tokenizer | None
        self.tokenizer_note: str
        self.tokenizer, self.tokenizer_note = self._tokenizer(tokenizer, template)
        self._how: str | None = None  # which server route shows prompts, once found
        self._cache: dict[str, Any] = {}
        self.auto_mode: dict[str, Any] | None = None  # set by the auto-mode check

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

    # ---- I/O, all through the backend (the probes the checks use)

    def send(self, request: Request) -> Completion | Exception:
        try:
            return self.backend.complete(request)
        except SchemagenError as exc:
            return exc

    def chat(
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
        return self.send(request)

    def prompt_tokens(self, messages: Sequence[Mapping[str, Any]], *, tools: bool = True) -> int | None:
        result = self.chat(messages, tools=tools, max_tokens=1)
        if isinstance(result, Exception) or not result.usage.prompt_tokens:
            return None
        return result.usage.prompt_tokens

    def server_prompt(self, messages: Sequence[Mapping[str, Any]]) -> tuple[str | None, str]:
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

    def count(
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

    def sampled(self) -> list[Completion | Exception]:
        if "samples" not in self._cache:
            messages = [{"role": "user", "content": NO_CALL_PROMPT}]
            self._cache["samples"] = [
                self.chat(messages, temperature=self.temperature, seed=i) for i in range(self.samples)
            ]
        return list(self._cache["samples"])

    def call_messages(self) -> list[dict[str, Any]]:
        return build_messages(self.spec, CALL_PROMPT)

    def full_call(self) -> Completion | Exception:
        if "full" not in self._cache:
            self._cache["full"] = self.chat(self.call_messages())
        result: Completion | Exception = self._cache["full"]
        return result

    def generation_prompt(self, template: ChatTemplate, messages: Sequence[Mapping[str, Any]]) -> str:
        tools = [self.spec.tool]
        return generation_prompt_between(
            template.render(messages, tools=tools, add_generation_prompt=True),
            template.render(messages, tools=tools, add_generation_prompt=False),
        )

    def history(self, content: Any) -> list[dict[str, Any]]:
        call = {
            "id": "call_doctor_0",
            "type": "function",
            "function": {
                "name": self.spec.name,
                "arguments": json.dumps({"name": "Paris", "country": "France"}),
            },
        }
        return [
            *self.call_messages(),
            {"role": "assistant", "content": content, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_doctor_0", "content": "Recorded."},
        ]

    def run(self, only: Sequence[str] | None = None) -> DoctorReport:
        """Run the registered checks (only those named in ``only``, if given) in registry order."""
        report = DoctorReport(
            model=self.backend.model,
            endpoint=getattr(self.backend, "base_url", None),
            template=(self.template.name + self.template_note) if self.template else None,
            tokenizer=self.tokenizer.name if self.tokenizer else None,
        )
        for check_id in REGISTRY:
            if only and check_id not in only:
                continue
            try:
                report.checks.append(get_check(check_id).run(self))
            except (SchemagenError, OSError, ValueError) as exc:
                report.checks.append(CheckResult(check_id, "fail", f"the check could not run: {exc}"))
        report.auto_mode = self.auto_mode
        return report


def run_doctor(backend: Any, **options: Any) -> DoctorReport:
    """Run every check against ``backend`` (see :class:`Doctor` for the options)."""
    return Doctor(backend, **{k: v for k, v in options.items() if k != "only"}).run(options.get("only"))


__all__ = ["Doctor", "run_doctor", "server_template"]
