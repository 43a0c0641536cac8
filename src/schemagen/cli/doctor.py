"""``schemagen render`` and ``schemagen doctor``: see the exact prompt, check an endpoint.

Registered on the main app by one import in :mod:`schemagen.cli.main`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

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
)
from schemagen.errors import SchemagenError

TemplateOpt = Annotated[
    Optional[str],  # noqa: UP045 (typer reads the annotation at runtime, also on Python 3.9)
    typer.Option("--template", "-t", help="Chat template: .gguf file, HF model folder, tokenizer_config.json "
                                          "or a Jinja file"),
]


def _source_text(source: str) -> str:
    """A file's text, stdin for ``-``, else the argument itself."""
    if source == "-":
        return sys.stdin.read()
    path = Path(source)
    try:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise fail(f"can't read {source}: {exc}", EXIT_USAGE) from exc
    return source


def _finding_dict(finding: Any) -> dict[str, str]:
    return {"code": finding.code, "severity": finding.severity, "message": finding.message,
            "evidence": finding.evidence}


def render(
    source: Annotated[str, typer.Argument(help="The input text, a file holding it, or - for stdin")],
    schema: SchemaOpt,
    template: TemplateOpt = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Model name, or local:/path.gguf (local: the "
                                                             "local backend's prompt)")] = "model",
    mode: Annotated[Optional[str], typer.Option(help="A mode from the registry (tools, raw, ...); default: "  # noqa: UP045
                                                     "what extract would use")] = None,
    many: Annotated[bool, typer.Option("--many", help="Extract a list of the model")] = False,
    system: Annotated[Optional[str], typer.Option(help="System instruction ({tool} = tool name)")] = None,  # noqa: UP045
    examples: ExamplesOpt = None,
    grounded: Annotated[bool, typer.Option("--grounded", help="Strings must be spans of the text")] = False,
    visible: Annotated[bool, typer.Option("--visible", help="Mark newlines, tabs, trailing spaces")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print prompt, notes and findings as JSON")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when lint finds an error")] = False,
) -> None:
    """Print exactly what a backend and mode send for TEXT: the prompt for modes that render one
    (raw mode, local models), else the request body. It is the first request of a real extraction
    (the same code path), so it matches the prompt in that extraction's trace byte for byte.
    """
    from schemagen.errors import TemplateError
    from schemagen.render.lint import lint_prompt
    from schemagen.trace import VISIBLE_LEGEND
    from schemagen.trace import visible as show

    text = _source_text(source)
    try:
        run = _first_run(load_target(schema, many), text, model=model, template=template, mode=mode,
                         system=system, examples=load_examples(schema, examples), grounded=grounded)
        request = run.next_request()
        prompt = run.current.prompt
        chat_template = run.settings.template
        notes = list(run.trace.notes)
        findings: list[Any] = []
        if prompt is not None and chat_template is not None and request.constraint is None:
            try:
                findings = list(lint_prompt(chat_template, run.messages, [run.spec.tool]))
            except TemplateError:  # e.g. roles must alternate: the prompt was folded, see the notes
                findings = []
    except (SchemagenError, OSError) as exc:
        raise fail(f"{type(exc).__name__}: {exc}", EXIT_USAGE) from exc
    if prompt is None:
        if as_json:
            typer.echo(json.dumps({"template": None, "mode": run.settings.mode, "request": request.body},
                                  indent=2, ensure_ascii=False))
        else:
            typer.echo(json.dumps(request.body, indent=2, ensure_ascii=False))
            typer.echo(f"schemagen: mode {run.settings.mode!r} sends this request body (no prompt is "
                       "rendered "
                       "here); pass --template or --model local:... to see a prompt", err=True)
        return
    errors = [f for f in findings if f.severity == "error"]
    name = getattr(chat_template, "name", None)
    if as_json:
        typer.echo(json.dumps({
            "template": name, "mode": run.settings.mode, "prompt": prompt, "notes": notes,
            "findings": [_finding_dict(f) for f in findings],
            "max_tokens": request.max_tokens, "constraint": request.constraint,
        }, indent=2, ensure_ascii=False))
    else:
        if visible:
            typer.echo(f"schemagen: {VISIBLE_LEGEND}", err=True)
        sys.stdout.write(show(prompt) if visible else prompt)
        sys.stdout.flush()
        typer.echo(f"\nschemagen: template {name!r}, mode {run.settings.mode!r}, {len(prompt)} characters",
                   err=True)
        for note in notes:
            if not note.startswith("lint: "):
                typer.echo(f"note: {note}", err=True)
        typer.echo(f"lint: {len(findings)} finding{'s' * (len(findings) != 1)}", err=True)
        for finding in findings:
            typer.echo(f"  {finding}", err=True)
    if strict and errors:
        raise typer.Exit(EXIT_FAILED)


