"""Streaming over the extraction engine: deltas in, partial values out. Sans-IO.

:class:`StreamingRun` wraps an :class:`~schemagen.engine.run.ExtractionRun`. The one driving
loop, ``Client.steps(run, stream=True)``, sends the requests (hooks, spans, retries and all)
and hands each event to :meth:`StreamingRun.on`: a Request when an attempt starts, each
:class:`~schemagen.chunks.Delta` as it arrives, a TransportError before a retry from scratch,
and the Completion once the engine has judged it, exactly as for ``extract`` (same reasks,
truncation, budgets, usage and trace). This module only adds what a watcher sees on the way.
Without a driver (tests, benchmarks)::

    srun = StreamingRun(run)
    while not run.done:
        request = srun.next_request()
        for event in backend.stream(request):
            if isinstance(event, Completion):
                outputs = srun.receive(event)   # the final Partial, or [] before a reask
            else:
                outputs = srun.feed(event)      # a Partial when a field changed, else []

Partial validation: a top-level field is validated once its value is complete, with the
model's field validators but not its model validators (those need the whole object), and
``context={"partial": True}`` so a validator can tell. A field that fails is reported on
``Partial.errors``; nothing is raised until the final object is validated whole.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError, WrapValidator, create_model
from pydantic_core import to_jsonable_python

from schemagen.chunks import Delta
from schemagen.engine.run import ExtractionRun
from schemagen.errors import AttemptError, ConfigurationError, TransportError
from schemagen.exchange import Completion, Request
from schemagen.parse.partial import PartialJSON
from schemagen.parse.stream import TextCallReader, arguments_at

T = TypeVar("T")
#: The validation-context key user validators read: ``info.context.get("partial")``.
PARTIAL_CONTEXT = "partial"
OnInvalid = Literal["reask", "skip"]


@dataclass(eq=False)
class _Attempt:
    number: int
    superseded: bool = False


@dataclass(eq=False, slots=True)  # not frozen: one is made per change, and frozen init is slow
class Partial(Generic[T]):
    """The value so far (read-only). ``data`` is plain JSON: strings may be incomplete,
    numbers, booleans and enums appear only complete. For ``list[...]``, ``Literal``,
    ``str``... targets ``data`` is the value itself (the list so far)."""

    data: Any
    #: Complete top-level fields, validated (field validators ran with ``partial=True``).
    fields: Mapping[str, Any]
    #: Complete top-level fields that failed validation: the message per field.
    errors: Mapping[str, str]
    #: 1 for the first request, 2 for the first reask, ...
    attempt: int
    #: The validated value, on the last partial only (exactly what ``extract`` returns).
    final: T | None = None
    done: bool = False
    _attempt: _Attempt = field(default_factory=lambda: _Attempt(0), repr=False)

    @property
    def superseded(self) -> bool:
        """A later attempt (a reask, or a transport retry) replaced this one's output."""
        return self._attempt.superseded


@dataclass(frozen=True)
class InvalidItem:
    """A list item that closed but failed validation (``extract_iter``): never dropped silently."""

    index: int
    data: Any
    errors: str
    attempt: int


