"""The extraction state machine: sans-IO, driven by the sync and async twins.

``run.next_request()`` gives the request to send; the driver sends it through a
backend and hands the completion to ``run.receive()``, which either finishes (the
value is on ``run.result()``), asks for another request (a reask), or raises a
typed error. Nothing here does I/O, so sync, async, batch and the CLI share it::

    run = ExtractionRun(...)
    while not run.done:
        completion = backend.complete(run.next_request())
        run.receive(completion)
    return run.result()
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from schemagen.errors import (
    AttemptError,
    ContextOverflowError,
    ExtractionError,
    RefusalError,
    TruncatedError,
)
from schemagen.exchange import Completion, Request, Usage
from schemagen.modes import RenderInput, get_mode
from schemagen.parse import NoToolCall, format_errors
from schemagen.redact import redact_text
from schemagen.render import Example, build_messages, reask_messages
from schemagen.schema import StrictSetting, ToolSpec, build_tool
from schemagen.tokens import Counter, count_request, counter_for
from schemagen.trace import (
    AttemptRecord,
    Trace,
    TransportRetry,
    debug_enabled,
    describe_attempt,
    print_attempt,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """Everything that shapes one extraction, backend aside."""

    model: str
    mode: str = "tools"
    system: str | None = None
    examples: tuple[Example, ...] = ()
    reasks: int = 2
    strict: StrictSetting = "auto"
    max_tokens: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)  # temperature, seed, ... passed through
    max_context: int | None = None
    debug: bool | None = None
    template: Any = None
    constrain: bool = False
    parallel_tool_calls: bool = True


@dataclass
class Extraction(Generic[T]):
    """A validated value and how it was obtained."""

    value: T
    attempts: int
    usage: Usage
    trace: Trace


class ExtractionRun(Generic[T]):
    """One extraction from first request to validated value or typed error."""

    def __init__(
        self,
        target: Any,
        text: str,
        settings: Settings,
        *,
        supports_strict: bool = False,
        counter: Counter | None = None,
    ) -> None:
        strict = settings.strict
        if strict == "auto" and not supports_strict:
            strict = False
        self.spec: ToolSpec = build_tool(target, strict)
        self.settings = settings
        self.mode = get_mode(settings.mode)
        self.messages: list[dict[str, Any]] = build_messages(
            self.spec, text, system=settings.system, examples=settings.examples
        )
        self.counter = counter or counter_for(settings.model)
        self.trace = Trace(tool=self.spec.tool, schema_changes=[str(c) for c in self.spec.report])
        self.usage = Usage()
        self.done = False
        self.debug = debug_enabled(settings.debug)
        self._value: Any = None
        self._reask: tuple[str, str] | None = None  # (failed output, errors) of the last attempt
        self._started = 0.0

    # ------------------------------------------------------------ request side

    @property
    def current(self) -> AttemptRecord:
        return self.trace.attempts[-1]

    def conversation(self) -> Sequence[Mapping[str, Any]]:
        """The messages for the next attempt: the originals plus only the last failure."""
        if self._reask is None:
            return self.messages
        failed, errors = self._reask
        return reask_messages(self.spec, self.messages, failed, errors)

    def next_request(self) -> Request:
        if self.done:
            raise RuntimeError("the extraction is finished")
        params = dict(self.settings.params)
        if self.settings.max_tokens is not None:
            params["max_tokens"] = self.settings.max_tokens
        rendered = self.mode.render(RenderInput(
            spec=self.spec,
            messages=self.conversation(),
            model=self.settings.model,
            params=params,
            template=self.settings.template,
            constrain=self.settings.constrain,
            parallel_tool_calls=self.settings.parallel_tool_calls,
        ))
        for note in rendered.notes:
            if note not in self.trace.notes:
                self.trace.notes.append(note)
        self.preflight(rendered.request)
        record = AttemptRecord(number=len(self.trace.attempts) + 1, request=rendered.request,
                               prompt=rendered.prompt)
        self.trace.attempts.append(record)
        self._started = time.perf_counter()
        return rendered.request

    def preflight(self, request: Request) -> None:
        """Refuse, before sending, a request that can't fit the context window."""
        from schemagen.tokens import context_window

        window = self.settings.max_context or context_window(self.settings.model)
        if window is None:
            return
        prompt_tokens = count_request(request, self.counter)
        reserved = request.max_tokens or 0
        if prompt_tokens + reserved > window:
            raise self._attach(ContextOverflowError(
                "The request does not fit the context window; nothing was sent",
                prompt_tokens=prompt_tokens, max_tokens=reserved, max_context=window,
            ))

    # ------------------------------------------------------------ response side

    def record_retry(self, exc: BaseException, wait_s: float) -> None:
        self.current.retries.append(TransportRetry(redact_text(str(exc)), wait_s))

    def transport_failed(self, exc: AttemptError) -> AttemptError:
        """Mark the attempt as failed by transport; returns the error with usage and trace."""
        if self.trace.attempts:
            self.current.outcome = "transport"
            self.current.errors = redact_text(str(exc))
            self.current.elapsed_s = time.perf_counter() - self._started
        return self._attach(exc)

    def receive(self, completion: Completion) -> None:
        """Take the completion of the current attempt: finish, schedule a reask, or raise."""
        record = self.current
        record.completion = completion
        record.elapsed_s = time.perf_counter() - self._started
        record.notes += completion.notes
        self.usage = self.usage + completion.usage
        try:
            self._judge(record, completion)
        finally:
            if self.debug:
                print_attempt(record)

    def _judge(self, record: AttemptRecord, completion: Completion) -> None:
        if completion.refusal or completion.finish_reason == "content_filter":
            record.outcome = "refused"
            raise self._attach(RefusalError(completion.refusal or "finish_reason=content_filter"))
        try:
            recovered = self.mode.recover(self.spec, completion, record.request)
        except NoToolCall as exc:
            record.output = completion.text
            record.notes += [f"{r.parser}: skipped {s}" for r in exc.reports for s in r.skipped]
            if completion.finish_reason == "length":
                raise self._truncated(record, completion) from None
            record.outcome = "no_call"
            self._fail(record, completion.text, f"- no `{self.spec.name}` tool call was made ({exc}). "
                       f"You must call `{self.spec.name}`.")
            return
        record.output, record.source = recovered.raw, recovered.source
        record.notes += recovered.notes
        if completion.finish_reason == "length":
            raise self._truncated(record, completion)
        try:
            self._value = self.spec.validate(recovered.arguments)
        except ValidationError as exc:
            record.outcome = "invalid"
            self._fail(record, recovered.raw, format_errors(exc))
            return
        record.outcome = "ok"
        self.done = True

    def _truncated(self, record: AttemptRecord, completion: Completion) -> TruncatedError:
        record.outcome = "truncated"
        max_tokens = record.request.max_tokens
        record.errors = f"finish_reason=length (max_tokens={max_tokens})"
        error: TruncatedError = self._attach(TruncatedError(max_tokens, record.output or completion.text))
        return error

    def _fail(self, record: AttemptRecord, output: str, errors: str) -> None:
        record.errors = errors
        if len(self.trace.attempts) > self.settings.reasks:
            self.done = True
            raise self._attach(self._exhausted())
        self._reask = (output or "{}", errors)

    def _exhausted(self) -> ExtractionError:
        n = len(self.trace.attempts)
        last = self.trace.attempts[-1]
        message = (
            f"Could not extract a valid `{self.spec.name}` after {n} attempt{'s' * (n != 1)} "
            f"(reasks={self.settings.reasks}). The last attempt:\n{describe_attempt(last)}\n"
            "Raise retries=, simplify the schema, or run with debug=True to see every attempt."
        )
        return ExtractionError(message, attempts=list(self.trace.attempts))

    def _attach(self, exc: AttemptError | ContextOverflowError) -> Any:
        if isinstance(exc, AttemptError):
            exc.attach(usage=self.usage, trace=self.trace)
        return exc

    def result(self) -> Extraction[T]:
        if not self.done or self.trace.attempts[-1].outcome != "ok":
            raise RuntimeError("the extraction has not succeeded")
        return Extraction(self._value, len(self.trace.attempts), self.usage, self.trace)

