"""The ``schemagen`` command line. Every error prints a clear message and exits non-zero."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from schemagen.cli import doctor as doctor_commands
from schemagen.cli.options import (
    EXIT_FAILED,
    EXIT_USAGE,
    BaseUrlOpt,
    ExamplesOpt,
    ModelOpt,
    SchemaOpt,
    fail,
    load_examples,
    load_target,
    read_text,
    to_jsonable,
)
from schemagen.errors import AttemptError, SchemagenError

app = typer.Typer(
    name="schemagen", no_args_is_help=True, add_completion=False,
    help="Structured output from LLMs: a Pydantic model in, validated JSON out.",
)


@app.callback()
def _root() -> None:
    """Structured output from LLMs: a Pydantic model in, validated JSON out."""


@app.command()
def extract(
    source: Annotated[str, typer.Argument(help="Input file, or - for stdin")],
    schema: SchemaOpt,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    retries: Annotated[int, typer.Option(help="Validation reasks after the first attempt")] = 2,
    max_tokens: Annotated[Optional[int], typer.Option(help="Output token bound")] = None,  # noqa: UP045
    many: Annotated[bool, typer.Option("--many", help="Extract a list of the model")] = False,
    mode: Annotated[Optional[str], typer.Option(  # noqa: UP045
        help="auto (default), tools, tools_required, tools_auto, json_schema, json_object, prompt, raw",
    )] = None,
    template: Annotated[Optional[str], typer.Option(help="Chat template: .gguf, HF dir, file")] = None,  # noqa: UP045
    examples: ExamplesOpt = None,
    grounded: Annotated[bool, typer.Option("--grounded", help="Strings must be spans of the text")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Print every request and raw response")] = False,
    trace: Annotated[bool, typer.Option("--trace", help="Print the full trace JSON to stderr")] = False,
    stream: Annotated[bool, typer.Option("--stream", help="Show the value filling in live (stderr)")] = False,
) -> None:
    """Extract one object (or --many) from a text and print it as JSON."""
    from schemagen.client import Client

    text = read_text(source)
    try:
        target = load_target(schema, many)
        shots = load_examples(schema, examples)
        client = Client(model=model, base_url=base_url, retries=retries, max_tokens=max_tokens,
                        debug=debug or None, mode=mode, template=template, examples=shots, grounded=grounded)
        backend_name = getattr(client.backend, "describe", None)
        typer.echo(f"schemagen: model {backend_name() if backend_name else client.settings.model}", err=True)
        if shots:
            where = examples or schema.rpartition(":")[0]
            typer.echo(f"schemagen: {len(shots)} worked example(s) from {where}", err=True)
        if stream:
            from rich.console import Console

            from schemagen.cli.stream_view import stream_extraction

            result = stream_extraction(client.stream(target, text), Console(stderr=True))
        else:
            result = client.extract_result(target, text)
    except SchemagenError as exc:
        from schemagen.errors import ConfigurationError, MissingDependencyError, SchemaError

        usage_error = isinstance(exc, ConfigurationError | MissingDependencyError | SchemaError)
        if trace and isinstance(exc, AttemptError) and exc.trace is not None:
            typer.echo(json.dumps(exc.trace.to_dict(), indent=2, default=str), err=True)
        raise fail(f"{type(exc).__name__}: {exc}", EXIT_USAGE if usage_error else EXIT_FAILED) from exc
    if trace:
        typer.echo(json.dumps(result.trace.to_dict(), indent=2, default=str), err=True)
    typer.echo(json.dumps(to_jsonable(result.value), indent=2, ensure_ascii=False))


@app.command()
def batch(
    source: Annotated[str, typer.Argument(help="inputs.jsonl, inputs.csv, a folder of .txt/.md, or -")],
    schema: SchemaOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output JSONL, appended item by item")],
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    concurrency: Annotated[int, typer.Option(help="Items in flight at once")] = 16,
    resume: Annotated[bool, typer.Option("--resume", help="Skip ids already in --out")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Empty --out first")] = False,
    retry_errors: Annotated[bool, typer.Option("--retry-errors", help="With --resume: redo errors")] = False,
    rpm: Annotated[Optional[float], typer.Option(help="Requests per minute")] = None,  # noqa: UP045
    tpm: Annotated[Optional[float], typer.Option(help="Tokens per minute (prompt + max output)")] = None,  # noqa: UP045
    batch_api: Annotated[bool, typer.Option("--batch-api", help="Use the OpenAI Batch API")] = False,
    poll_interval: Annotated[float, typer.Option(help="Seconds between Batch API polls")] = 30.0,
    budget: Annotated[Optional[int], typer.Option(help="Stop at this many tokens; --resume goes on")] = None,  # noqa: UP045
    retries: Annotated[int, typer.Option(help="Validation reasks after the first attempt")] = 2,
    max_tokens: Annotated[Optional[int], typer.Option(help="Output token bound")] = None,  # noqa: UP045
    many: Annotated[bool, typer.Option("--many", help="Extract a list of the model per record")] = False,
    text_field: Annotated[str, typer.Option(help="JSONL/CSV field holding the text")] = "text",
    id_field: Annotated[str, typer.Option(help="JSONL/CSV field holding the id")] = "id",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, no summary")] = False,
    engine: Annotated[str, typer.Option(help="asyncio (one process) or ray (--out is a folder)")] = "asyncio",
    address: Annotated[Optional[str], typer.Option(help="With --engine ray: the cluster, e.g. auto")] = None,  # noqa: UP045
) -> None:
    """Extract from many records into a JSONL file: one line per id, a result or an error record.

    Exit codes: 0 every item is a result; 1 some are error records; 2 bad usage or
    configuration (including an API key or model the server rejects); 3 stopped by
    --budget (finished items are kept: rerun with --resume); 130 interrupted.
    """
    import asyncio

    from schemagen.batch.run import aextract_many
    from schemagen.client import Client
    from schemagen.errors import ConfigurationError, MissingDependencyError, SchemaError

    show_progress = not quiet and sys.stderr.isatty()
    try:
        target = load_target(schema, many)
        if engine != "asyncio":  # an integration (schemagen.integrations) runs the whole batch
            from schemagen.integrations import get_integration

            summary = get_integration(engine).run_batch(
                source, target, str(out), address=address, text_field=text_field, id_field=id_field,
                concurrency=-(-concurrency // 16), per_actor_concurrency=min(16, concurrency),
                progress=show_progress, resume=resume,
                overwrite=overwrite, retry_errors=retry_errors, rpm=rpm, tpm=tpm, budget=budget,
                base_url=base_url, model=model, retries=retries, max_tokens=max_tokens)
            if not quiet:
                typer.echo("schemagen batch: " + summary.describe().replace("\n", "\n  "), err=True)
            raise typer.Exit(summary.exit_code)
        client = Client(model=model, base_url=base_url, retries=retries, max_tokens=max_tokens)
        run = aextract_many(
            target, source, client=client, concurrency=concurrency, rpm=rpm, tpm=tpm, checkpoint=out,
            resume=resume, overwrite=overwrite, retry_errors=retry_errors, budget=budget,
            mode="batch_api" if batch_api else "online", progress=show_progress,
            text_field=text_field, id_field=id_field, poll_interval=poll_interval,
        )

        async def drain() -> None:
            async for _ in run:
                pass  # each result is already in --out; keep none in memory

        asyncio.run(drain())
    except KeyboardInterrupt:
        typer.echo(f"schemagen: interrupted; finished items are in {out}. Rerun with --resume.", err=True)
        raise typer.Exit(130) from None
    except SchemagenError as exc:
        usage_error = isinstance(exc, ConfigurationError | MissingDependencyError | SchemaError)
        fatal = getattr(exc, "status_code", None) in (401, 403, 404)
        code = EXIT_USAGE if usage_error or fatal else EXIT_FAILED
        raise fail(f"{type(exc).__name__}: {exc}", code) from exc
    if not quiet:
        typer.echo("schemagen batch: " + run.summary.describe().replace("\n", "\n  "), err=True)
    raise typer.Exit(run.summary.exit_code)


app.command()(doctor_commands.render)
app.command()(doctor_commands.doctor)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
