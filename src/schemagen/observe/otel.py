"""OpenTelemetry spans: one per extraction, a child per attempt, one per batch.

Attributes follow the GenAI semantic conventions (``gen_ai.*``) plus schemagen's own
(``schemagen.*``). Prompt and completion content are recorded only when asked for
(``Telemetry(content=True)`` or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``),
and always through :func:`schemagen.redact.redact`. Without ``opentelemetry-api`` this module
is never imported; with it but no SDK configured, spans are not recording and the watch
steps aside.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemagen.exchange import Completion, Request
from schemagen.redact import redact, redact_text

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from schemagen.backends.base import Backend
    from schemagen.engine.run import Extraction, ExtractionRun
    from schemagen.observe import BatchObservation, Observer, Watch
    from schemagen.trace import AttemptRecord

__all__ = ["CONTENT_ENV", "Telemetry", "TelemetryObserver", "observer"]

#: The GenAI conventions' switch for recording message content.
CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
#: Set to 0/false/off to turn schemagen's spans off without touching code.
DISABLE_ENV = "SCHEMAGEN_OTEL"
_MAX_TEXT = 8000  # longer attribute strings are cut: collectors drop huge attributes


@dataclass(frozen=True)
class Telemetry:
    """``Client(telemetry=Telemetry(...))``: how schemagen records spans.

    ``content``: record prompts and completions (redacted); ``None`` reads
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``. ``tracer_provider``: defaults
    to the global one.
    """

    content: bool | None = None
    tracer_provider: TracerProvider | None = None


def _flag(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


def observer(setting: Telemetry | bool | None, backend: Backend) -> TelemetryObserver | None:
    """The INTEGRATIONS factory: an observer when opentelemetry-api is importable and telemetry
    is not switched off (``telemetry=False`` or ``SCHEMAGEN_OTEL=0``)."""
    if setting is None and _flag(DISABLE_ENV) is False:
        return None
    try:
        from opentelemetry import trace
    except ImportError:
        if isinstance(setting, Telemetry) or setting is True:
            from schemagen.errors import MissingDependencyError

            raise MissingDependencyError("telemetry=", "otel", "opentelemetry-api") from None
        return None
    config = setting if isinstance(setting, Telemetry) else Telemetry()
    from schemagen import __version__

    tracer = trace.get_tracer("schemagen", __version__, tracer_provider=config.tracer_provider)
    content = config.content if config.content is not None else bool(_flag(CONTENT_ENV))
    return TelemetryObserver(tracer, system_of(backend), content)


def system_of(backend: Any) -> str:
    """``gen_ai.system`` for a backend: its ``system`` attribute, else a guess from its module."""
    system = getattr(backend, "system", None)
    if isinstance(system, str):
        return system
    module = type(backend).__module__
    if "local" in module:
        return "schemagen.local"
    inner = getattr(backend, "inner", None)  # batch wrappers
    return system_of(inner) if inner is not None else "openai"


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(redact(value), ensure_ascii=False, default=str)
    text = redact_text(text)
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."


class TelemetryObserver:
    """Spans for runs; :meth:`batch` gives the per-batch twin whose runs are the batch's children."""

    def __init__(self, tracer: Tracer, system: str, content: bool, parent: Any = None) -> None:
        self.tracer = tracer
        self.system = system
        self.content = content
        self.parent = parent  # an OTel Context: the batch span, for item runs

    def watch(self, run: ExtractionRun[Any], *, is_async: bool) -> Watch | None:
        """Spans for ``run``; ``None`` when the tracer does not record (no SDK configured)."""
        settings = run.settings
        span = self.tracer.start_span(f"extract {run.spec.name}", context=self.parent, attributes={
            "gen_ai.operation.name": _operation(run.mode.name),
            "gen_ai.system": self.system,
            "gen_ai.request.model": settings.model,
            "schemagen.target": run.spec.name,
            "schemagen.mode": run.mode.name,
            "schemagen.max_reasks": settings.reasks,
        })
        if not span.is_recording():  # no SDK configured: nothing would be kept
            return None
        return _SpanWatch(self, run, span)

    def batch(self, name: str, attributes: dict[str, Any]) -> BatchObservation | None:
        """A span for a batch, and the observer whose runs become its children."""
        from opentelemetry import trace

        attrs = {"gen_ai.system": self.system, "schemagen.target": name, **attributes}
        span = self.tracer.start_span(f"extract_many {name}", context=self.parent, attributes=attrs)
        if not span.is_recording():
            return None
        child = TelemetryObserver(self.tracer, self.system, self.content, trace.set_span_in_context(span))
        return _BatchSpan(span, (child,))


