"""The ``schemagen`` command line. Every error prints a clear message and exits non-zero."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from pydantic import BaseModel

from schemagen.errors import SchemagenError

app = typer.Typer(
    name="schemagen", no_args_is_help=True, add_completion=False,
    help="Structured output from LLMs: a Pydantic model in, validated JSON out.",
)


@app.callback()
def _root() -> None:
    """Structured output from LLMs: a Pydantic model in, validated JSON out."""


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
    return value


def load_target(schema: str, many: bool) -> Any:
    from schemagen.loading import load_object

    target = load_object(schema)
    return list[target] if many else target  # type: ignore[valid-type]


ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Model name, or local:/path.gguf")]  # noqa: UP045
BaseUrlOpt = Annotated[Optional[str], typer.Option("--base-url", help="OpenAI-compatible base URL")]  # noqa: UP045
SchemaOpt = Annotated[str, typer.Option("--schema", "-s", help="file.py:Model or package.module:Model")]


@app.command()
def extract(
    source: Annotated[str, typer.Argument(help="Input file, or - for stdin")],
    schema: SchemaOpt,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    retries: Annotated[int, typer.Option(help="Validation reasks after the first attempt")] = 2,
    max_tokens: Annotated[Optional[int], typer.Option(help="Output token bound")] = None,  # noqa: UP045
    many: Annotated[bool, typer.Option("--many", help="Extract a list of the model")] = False,
    mode: Annotated[Optional[str], typer.Option(help="tools (chat) or raw (completions)")] = None,  # noqa: UP045
    template: Annotated[Optional[str], typer.Option(help="Chat template: .gguf, HF dir, file")] = None,  # noqa: UP045
    debug: Annotated[bool, typer.Option("--debug", help="Print every request and raw response")] = False,
    trace: Annotated[bool, typer.Option("--trace", help="Print the full trace JSON to stderr")] = False,
) -> None:
    """Extract one object (or --many) from a text and print it as JSON."""
    from schemagen.client import Client

    text = read_text(source)
    try:
        target = load_target(schema, many)
        client = Client(model=model, base_url=base_url, retries=retries, max_tokens=max_tokens,
                        debug=debug or None, mode=mode, template=template)
        backend_name = getattr(client.backend, "describe", None)
        typer.echo(f"schemagen: model {backend_name() if backend_name else client.settings.model}", err=True)
        result = client.extract_result(target, text)
    except SchemagenError as exc:
        from schemagen.errors import ConfigurationError, MissingDependencyError, SchemaError

        usage_error = isinstance(exc, ConfigurationError | MissingDependencyError | SchemaError)
        if trace and getattr(exc, "trace", None) is not None:
            typer.echo(json.dumps(exc.trace.to_dict(), indent=2, default=str), err=True)  # type: ignore[attr-defined]
        raise fail(f"{type(exc).__name__}: {exc}", EXIT_USAGE if usage_error else EXIT_FAILED) from exc
    if trace:
        typer.echo(json.dumps(result.trace.to_dict(), indent=2, default=str), err=True)
    typer.echo(json.dumps(to_jsonable(result.value), indent=2, ensure_ascii=False))


from schemagen import cli_doctor  # noqa: E402, F401  (registers `render` and `doctor`)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