def _first_run(target: Any, text: str, *, model: str, template: str | None, mode: str | None,
               system: str | None, examples: list[Any], grounded: bool) -> Any:
    """The extraction ``schemagen extract`` would run (nothing is sent): a local model loads its
    backend (its template, tokenizer and constraint); otherwise no backend is needed to render."""
    from schemagen.client import Client
    from schemagen.engine.run import ExtractionRun, Settings
    from schemagen.render.templates import load_template

    if model.startswith("local:"):
        client = Client(model=model, mode=mode, template=template, system=system, examples=examples,
                        grounded=grounded)
        return client.start(target, text)
    settings = Settings(model=model, mode=mode or ("raw" if template else "tools"), system=system,
                        examples=tuple(examples), template=load_template(template) if template else None,
                        grounded=grounded)
    return ExtractionRun(target, text, settings)


def doctor(
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    template: TemplateOpt = None,
    tokenizer: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Token counts of local renders: a .gguf file, tokenizer.json, 'server' or 'none' "
                          "(default: the template's GGUF, else the server's tokenize route)"),
    ] = None,
    samples: Annotated[int, typer.Option(help="Samples for the forced-tool check")] = 3,
    max_tokens: Annotated[int, typer.Option(help="Output bound for each request")] = 200,
    check: Annotated[Optional[list[str]], typer.Option("--check", help="Run only these checks")] = None,  # noqa: UP045
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Run conformance checks against an OpenAI-compatible endpoint; exit 1 if any fails."""
    from schemagen.client import resolve_backend
    from schemagen.doctor import CHECKS, Doctor

    unknown = [c for c in check or [] if c not in dict(CHECKS)]
    if unknown:
        raise fail(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(dict(CHECKS))}", EXIT_USAGE)
    try:
        backend = resolve_backend(model=model, base_url=base_url)
        if "chat" not in backend.endpoints:
            raise fail("doctor checks chat endpoints; this backend has none", EXIT_USAGE)
        report = Doctor(backend, template=template, tokenizer=tokenizer, samples=samples,
                        max_tokens=max_tokens).run(check)
    except SchemagenError as exc:
        raise fail(f"{type(exc).__name__}: {exc}", EXIT_USAGE) from exc
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


def _print_report(report: Any) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    table = Table(title=f"schemagen doctor: {report.model} at {report.endpoint}", show_lines=True,
                  expand=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("check", ratio=2)
    table.add_column("verdict", no_wrap=True)
    table.add_column("summary and evidence", ratio=5)
    styles = {"pass": "bold green", "fail": "bold red", "skip": "yellow"}
    for number, result in enumerate(report.checks, 1):
        detail = Text(result.summary, style="bold")
        for line in result.evidence:
            detail.append("\n- " + line)
        if result.fix and result.verdict == "fail":
            detail.append("\nfix: " + result.fix, style="italic")
        table.add_row(str(number), Text(f"{result.id}\n{result.title}"),
                      Text(result.verdict.upper(), style=styles[result.verdict]), detail)
    console.print(table)
    console.print(Text(f"template: {report.template or 'none'} · tokenizer: {report.tokenizer or 'none'}",
                       style="dim"))
    failed = [c.id for c in report.checks if c.verdict == "fail"]
    console.print(Text(f"FAILED: {', '.join(failed)}" if failed else "all checks passed or skipped",
                       style="bold red" if failed else "bold green"))