@functools.lru_cache(maxsize=64)
def _fields_only(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` without its model validators (they need the whole object) and unfrozen,
    so each field can be validated alone by ``validate_assignment``."""
    sub = create_model(f"{model.__name__}Fields", __base__=model)
    sub.__pydantic_decorators__.model_validators.clear()
    sub.model_config["frozen"] = False
    sub.model_config["validate_assignment"] = True
    sub.model_rebuild(force=True)
    return sub


class FieldValidator:
    """Validates top-level fields one at a time, as they complete. Without a model (JSON Schema,
    TypedDict and dataclass targets) fields pass as they are; the final value is validated whole."""

    def __init__(self, model: type[BaseModel] | None) -> None:
        self.model = _fields_only(model) if model is not None else None
        self.instance = self.model.model_construct() if self.model is not None else None
        fields = model.model_fields if model is not None else {}
        self.by_key = {(info.alias or name): name for name, info in fields.items()}
        self.required = {name for name, info in fields.items() if info.is_required()}

    def validate(self, key: str, value: Any) -> tuple[bool, Any]:
        """(True, validated value) or (False, error message). Never raises."""
        if self.model is None:
            return True, value
        name = self.by_key.get(key)
        if name is None:
            return False, f"`{key}` is not a field"
        try:
            self.model.__pydantic_validator__.validate_assignment(
                self.instance, name, value, context={PARTIAL_CONTEXT: True})
        except ValidationError as exc:
            if value is None and name not in self.required:  # strict mode's null = the default
                return True, self.model.model_fields[name].get_default(call_default_factory=True)
            return False, "; ".join(f"{_loc(e['loc'])}{e['msg']}" for e in exc.errors())
        except Exception as exc:  # a user validator that trips on partial data must not end the stream
            return False, f"{type(exc).__name__}: {exc}"
        return True, getattr(self.instance, name)


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(map(str, loc)) + ": " if loc else ""


def list_item_type(run: ExtractionRun[Any]) -> Any:
    """The item type of a ``list[Item]`` target, else ConfigurationError."""
    spec = run.spec
    if spec.model is None:
        raise ConfigurationError(
            f"extract_iter needs a Pydantic list target such as list[Invoice], not `{spec.name}` "
            "(a JSON Schema, TypedDict or dataclass target): use extract_stream, whose final value "
            "is validated whole"
        )
    info = spec.model.model_fields.get("items") if spec.wrapped else None
    args = typing.get_args(info.annotation) if info is not None else ()
    if info is None or typing.get_origin(info.annotation) is not list or len(args) != 1:
        raise ConfigurationError(
            f"extract_iter needs a list target such as list[Invoice], not `{spec.name}`; "
            "use extract_stream for a single object"
        )
    return args[0]


class _Skipped:
    """Stands in for an invalid item under on_invalid='skip' (filtered out by the unwrap)."""

    def __init__(self, errors: str) -> None:
        self.errors = errors


def _skip_invalid(value: Any, handler: Any) -> Any:
    try:
        return handler(value)
    except ValidationError as exc:
        return _Skipped(str(exc))


class StreamingRun(Generic[T]):
    """Partials (or list items) from the deltas of an :class:`ExtractionRun`'s attempts."""

    def __init__(self, run: ExtractionRun[T], *, items: OnInvalid | None = None) -> None:
        self.run = run
        self.spec = run.spec
        self.items = items
        self.validator = FieldValidator(self.spec.model)
        self._wrapped = self.spec.wrapped
        self.item_adapter: TypeAdapter[Any] | None = None
        self.invalid: list[InvalidItem] = []
        self.last: Partial[T] | None = None
        self._attempt = _Attempt(0)
        self._request: Request | None = None
        self._yielded: set[tuple[int, str]] = set()  # (index, JSON) of items handed out
        self._accounted = 0  # items of this attempt handed out or already handed out before
        if items is not None:
            item = list_item_type(run)
            self.item_adapter = TypeAdapter(item)
            if items == "skip":  # the tool stays; the final validation keeps the valid items
                kept = list[typing.Annotated[item, WrapValidator(_skip_invalid)]]  # type: ignore[valid-type]  # a runtime type
                model = self.spec.model
                assert model is not None  # list_item_type refused model-less targets
                lenient = create_model(model.__name__, __base__=model, items=(kept, ...))
                run.spec = _replace_model(self.spec, lenient)
        self._reset()

    # ------------------------------------------------------------ attempts

    def on(self, event: object) -> list[Any]:
        """Take one event of the driver (``Client.steps(run, stream=True)``): what it gives out."""
        if isinstance(event, Delta):
            return self.feed(event)
        if isinstance(event, Request):
            self.started(event)
        elif isinstance(event, Completion):
            return self.received()
        elif isinstance(event, TransportError):
            self.restart()
        return []

    def next_request(self) -> Request:
        """Sans-IO use without a driver: the run's next request, with :meth:`started` done."""
        request = self.run.next_request()
        self.started(request)
        return request

    def started(self, request: Request) -> None:
        """The run's next attempt was sent: earlier partials are superseded."""
        self._attempt.superseded = self._attempt.number > 0
        self._attempt = _Attempt(self.run.trace.attempts[-1].number)
        self._request = request
        self._reset()

    def restart(self) -> None:
        """The transport failed mid-stream and the request is sent again: start over."""
        self._attempt.superseded = True
        self._attempt = _Attempt(self._attempt.number)
        self._reset()

    def _reset(self) -> None:
        self._args = PartialJSON(close_depth=2)
        self._text: TextCallReader | None = None
        self._from_args = False
        self._fields: dict[str, Any] = {}
        self._errors: dict[str, str] = {}
        self._shown: tuple[dict[str, Any], dict[str, str]] | None = None
        self._accounted = 0

    # ------------------------------------------------------------ deltas

    def feed(self, delta: Delta) -> list[Any]:
        """Take one delta: the new Partial (or validated items) it completes, if any."""
        if delta.channel == "arguments":
            if delta.index != 0:
                return []
            self._from_args = True
            changed = self._args.feed(delta.text)
            return self._outputs(self._args, (), changed)
        if self._from_args:
            return []
        if self._text is None:
            constrained = self._request is not None and self._request.constraint is not None
            self._text = TextCallReader(self.spec.name, constrained=constrained, schema=self.spec.parameters)
        changed = self._text.feed(delta.text)
        parser = self._text.json
        if parser is None:
            return []
        prefix = self._text.prefix(parser.value if parser.started else None)
        if prefix is None:
            return []
        return self._outputs(parser, prefix, changed)

    def _outputs(self, parser: PartialJSON, prefix: tuple[Any, ...], changed: bool) -> list[Any]:
        out: list[Any] = []
        if parser.closed:
            closed, parser.closed = parser.closed, []
            depth = len(prefix)
            for path, value in closed:
                if path[:depth] != prefix:
                    continue
                rest = path[depth:]
                if len(rest) == 1 and isinstance(rest[0], str):
                    self._field_closed(rest[0], value)
                    changed = True
                elif len(rest) == 2 and rest[0] == "items" and self.item_adapter is not None:
                    out += self._item_closed(rest[1], value)
        if self.items is not None or not changed:
            return out
        args = arguments_at(parser.snapshot(), prefix) if prefix else parser.snapshot()
        if args is None:
            return out
        if self._shown is None:  # the field maps are shared by partials until a field closes
            self._shown = (dict(self._fields), dict(self._errors))
        self.last = Partial(self._view(args), self._shown[0], self._shown[1], self._attempt.number,
                            None, False, self._attempt)
        return [self.last]

    def _view(self, args: Any) -> Any:
        if self._wrapped and isinstance(args, dict):
            model = self.spec.model
            (key,) = model.model_fields if model is not None else ("value",)  # JSON Schema: {"value": ...}
            return args.get(key)
        return args

    def _field_closed(self, key: str, value: Any) -> None:
        self._shown = None
        ok, result = self.validator.validate(key, value)
        if ok:
            self._fields[key] = result
            self._errors.pop(key, None)
        else:
            self._errors[key] = result

    def _item_closed(self, index: int, value: Any) -> list[Any]:
        assert self.item_adapter is not None
        try:
            item = self.item_adapter.validate_python(value, context={PARTIAL_CONTEXT: False})
        except ValidationError as exc:
            self.invalid.append(InvalidItem(index, value, str(exc), self._attempt.number))
            return []
        self._accounted += 1
        key = (index, repr(value))
        if key in self._yielded:  # handed out by an earlier attempt already
            return []
        self._yielded.add(key)
        return [item]

    # ------------------------------------------------------------ the end of an attempt

    def receive(self, completion: Completion) -> list[Any]:
        """Hand the completion to the engine: the final Partial (or the items not yet
        handed out), or nothing when a reask follows. Typed errors carry ``received``."""
        try:
            self.run.receive(completion)
        except AttemptError as exc:
            raise self.failed(exc) from None
        return self.received()

    def received(self) -> list[Any]:
        """The engine judged the attempt (without raising): the final Partial, or nothing
        when a reask follows."""
        if not self.run.done:
            return []
        value = self.run.result().value
        if self.items is not None:
            rest: list[Any] = list(value)[self._accounted:]  # type: ignore[call-overload]  # items: T is a list
            return rest
        data = to_jsonable_python(value, fallback=str)
        fields = self._fields
        if isinstance(value, BaseModel) and not self.spec.wrapped:  # the final fields are the value's
            fields = {(info.alias or name): getattr(value, name)
                      for name, info in type(value).model_fields.items()}
        self.last = Partial(data, fields, {}, self._attempt.number,
                            final=value, done=True, _attempt=self._attempt)
        return [self.last]

    def failed(self, exc: AttemptError) -> AttemptError:
        """Attach what was received before ``exc`` (the last Partial) to it."""
        exc.received = self.last
        return exc


def _replace_model(spec: Any, model: type[BaseModel]) -> Any:
    """``spec`` validating with ``model`` (same tool, same schema) and dropping skipped items."""
    import dataclasses

    unwrap = spec.unwrap

    def keep_valid(instance: Any) -> Any:
        return [item for item in unwrap(instance) if not isinstance(item, _Skipped)]

    return dataclasses.replace(spec, model=model, unwrap=keep_valid)


__all__ = ["PARTIAL_CONTEXT", "FieldValidator", "InvalidItem", "OnInvalid", "Partial", "StreamingRun",
           "list_item_type"]
