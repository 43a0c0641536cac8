"""Typed Arrow columns for extraction results (pure: no I/O, no engine).

A Pydantic target becomes Arrow types field by field: ``str`` -> string, ``int`` ->
int64, ``float`` -> float64, ``bool`` -> bool, ``date`` -> date32, ``datetime`` ->
timestamp[us], ``Enum``/``Literal`` -> the type of their values, ``list[X]`` -> list,
``dict[str, X]`` -> map, a nested model -> struct, ``X | None`` -> X. Anything else
(``Any``, a union of different types, ``Decimal``) is kept exactly as JSON text in a
string column. Every output column is nullable: a failed row has nulls there.

Layouts: ``"flat"`` gives one column per top-level field; ``"struct"`` one struct
column. A target that is not a model (``list[Invoice]``, ``str``) is one column either way.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from schemagen.errors import ConfigurationError

Layout = Literal["flat", "struct"]
Convert = Callable[[Any], Any]

#: The columns every output row carries beside the model's fields.
ERROR_TYPE = pa.struct([("type", pa.string()), ("message", pa.string())])
STATUS_FIELDS = (
    pa.field("_sg_key", pa.string()),
    pa.field("_sg_ok", pa.bool_()),
    pa.field("_sg_error", ERROR_TYPE),
    pa.field("_sg_attempts", pa.int32()),
    pa.field("_sg_prompt_tokens", pa.int64()),
    pa.field("_sg_completion_tokens", pa.int64()),
    pa.field("_sg_cost", pa.float64()),
)
STATUS_NAMES = frozenset(f.name for f in STATUS_FIELDS)


def _same(value: Any) -> Any:
    return value


def _as_json(value: Any) -> Any:
    return None if value is None else json.dumps(to_jsonable_python(value), ensure_ascii=False)


def _nullable(convert: Convert) -> Convert:
    return lambda v: None if v is None else convert(v)


def arrow_type(annotation: Any) -> tuple[pa.DataType, Convert]:
    """The Arrow type of a Python annotation, and how to turn a value into it."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return arrow_type(args[0])
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            kind, convert = arrow_type(rest[0])
            return kind, _nullable(convert)
        return pa.string(), _as_json
    if origin is Literal:
        kinds = {type(a) for a in args}
        if kinds <= {str}:
            return pa.string(), _same
        if kinds <= {int}:
            return pa.int64(), _same
        return pa.string(), _as_json
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set):
        if origin is tuple and (len(args) != 2 or args[1] is not Ellipsis):
            return pa.string(), _as_json  # a fixed-length tuple of mixed types
        inner, convert = arrow_type(args[0]) if args else (pa.string(), _as_json)
        return pa.list_(inner), _nullable(lambda v: [convert(x) for x in v])
    if origin in (dict, Mapping) or annotation is dict:
        if not args or args[0] is not str:
            return pa.string(), _as_json
        inner, convert = arrow_type(args[1])
        return pa.map_(pa.string(), inner), _nullable(lambda v: [(k, convert(x)) for k, x in v.items()])
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return model_struct(annotation)
        if issubclass(annotation, enum.Enum):
            values = {type(m.value) for m in annotation}
            kind = pa.int64() if values <= {int} else pa.string()
            return kind, _nullable(lambda v: v.value if isinstance(v, enum.Enum) else v)
        if issubclass(annotation, bool):
            return pa.bool_(), _same
        if issubclass(annotation, int):
            return pa.int64(), _same
        if issubclass(annotation, float):
            return pa.float64(), _same
        if issubclass(annotation, str):
            return pa.string(), _same
        if issubclass(annotation, dt.datetime):
            return pa.timestamp("us"), _same
        if issubclass(annotation, dt.date):
            return pa.date32(), _same
    return pa.string(), _as_json


def model_struct(model: type[BaseModel]) -> tuple[pa.DataType, Convert]:
    fields = [(name, *arrow_type(info.annotation)) for name, info in model.model_fields.items()]
    struct = pa.struct([(name, kind) for name, kind, _ in fields])

    def convert(value: Any) -> Any:
        if value is None:
            return None

        def get(name: str) -> Any:
            return value.get(name) if isinstance(value, dict) else getattr(value, name, None)

        return {name: conv(get(name)) for name, _, conv in fields}

    return struct, convert


@dataclass(frozen=True)
class OutputColumns:
    """The output columns of one target and layout, and how to fill them."""

    fields: tuple[pa.Field, ...]
    converters: tuple[Convert, ...]
    layout: Layout
    value_column: str
    per_field: bool  # one column per model field (flat layout of a model target)

    @classmethod
    def for_target(cls, target: Any, layout: Layout = "flat", value_column: str = "value") -> OutputColumns:
        if layout not in ("flat", "struct"):
            raise ConfigurationError(f"layout must be 'flat' or 'struct', got {layout!r}")
        if layout == "flat" and isinstance(target, type) and issubclass(target, BaseModel):
            pairs = [(name, *arrow_type(info.annotation)) for name, info in target.model_fields.items()]
            return cls(tuple(pa.field(n, k) for n, k, _ in pairs), tuple(c for _, _, c in pairs),
                       layout, value_column, True)
        kind, convert = arrow_type(target)
        return cls((pa.field(value_column, kind),), (convert,), layout, value_column, False)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def check_clash(self, input_columns: tuple[str, ...] | list[str]) -> None:
        """Output names must not collide with input columns or the ``_sg_`` columns."""
        clash = sorted(set(self.names) & (set(input_columns) | STATUS_NAMES))
        if clash:
            raise ConfigurationError(
                f"output column(s) {', '.join(clash)} would overwrite input columns of the same name; "
                "pass layout='struct' (one column, named by value_column=) or rename the input columns"
            )

    def arrays(self, values: list[Any]) -> list[pa.Array]:
        """One array per output field; ``values`` holds the extracted value, or None, per row."""
        if self.per_field:
            return [pa.array([None if v is None else convert(getattr(v, field.name, None)) for v in values],
                             type=field.type)
                    for field, convert in zip(self.fields, self.converters, strict=True)]
        convert = self.converters[0]
        return [pa.array([None if v is None else convert(v) for v in values], type=self.fields[0].type)]
