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

import dataclasses
import json
import math
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, Union

from pydantic import ValidationError

from schemagen.engine.bounds import DEFAULT_RULE, Bound, BoundRule, fits, is_reasoning_model, output_bound
from schemagen.engine.budget import Budget
from schemagen.engine.estimate import Estimator
from schemagen.engine.modes import AUTO, Mode, Rendered, RenderInput, get_mode
from schemagen.engine.modes.json_object import SCHEMA_EXTENSION
from schemagen.engine.negotiate import IGNORED, MAX_NEGOTIATION, Learned, Step, step_down
from schemagen.engine.pricing import price_for, with_cost
from schemagen.engine.reasoning import strip_reasoning
from schemagen.engine.repetition import REPETITION
from schemagen.errors import (
    AttemptError,
    BudgetExceeded,
    ConfigurationError,
    ContextOverflowError,
    ExtractionError,
    ModeUnsupportedError,
    RefusalError,
    TransportError,
    TruncatedError,
    UnsupportedFeatureError,
)
from schemagen.exchange import Completion, Request, Usage
from schemagen.grounding import Citation, GroundedField, all_strings, cite, mark
from schemagen.grounding import errors as grounding_errors
from schemagen.parse.jsonfix import COMPLETED_NOTE
from schemagen.parse.recover import NoToolCall, error_fields, format_errors
from schemagen.redact import redact_text
from schemagen.render.messages import Example, build_messages, reask_messages
from schemagen.schema import StrictSetting, ToolSpec, build_tool
from schemagen.tokens import Counter, context_window, counter_for
from schemagen.trace import (
    AttemptRecord,
    Trace,
    TransportRetry,
    debug_enabled,
    describe_attempt,
    print_attempt,
)

T = TypeVar("T")
_E = TypeVar("_E", bound=AttemptError | ContextOverflowError)
BudgetSetting = Union[Budget, int, float, Sequence[Union[Budget, int, float]], None]  # noqa: UP007
TruncationPolicy = Literal["raise", "reask"]
# When the token count is an estimate (not the model's own tokenizer), this share of
# the window is kept free so an undercount doesn't get the request refused for length.
ESTIMATE_MARGIN = 0.05
# A reask resends at most this much of a cut-off output: the loop or the overlong
# part is what went wrong, resending it only invites more of it.
TRUNCATED_RESEND_CHARS = 600
SHORT_REASK_ERROR_LINES = 20


@dataclass(frozen=True)
class Settings:
    """Everything that shapes one extraction, backend aside."""

    model: str
    mode: str = "tools"  # or "auto" (Client's default): walks schemagen.engine.negotiate.LADDER
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
    # Ask for exactly one tool call: sends ``parallel_tool_calls: false`` (tools mode).
    single_tool_call: bool = True
    # Output bounds (see schemagen.engine.bounds): True = the default rule, a BoundRule = custom
    # knobs, False = send no max_tokens unless the caller gives one.
    bounds: BoundRule | bool = True
    on_truncation: TruncationPolicy = "raise"  # "reask": one retry with a doubled derived bound
    # budget=N tokens per call; a Budget object is used as-is, so sharing one spans calls.
    budget: BudgetSetting = None
    # Per-call request options (extra_headers, extra_query, extra_body, timeout), as in the SDK.
    transport: Mapping[str, Any] = field(default_factory=dict)
    grounded: bool = False  # every free string must be a span of the text (see schemagen.grounding)
    #: Deprecated name of ``single_tool_call`` (True meant "send parallel_tool_calls: false").
    parallel_tool_calls: bool | None = None

    def __post_init__(self) -> None:
        if self.parallel_tool_calls is not None:
            warnings.warn(
                "Settings(parallel_tool_calls=...) is now single_tool_call=... (same meaning: True "
                "sends parallel_tool_calls: false); the old name goes away in the next release",
                DeprecationWarning,
                stacklevel=3,
            )
            object.__setattr__(self, "single_tool_call", self.parallel_tool_calls)
            object.__setattr__(self, "parallel_tool_calls", None)


@dataclass
class _Failure:
    """The last failed attempt, as a reask needs it."""

    output: str
    errors: str
    arguments: Any = None  # the decoded arguments, when they decoded
    fields: tuple[str, ...] = ()  # top-level fields the errors name
    truncated: bool = False


