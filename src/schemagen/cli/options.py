"""What the CLI's commands share: exit codes, error exit, input reading, common options."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from pydantic import BaseModel

# Exit codes: 1 = the extraction failed, 2 = bad usage or configuration.
EXIT_FAILED = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    typer.echo(f"schemagen: error: {message}", err=True)
    return typer.Exit(code)


def read_text(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    path = Path(source)
    if not path.is_file():
        raise fail(f"input file not found: {source}", EXIT_USAGE)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"can't read {source}: {exc}", EXIT_USAGE) from exc


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "value") and value.__class__.__module__ != "builtins":  # Enum
        return value.value
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value)  # dataclasses, dates... (dicts and lists pass through)


def load_target(schema: str, many: bool) -> Any:
    from schemagen.loading import load_json_schema, load_object
    from schemagen.schema import list_schema

    if schema.lower().endswith(".json"):
        target = load_json_schema(schema)
        return list_schema(target) if many else target
    target = load_object(schema)
    return list[target] if many else target  # type: ignore[valid-type]  # a type built at runtime


def load_examples(schema: str, examples: str | None) -> list[Any]:
    """Worked examples: ``--examples file.py:NAME``, else the schema module's ``EXAMPLES`` if any."""
    from schemagen.loading import load_object

    if examples:
        found = load_object(examples)
    else:
        module, _, _ = schema.rpartition(":")
        try:
            found = load_object(f"{module}:EXAMPLES") if module else []
        except Exception:  # no EXAMPLES there: none
            found = []
    return list(found or [])


ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Model name, or local:/path.gguf")]  # noqa: UP045
BaseUrlOpt = Annotated[Optional[str], typer.Option("--base-url", help="OpenAI-compatible base URL")]  # noqa: UP045
SchemaOpt = Annotated[str, typer.Option(
    "--schema", "-s", help="file.py:Model, package.module:Model, or a JSON Schema file.json")]
ExamplesOpt = Annotated[Optional[str], typer.Option(  # noqa: UP045
    "--examples", help="Worked examples, file.py:NAME (default: the schema module's EXAMPLES, if any)")]