def _operation(mode: str) -> str:
    return "text_completion" if mode == "raw" else "chat"


class _BatchSpan:
    def __init__(self, span: Span, observers: tuple[Observer, ...]) -> None:
        self.span = span
        self.observers = observers

    def end(self, summary: Any, error: BaseException | None) -> None:
        usage = getattr(summary, "usage", None)
        attrs: dict[str, Any] = {}
        for key in ("total", "succeeded", "failed", "skipped", "unfinished", "stopped"):
            value = getattr(summary, key, None)
            if isinstance(value, (int, str)) and not isinstance(value, bool):
                attrs[f"schemagen.batch.{key}"] = value
        if usage is not None:
            attrs["gen_ai.usage.input_tokens"] = usage.prompt_tokens
            attrs["gen_ai.usage.output_tokens"] = usage.completion_tokens
        self.span.set_attributes(attrs)
        _set_error(self.span, error, content=False)
        self.span.end()


def _set_error(span: Span, error: BaseException | None, *, content: bool) -> None:
    if error is None:
        return
    from opentelemetry.trace import Status, StatusCode

    kind = type(error).__name__
    span.set_attribute("error.type", kind)
    # An error's message can quote the prompt and the output: content, so opt-in.
    description = redact_text(f"{kind}: {error}")[:_MAX_TEXT] if content else kind
    span.set_status(Status(StatusCode.ERROR, description))