@dataclass
class Extraction(Generic[T]):
    """A validated value and how it was obtained."""

    value: T
    attempts: int
    usage: Usage
    trace: Trace

    @property
    def citations(self) -> list[Citation]:
        """Where each grounded string value was found in the text (empty without grounding)."""
        return list(self.trace.attempts[-1].citations) if self.trace.attempts else []


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
        learned: Learned | None = None,
    ) -> None:
        """``learned``: what an earlier run found out about this endpoint (``mode="auto"`` starts
        at its mode; a refused strict or max_tokens is avoided from the first request)."""
        strict = settings.strict
        if strict == "auto" and not supports_strict:
            strict = False
        self.relax: set[str] = set(learned.relax) if learned else set()
        if "strict" in self.relax:
            strict = False
        self.target = target
        self.spec: ToolSpec = build_tool(target, strict)
        self.settings = settings
        self.auto: bool = settings.mode == AUTO
        self.mode: Mode = get_mode(learned.mode if self.auto and learned else settings.mode)
        self.completion_key: bool = bool(learned and learned.completion_key)
        self.steps: list[Step] = []
        self.negotiated: int = 0  # requests spent finding what the server can do (not reasks)
        self._learned_steps = learned.steps if learned else ()
        self._learned_mode = learned.mode if learned else "tools"
        # A model that reasons before answering needs room for it in the derived bound.
        self.reasoning: bool = is_reasoning_model(settings.model) or bool(learned and learned.reasoning)
        self.messages: list[dict[str, Any]] = build_messages(
            self.spec, text, system=settings.system, examples=settings.examples
        )
        self.counter: Counter = counter or counter_for(settings.model)
        self.estimator: Estimator = Estimator(self.counter, settings.model)
        self.trace: Trace = Trace(tool=self.spec.tool, schema_changes=[str(c) for c in self.spec.report],
                           mode=self.mode.name)
        if self.auto and learned is not None and learned.changed:
            why = "; ".join(learned.steps) or "learned earlier"
            self.trace.notes.append(f"auto: starting at mode {self.mode.name!r}, learned earlier for this "
                                    f"endpoint and model ({why})")
        self.usage: Usage = Usage()
        self.done: bool = False
        self.debug: bool = debug_enabled(settings.debug)
        if self.debug and text:  # an empty text is only a batch's up-front schema check
            _print_enforcement(self.spec)
        self.input_tokens: int = self.counter(text)
        self.text = text
        self.grounded = _grounded_fields(self.spec, settings.grounded)
        if self.grounded and not text.strip():
            raise ConfigurationError(
                "Grounded fields must be spans of the text, but the text is empty: pass the text to "
                "extract from, or drop grounded=True / Quote."
            )
        self.budgets: tuple[Budget, ...] = _budgets(settings.budget)
        if any(b.max_cost is not None for b in self.budgets) and price_for(settings.model) is None:
            raise ConfigurationError(
                f"A cost budget needs the price of {settings.model!r}, which is not in the price table. "
                "Add it with schemagen.register_price(model, input=..., output=...), or use a token budget."
            )
        self.bound: Bound | None = None  # the derived bound of the current attempt
        self._value: Any = None
        self._reask: _Failure | None = None
        self._truncation_reasked = False
        self._bound_raised = False
        self._looped = False  # an answer was stopped by the repetition guard: later ones avoid loops
        self._started = 0.0

    # ------------------------------------------------------------ request side

    @property
    def current(self) -> AttemptRecord:
        return self.trace.attempts[-1]

    def conversation(self, level: int = 0) -> Sequence[Mapping[str, Any]]:
        """The messages for the next attempt: the originals plus only the last failure.

        ``level`` shortens a reask that would not fit: 0 resends the failed output,
        1 only the fields the errors name, 2 no output and at most
        ``SHORT_REASK_ERROR_LINES`` error lines. Empty when the level would change nothing.
        """
        failure = self._reask
        if failure is None:
            return self.messages
        output, errors = failure.output, failure.errors
        if failure.truncated and len(output) > TRUNCATED_RESEND_CHARS:
            output = output[:TRUNCATED_RESEND_CHARS] + "..."
        if level == 1:
            if not (isinstance(failure.arguments, dict) and failure.fields):
                return ()
            kept = {k: v for k, v in failure.arguments.items() if k in failure.fields}
            if len(kept) == len(failure.arguments):
                return ()
            output = json.dumps(kept, ensure_ascii=False)
            errors += ("\n(Only the fields with errors are repeated above; the rest of the call was "
                       "dropped to save space. Take those fields from the text again.)")
        elif level == 2:
            lines = errors.splitlines()
            if len(lines) > SHORT_REASK_ERROR_LINES:
                more = f"- ... and {len(lines) - SHORT_REASK_ERROR_LINES} more errors"
                errors = "\n".join([*lines[:SHORT_REASK_ERROR_LINES], more])
            output = "{}"
        return reask_messages(self.spec, self.messages, output, errors)

    def window(self) -> int | None:
        """The context window: ``max_context=`` (or the backend's), else the known model's."""
        return self.settings.max_context or context_window(self.settings.model)

    def prompt_tokens(self, request: Request) -> int:
        return self.estimator.prompt_tokens(request)

    def _room(self, window: int, prompt_tokens: int) -> int:
        """Tokens left for the output; estimates keep ESTIMATE_MARGIN of the window free."""
        margin = 0 if self.counter.native else math.ceil(window * ESTIMATE_MARGIN)
        return window - margin - prompt_tokens

    def _rule(self) -> BoundRule | None:
        bounds = self.settings.bounds
        if bounds is False:
            return None
        rule = bounds if isinstance(bounds, BoundRule) else DEFAULT_RULE
        if self._bound_raised:  # on_truncation="reask" after hitting the bound: twice the room
            rule = dataclasses.replace(rule, floor=rule.floor * 2, ceiling=rule.ceiling * 2,
                                       slack=rule.slack * 2, margin=rule.margin * 2)
        return rule

    def _render(self, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> Rendered:
        return self.mode.render(RenderInput(
            spec=self.spec,
            messages=messages,
            model=self.settings.model,
            params=params,
            template=self.settings.template,
            constrain=self.settings.constrain,
            single_tool_call=self.settings.single_tool_call,
            relax=frozenset(self.relax),
        ))

    def next_request(self) -> Request:
        """The next request: bounded, shortened to fit the window, and within budget."""
        if self.done:
            raise RuntimeError("the extraction is finished")
        params = dict(self.settings.params)
        if self.settings.max_tokens is not None:
            params["max_tokens"] = self.settings.max_tokens
        if self.completion_key and "max_tokens" in params:  # the server wants the newer name
            params["max_completion_tokens"] = params.pop("max_tokens")
        if params.get("stream") and "stream_options" not in params:
            params["stream_options"] = {"include_usage": True}
        caller = params.get("max_tokens", params.get("max_completion_tokens"))
        rule = None if caller is not None else self._rule()
        window = self.window()
        notes: list[str] = []
        messages, rendered, self.bound = self._fit(params, rule, window, notes)
        if self.bound is not None:
            newer = is_reasoning_model(self.settings.model) or self.completion_key
            key = "max_completion_tokens" if newer else "max_tokens"
            rendered = self._render(messages, {**params, key: self.bound.max_tokens})
        for note in rendered.notes:
            if note not in self.trace.notes:
                self.trace.notes.append(note)
        request = with_request_options(rendered.request, self.settings.transport)
        if request.constraint is not None:
            # grounded: the backend enforces the spans itself when it can (llguidance); the check
            # below holds anyway. The text also bounds a loop retry's free strings.
            constraint = mark(request.constraint, self.grounded) if self.grounded else request.constraint
            request = dataclasses.replace(request, constraint=constraint, source_text=self.text)
        if self._looped:
            request = dataclasses.replace(request, avoid_loops=True)
        self.preflight(request)
        self._check_budgets(request)
        record = AttemptRecord(number=len(self.trace.attempts) + 1, request=request, mode=self.mode.name,
                               prompt=rendered.prompt, notes=notes,
                               bound=self.bound.explain() if self.bound else None)
        self.trace.attempts.append(record)
        self._started = time.perf_counter()
        return request

    def _fit(
        self, params: dict[str, Any], rule: BoundRule | None, window: int | None, notes: list[str],
    ) -> tuple[Sequence[Mapping[str, Any]], Rendered, Bound | None]:
        """Render the least-shortened conversation whose prompt plus output bound fits."""
        levels = [0, 1, 2] if self._reask is not None else [0]
        caller = params.get("max_tokens", params.get("max_completion_tokens"))
        best: tuple[Sequence[Mapping[str, Any]], Rendered, Bound | None, int] | None = None
        for level in levels:
            messages = self.conversation(level)
            if not messages:
                continue
            rendered = self._render(messages, params)
            prompt = self.prompt_tokens(rendered.request)
            room = None if window is None else self._room(window, prompt)
            bound = None
            if rule is not None:
                bound = output_bound(self.spec.parameters, self.input_tokens, context_left=room, rule=rule,
                                     count=self.counter, reasoning=self.reasoning)
            best = (messages, rendered, bound, level)
            if room is None:
                break
            if bound is not None and bound.limited_by != "context":
                break
            if bound is None and room >= int(caller or 1):
                break
        assert best is not None  # level 0 always renders
        messages, rendered, bound, level = best
        if level:
            notes.append("reask shortened to fit the context: " + (
                "resent only the fields with errors" if level == 1 else "resent the errors only"))
        if bound is not None and window is not None and not fits(bound, rule or DEFAULT_RULE):
            raise self._attach(ContextOverflowError(
                "The request does not fit the context window with room for the answer"
                + (", even with the reask shortened" if self._reask is not None else "")
                + "; nothing was sent",
                prompt_tokens=self.prompt_tokens(rendered.request),
                max_tokens=min(bound.needed, (rule or DEFAULT_RULE).floor), max_context=window,
            ))
        return messages, rendered, bound

    def preflight(self, request: Request) -> None:
        """Refuse, before sending, a request that can't fit the context window."""
        window = self.window()
        if window is None:
            return
        prompt_tokens = self.prompt_tokens(request)
        reserved = request.max_tokens or 0
        if self._room(window, prompt_tokens) < max(reserved, 1):
            raise self._attach(ContextOverflowError(
                "The request does not fit the context window; nothing was sent",
                prompt_tokens=prompt_tokens, max_tokens=reserved, max_context=window,
            ))

    def estimate(self, request: Request) -> Usage:
        """What an attempt may spend: its prompt plus all of its output bound."""
        return self.estimator.estimate(request, window=self.window())

    def _check_budgets(self, request: Request) -> None:
        if not self.budgets:
            return
        estimated = self.estimate(request)
        for budget in self.budgets:
            try:
                budget.check(estimated)
            except BudgetExceeded as exc:
                self.done = True
                raise self._attach(exc) from None

    # ------------------------------------------------------------ response side

    def record_retry(self, exc: BaseException, wait_s: float) -> None:
        self.current.retries.append(TransportRetry(redact_text(str(exc)), wait_s))

    def transport_failed(self, exc: AttemptError) -> AttemptError:
        """Mark the attempt as failed by transport; returns the error with usage and trace. A
        refused feature the run could not work around becomes :class:`ModeUnsupportedError`."""
        if self.trace.attempts:
            if self.current.outcome == "pending":
                self.current.outcome = "transport"
                self.current.errors = redact_text(str(exc))
            self.current.elapsed_s = time.perf_counter() - self._started
        if isinstance(exc, UnsupportedFeatureError) and not isinstance(exc, ModeUnsupportedError):
            mode = self.mode.name
            shown = f"auto (last tried {mode})" if self.auto else mode
            converted = ModeUnsupportedError(shown, exc.feature, exc.said, status_code=exc.status_code,
                                             body=exc.body, suggestion=step_down(mode, exc.feature))
            converted.__cause__ = exc.__cause__
            exc = converted
        return self._attach(exc)

    def rejected(self, exc: TransportError) -> bool:
        """The server refused a feature of the current request: adapt (step down the ladder
        in auto, drop strict, rename max_tokens) and return True, so the driver asks for the
        next request; False when nothing is left to try (then raise ``transport_failed(exc)``)."""
        if not isinstance(exc, UnsupportedFeatureError) or not self.trace.attempts:
            return False
        if self.negotiated >= MAX_NEGOTIATION:
            return False
        record = self.current
        record.outcome = "rejected"
        record.errors = exc.said
        record.elapsed_s = time.perf_counter() - self._started
        change = self._adapt(exc.feature, exc.said, record.request)
        if change is None:
            return False
        record.notes.append(change)
        self.negotiated += 1
        if self.debug:
            print_attempt(record)
        return True

    def _adapt(self, feature: str, said: str, request: Request) -> str | None:
        body = request.body
        if feature == "max_tokens" and not self.completion_key and "max_tokens" in body:
            self.completion_key = True
            return "the server wants max_completion_tokens instead of max_tokens: resent with it"
        if feature == "strict" and self.spec.strict:
            self.relax.add("strict")
            self.spec = build_tool(self.target, False)
            self.trace.tool = self.spec.tool
            return f"the server refused the strict schema: retried once non-strict (it said: {said})"
        fmt = body.get("response_format")
        if (feature in ("response_format", "strict") and isinstance(fmt, dict) and "schema" in fmt
                and fmt.get("type") == "json_object" and SCHEMA_EXTENSION not in self.relax):
            self.relax.add(SCHEMA_EXTENSION)
            return "the server refused a schema beside json_object: resent as plain json_object"
        if not self.auto:
            return None
        nxt = step_down(self.mode.name, feature, said)
        return None if nxt is None else self._step(nxt, feature, said)

    def _step(self, to_mode: str, refused: str, said: str) -> str:
        step = Step(self.mode.name, to_mode, refused, said)
        self.steps.append(step)
        self.trace.steps.append(step.to_dict())
        self.mode = get_mode(to_mode)
        self.trace.mode = to_mode
        self._reask = None  # the new mode starts from the original conversation
        return f"auto: stepped down {step}"

    def learned(self) -> Learned:
        """What this run found out about the endpoint, for the next run against it."""
        mode = self.mode.name if self.auto else self._learned_mode  # a hand-picked mode proves nothing
        return Learned(mode=mode, relax=tuple(sorted(self.relax)), completion_key=self.completion_key,
                       steps=self._learned_steps + tuple(str(s) for s in self.steps),
                       reasoning=self.reasoning)

    def receive(self, completion: Completion) -> None:
        """Take the completion of the current attempt: finish, schedule a reask, or raise."""
        record = self.current
        usage = with_cost(completion.usage, self.settings.model)
        if usage is not completion.usage:
            completion = dataclasses.replace(completion, usage=usage)
        record.completion = completion
        record.elapsed_s = time.perf_counter() - self._started
        record.notes += completion.notes
        self.usage = self.usage + usage
        over = self._charge_budgets(usage)
        # Reasoning is kept for the trace and never parsed, in every mode.
        completion, record.reasoning = strip_reasoning(completion)
        if record.reasoning:
            record.notes.append(f"reasoning: {len(record.reasoning)} characters, kept in the trace "
                                "and left out of the parse")
        try:
            self._judge(record, completion)
            if over is not None and not self.done:  # a reask would spend past the budget
                self.done = True
                raise self._attach(over)
        except AttemptError:
            self.done = True
            raise
        finally:
            if over is not None:
                record.notes.append(f"budget: {over}")
            if self.debug:
                print_attempt(record)

    def _charge_budgets(self, usage: Usage) -> BudgetExceeded | None:
        """Charge every budget with real usage; the first overrun, if any (a valid value is
        still returned: it is paid for, and the next attempt's check stops the spending)."""
        over: BudgetExceeded | None = None
        for budget in self.budgets:
            try:
                budget.charge(usage)
            except BudgetExceeded as exc:
                over = over or exc
        return over

    def _hit_bound(self, completion: Completion) -> str | None:
        """'length' or 'repetition' when the output was cut off, else None.

        Some servers (llama.cpp) report finish_reason="tool_calls" even when max_tokens
        or the full context cut the call short, so reaching either counts too.
        """
        if completion.finish_reason == REPETITION:
            return REPETITION
        if completion.finish_reason == "length":
            return "length"
        if completion.finish_reason == "stop":
            return None
        usage = completion.usage
        limit = self.current.request.max_tokens
        if limit and usage.completion_tokens >= limit:
            return "length"
        window = self.window()  # unbounded requests stop when the context is full
        if window and usage.prompt_tokens and usage.prompt_tokens + usage.completion_tokens >= window:
            return "length"
        return None

    def _judge(self, record: AttemptRecord, completion: Completion) -> None:
        if completion.refusal or completion.finish_reason == "content_filter":
            record.outcome = "refused"
            raise self._attach(RefusalError(completion.refusal or "finish_reason=content_filter"))
        cut = self._hit_bound(completion)
        try:
            recovered = self.mode.recover(self.spec, completion, record.request)
        except NoToolCall as exc:
            record.output = completion.text
            record.notes += [f"{r.parser}: skipped {s}" for r in exc.reports for s in r.skipped]
            if cut:
                self._truncated(record, completion, cut)
                return
            if self._ignored(record, completion, exc):
                return
            record.outcome = "no_call"
            self._fail(record, _Failure(completion.text or "{}", f"- no `{self.spec.name}` tool call was "
                                        f"made ({exc}). You must call `{self.spec.name}`."))
            return
        record.output, record.source = recovered.raw, recovered.source
        record.notes += recovered.notes
        if not cut and any(COMPLETED_NOTE in note for note in recovered.notes):
            # A proxy or server that labels a cut-off "stop": the repair that closed the
            # structure is the evidence. Never accepted as a value: reask, or TruncatedError.
            record.notes.append(f"cut off although finish_reason={completion.finish_reason}: "
                                "the JSON had to be closed by repair, so the value is not accepted")
            self._truncated(record, completion, "length", mislabelled=True)
            return
        if cut:
            self._truncated(record, completion, cut)
            return
        try:
            self._value = self.spec.validate(recovered.arguments)
        except ValidationError as exc:
            record.outcome = "invalid"
            self._fail(record, _Failure(recovered.raw or "{}", format_errors(exc), recovered.arguments,
                                        tuple(error_fields(exc))))
            return
        if self.grounded:
            record.citations = cite(recovered.arguments, self.text, self.grounded)
            missing = grounding_errors(record.citations)
            if missing:
                record.outcome = "invalid"
                names = tuple(dict.fromkeys(c.field.split(".")[0].split("[")[0]
                                            for c in record.citations if not c.found))
                self._fail(record, _Failure(recovered.raw or "{}", missing, recovered.arguments, names))
                return
        record.outcome = "ok"
        self.done = True

    def _ignored(self, record: AttemptRecord, completion: Completion, exc: NoToolCall) -> bool:
        """In auto: no tool call (or no JSON) came back, so the server ignored the constraint;
        step down instead of reasking in a mode that doesn't hold."""
        if not self.auto or completion.tool_calls or self.negotiated >= MAX_NEGOTIATION:
            return False
        nxt = step_down(self.mode.name, IGNORED)
        if nxt is None:
            return False
        text = " ".join(completion.text.split())
        said = f"{exc}; content: {text[:160]!r}" if text else str(exc)
        record.outcome = IGNORED
        record.errors = said
        record.notes.append(self._step(nxt, IGNORED, said))
        self.negotiated += 1
        return True

    def _reasks_used(self) -> int:
        return len(self.trace.attempts) - self.negotiated

    def _truncated(self, record: AttemptRecord, completion: Completion, reason: str,
                   mislabelled: bool = False) -> None:
        """Reask once with more room if the caller allows it, else raise TruncatedError.

        ``on_truncation="reask"`` is one extra attempt of its own (it is granted with
        ``retries=0`` too). A ``mislabelled`` cut-off (finish_reason said it ended) is
        reasked like an invalid output, within ``retries``.
        """
        record.outcome = "truncated"
        max_tokens = record.request.max_tokens
        if (reason == "length" and record.reasoning and not self.reasoning and self.bound is not None
                and max_tokens == self.bound.max_tokens and self.negotiated < MAX_NEGOTIATION):
            # Cut while reasoning, under a bound derived for a model that answers at once: a
            # fact about the model, not a failed attempt. Resent once with room to reason.
            self.reasoning = True
            self.negotiated += 1
            record.errors = f"cut at the derived max_tokens={max_tokens} while reasoning"
            record.notes.append("the model reasons before answering: resent with room for its reasoning "
                                "(BoundRule.reasoning_extra), and remembered for this endpoint")
            return
        partial = record.output or completion.text
        loop = str(completion.raw.get("repetition") or "")
        if reason == REPETITION:
            record.errors = f"stopped by the repetition guard ({loop or 'a loop'}; max_tokens={max_tokens})"
        elif mislabelled:
            record.errors = f"the output stopped inside the JSON (finish_reason={completion.finish_reason})"
        else:
            record.errors = f"finish_reason={completion.finish_reason} at max_tokens={max_tokens}"
        evidence = mislabelled and self._reasks_used() <= self.settings.reasks
        if (self.settings.on_truncation == "reask" and not self._truncation_reasked) or evidence:
            self._truncation_reasked = True
            self._bound_raised = reason == "length"
            self._looped = reason == REPETITION
            what = ("repeated itself" if reason == REPETITION else "stopped early" if mislabelled
                    else f"reached max_tokens={max_tokens}")
            self._reask = _Failure(partial or "{}", (
                f"- the call was cut off: the output {what} before the arguments were complete. "
                "Call again with every list item once and every string short."
            ), truncated=True)
            return
        detail = []
        if loop:
            detail.append(f"loop: {loop}")
        if self.bound is not None and max_tokens == self.bound.max_tokens:
            detail.append(self.bound.explain())
        self.done = True
        raise self._attach(TruncatedError(max_tokens, partial, reason=reason, detail="; ".join(detail)))

    def _fail(self, record: AttemptRecord, failure: _Failure) -> None:
        record.errors = failure.errors
        if self._reasks_used() > self.settings.reasks:
            self.done = True
            raise self._attach(self._exhausted())
        self._reask = failure

    def _exhausted(self) -> ExtractionError:
        n = len(self.trace.attempts)
        last = self.trace.attempts[-1]
        message = (
            f"Could not extract a valid `{self.spec.name}` after {n} attempt{'s' * (n != 1)} "
            f"(reasks={self.settings.reasks}). The last attempt:\n{describe_attempt(last)}\n"
            "Raise retries=, simplify the schema, or run with debug=True to see every attempt."
        )
        return ExtractionError(message, attempts=list(self.trace.attempts))

    def _attach(self, exc: _E) -> _E:
        if isinstance(exc, AttemptError):
            exc.attach(usage=self.usage, trace=self.trace)
        return exc

    def result(self) -> Extraction[T]:
        if not self.done or self.trace.attempts[-1].outcome != "ok":
            raise RuntimeError("the extraction has not succeeded")
        return Extraction(self._value, len(self.trace.attempts), self.usage, self.trace)



def _print_enforcement(spec: ToolSpec) -> None:
    """debug=True: which keyword is enforced where (grammar, server, validation)."""
    from schemagen.enforcement import describe_enforcement

    print(f"schemagen enforcement for `{spec.name}` (strict={spec.strict}):\n"
          f"{describe_enforcement(spec.enforcement)}", file=sys.stderr)


def with_request_options(request: Request, transport: Mapping[str, Any]) -> Request:
    """``request`` with the SDK-style per-call options: ``extra_body`` merged into the body
    (so traces, debug and Batch API lines show it), the rest as transport options."""
    if not transport:
        return request
    body = {**request.body, **(transport.get("extra_body") or {})}
    names = {"extra_headers": "headers", "extra_query": "params", "timeout": "timeout"}
    options = {names[k]: v for k, v in transport.items() if k in names and v is not None}
    return dataclasses.replace(request, body=body, options={**request.options, **options})


def _grounded_fields(spec: ToolSpec, every_string: bool) -> tuple[GroundedField, ...]:
    """The spec's Quote fields, plus every free string field with ``grounded=True``."""
    fields = {f.path: f for f in (all_strings(spec.parameters) if every_string else ())}
    fields.update({f.path: f for f in spec.grounded})  # a marker's case setting wins
    return tuple(fields.values())


def _budgets(setting: BudgetSetting) -> tuple[Budget, ...]:
    """Budgets to check and charge: an int is a fresh per-call token budget, a Budget is shared."""
    if setting is None:
        return ()
    items = setting if isinstance(setting, Sequence) else (setting,)
    out = []
    for item in items:
        budget = Budget.coerce(item)
        if budget is not None:
            out.append(budget)
    return tuple(out)