class _SpanWatch:
    """One run's spans: the extraction span, current while the run is driven, and one child
    per attempt, current while its request is in flight (so HTTP spans nest under it)."""

    def __init__(self, owner: TelemetryObserver, run: ExtractionRun[Any], span: Span) -> None:
        from opentelemetry import context, trace

        self.owner = owner
        self.run = run
        self.span = span
        self.token = context.attach(trace.set_span_in_context(span, owner.parent))
        self.attempt: Span | None = None
        self.attempt_token: Token[Context] | None = None
        self.record: AttemptRecord | None = None
        self.reask_reason: str | None = None
        self.finished = False
        if owner.content:
            span.set_attribute("gen_ai.input.messages", _text(run.messages))

    def request(self, request: Request) -> None:
        from opentelemetry import context, trace

        record = self.run.current
        settings = self.run.settings
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": _operation(self.run.mode.name),  # auto may have stepped down
            "gen_ai.system": self.owner.system,
            "schemagen.mode": self.run.mode.name,
            "gen_ai.request.model": request.body.get("model") or settings.model,
            "schemagen.attempt": record.number,
        }
        for key in ("temperature", "top_p", "seed"):
            value = request.body.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                attrs[f"gen_ai.request.{key}"] = value
        if request.max_tokens is not None:
            attrs["gen_ai.request.max_tokens"] = request.max_tokens
        if record.bound:
            attrs["schemagen.bound"] = record.bound
        if self.reask_reason is not None:
            attrs["schemagen.reask_reason"] = self.reask_reason
        if self.owner.content:
            attrs["schemagen.request.body"] = _text(request.body)
        self.record = record
        name = f"{attrs['gen_ai.operation.name']} {attrs['gen_ai.request.model']}"
        self.attempt = self.owner.tracer.start_span(name, attributes=attrs)
        self.attempt_token = context.attach(trace.set_span_in_context(self.attempt))

    def response(self, completion: Completion) -> None:
        span = self.attempt
        if span is None:
            return
        attrs: dict[str, Any] = {
            "gen_ai.usage.input_tokens": completion.usage.prompt_tokens,
            "gen_ai.usage.output_tokens": completion.usage.completion_tokens,
            "gen_ai.response.finish_reasons": [completion.finish_reason or "unknown"],
        }
        for key, attr in (("model", "gen_ai.response.model"), ("id", "gen_ai.response.id")):
            value = completion.raw.get(key)
            if isinstance(value, str):
                attrs[attr] = value
        if self.owner.content:
            attrs["gen_ai.output.messages"] = _text(completion.raw or completion.text)
        span.set_attributes(attrs)

    def retry(self, exc: BaseException, wait_s: float) -> None:
        if self.attempt is not None:
            self.attempt.add_event("schemagen.transport_retry", {
                "error.type": type(exc).__name__, "schemagen.wait_s": round(wait_s, 3)})

    def received(self) -> None:
        self._close_attempt(None)

    def _close_attempt(self, error: BaseException | None) -> None:
        from opentelemetry import context

        span, record = self.attempt, self.record
        if span is None or record is None:
            return
        self.attempt = self.record = None
        if self.attempt_token is not None:  # set with the span
            context.detach(self.attempt_token)
        attrs: dict[str, Any] = {"schemagen.outcome": record.outcome}
        if record.retries:
            attrs["schemagen.transport_retries"] = len(record.retries)
        if record.source:
            attrs["schemagen.source"] = record.source
        if record.outcome != "ok":
            # What the next attempt is a reask for: the outcome, plus the errors when content is on.
            self.reask_reason = record.outcome + (f": {_text(record.errors)}"
                                                  if self.owner.content and record.errors else "")
        span.set_attributes(attrs)
        if record.outcome not in ("ok", "pending"):
            _set_error(span, error, content=self.owner.content)
            if error is None:
                from opentelemetry.trace import Status, StatusCode

                span.set_status(Status(StatusCode.ERROR, record.outcome))
        span.end()

    def finish(self, result: Extraction[Any] | None, error: BaseException | None) -> None:
        from opentelemetry import context

        if self.finished:
            return
        self.finished = True
        self._close_attempt(error)
        run, span = self.run, self.span
        attempts = run.trace.attempts
        finish_reasons = [a.completion.finish_reason or "unknown" for a in attempts if a.completion]
        attrs: dict[str, Any] = {
            "gen_ai.usage.input_tokens": run.usage.prompt_tokens,
            "gen_ai.usage.output_tokens": run.usage.completion_tokens,
            "schemagen.attempts": len(attempts),
            "schemagen.outcome": attempts[-1].outcome if attempts else "not_sent",
        }
        if finish_reasons:
            attrs["gen_ai.response.finish_reasons"] = finish_reasons
        if run.usage.cost is not None:
            attrs["schemagen.cost_usd"] = run.usage.cost
        attrs["schemagen.mode"] = run.mode.name  # where mode="auto" ended up
        if run.steps:
            attrs["schemagen.mode_step_downs"] = [str(s) for s in run.steps]
        # Grounding (issue #9) puts this on the run or result.
        grounded = getattr(result, "grounded", None) or getattr(run, "grounded", None)
        if grounded:
            attrs["schemagen.grounded_fields"] = sorted(str(k) for k in grounded)
        if self.owner.content and result is not None:
            attrs["schemagen.output"] = _text(attempts[-1].output if attempts else "")
        span.set_attributes(attrs)
        _set_error(span, error, content=self.owner.content)
        context.detach(self.token)
        span.end()

    async def drain(self) -> None:
        return None
