"""Field accuracy on a labelled set: schemagen's embedded default vs Outlines vs instructor.

    PYTHONPATH=src python benchmarks/accuracy.py [--limit 12] [--schemas Invoice,Person]
        [--only schemagen,grounded,outlines,instructor] [--base-url http://127.0.0.1:8080/v1]
        [--plot docs/accuracy.png] [--json results.json] [--threads 2]

Same GGUF for everyone (SmolLM2-135M-Instruct, the embedded model), greedy decoding, the same
Pydantic schemas and texts (benchmarks/data/: cases.jsonl, schemas.py; >= 40 texts, 9 schemas
including a small function-calling set):

* ``schemagen``: ``schemagen.extract`` on the embedded local backend, defaults (no examples);
* ``grounded``: the same with ``grounded=True`` (every free string must be a span of the text);
* ``outlines``: Outlines 1.x, ``outlines.from_llamacpp`` on the same GGUF, its default backend,
  a one-line system prompt and the Pydantic model as the output type;
* ``instructor``: instructor (TOOLS mode) against a llama.cpp server serving the same GGUF
  (``--base-url`` or SCHEMAGEN_TEST_LLAMA_URL); skipped when none is given.

Field accuracy counts labelled leaves (list items by position, plus each list's length); an
invalid answer scores zero on every field. It also counts string values (not Literals) that
don't occur in the text. Ratios are against Outlines, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "data"))

from _scoring import load_cases, occurs, score
from schemas import SCHEMAS

import schemagen
from schemagen.grounding import all_strings, cite

MAX_TOKENS = 400
SYSTEM_ONE_LINE = "Extract the requested information from the user's text as JSON."


def made_up(case: dict[str, Any], value: dict[str, Any] | None) -> tuple[int, int]:
    """(strings not in the text, free strings checked) of one answer."""
    if value is None:
        return 0, 0
    spec = schemagen.build_tool(SCHEMAS[case["schema"]], False)
    cites = cite(value, case["text"], all_strings(spec.parameters))
    return sum(not occurs(c.value, case["text"]) for c in cites), len(cites)


def run_schemagen(
    cases: list[dict[str, Any]], grounded: bool, compact: bool | None = None, threads: int | None = None,
) -> list[dict[str, Any] | None]:
    from schemagen.backends.local import LocalBackend

    options: dict[str, Any] = {"n_threads": threads}
    if compact is not None:
        options["compact"] = compact
    backend = LocalBackend(**options)
    out: list[dict[str, Any] | None] = []
    for case in cases:
        try:
            target = SCHEMAS[case["schema"]]
            value = schemagen.extract(target, case["text"], backend=backend, grounded=grounded)
            out.append(value.model_dump(mode="json"))
        except schemagen.SchemagenError:
            out.append(None)
    return out


def run_outlines(cases: list[dict[str, Any]], threads: int | None = None) -> list[dict[str, Any] | None]:
    import numba  # noqa: F401  (Outlines' default backend needs it, else generation is unconstrained)
    import outlines
    from llama_cpp import Llama
    from outlines.inputs import Chat

    from schemagen.models import default_local_model_path

    llm = Llama(model_path=str(default_local_model_path()), n_ctx=4096, verbose=False,
                n_threads=threads or max(1, (os.cpu_count() or 2) // 2))
    model = outlines.from_llamacpp(llm)
    out: list[dict[str, Any] | None] = []
    for case in cases:
        target = SCHEMAS[case["schema"]]
        chat = Chat([{"role": "system", "content": SYSTEM_ONE_LINE},
                     {"role": "user", "content": case["text"]}])
        try:
            text = model(chat, target, max_tokens=MAX_TOKENS, temperature=0.0)
            out.append(target.model_validate_json(text).model_dump(mode="json"))
        except Exception:  # invalid JSON or schema: an invalid answer
            out.append(None)
        llm.reset()
    return out


def run_instructor(cases: list[dict[str, Any]], base_url: str) -> list[dict[str, Any] | None]:
    import instructor
    import openai

    client = instructor.from_openai(openai.OpenAI(base_url=base_url, api_key="x"), mode=instructor.Mode.TOOLS)
    out: list[dict[str, Any] | None] = []
    for case in cases:
        target = SCHEMAS[case["schema"]]
        try:
            value = client.chat.completions.create(
                model="smollm2", response_model=target, max_retries=2, temperature=0.0, max_tokens=MAX_TOKENS,
                messages=[{"role": "user", "content": case["text"]}],
            )
            out.append(value.model_dump(mode="json"))
        except Exception:
            out.append(None)
    return out


def summarise(name: str, cases: list[dict[str, Any]], answers: list[dict[str, Any] | None],
              wall: float) -> dict[str, Any]:
    right = total = valid = bad = strings = 0
    for case, got in zip(cases, answers, strict=True):
        r, n = score(case["label"], got)
        right, total = right + r, total + n
        valid += got is not None
        b, s = made_up(case, got)
        bad, strings = bad + b, strings + s
    return {"name": name, "field_accuracy": right / total, "fields_right": right, "fields": total,
            "valid_rate": valid / len(cases), "valid": valid, "cases": len(cases), "wall_s": wall,
            "made_up_strings": bad, "strings": strings}


def plot(rows: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["name"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for ax, key, title in zip(axes, ("field_accuracy", "valid_rate", "wall_s"),
                              ("field accuracy", "valid rate", "wall time (s)"), strict=True):
        ax.bar(names, [r[key] for r in rows], color=["#3b7dd8", "#1f9e6e", "#999999", "#c77c2e"][: len(rows)])
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=20)
        if key != "wall_s":
            ax.set_ylim(0, 1)
    fig.suptitle(f"SmolLM2-135M-Instruct, {rows[0]['cases']} labelled texts")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="a subset spread over the schemas")
    parser.add_argument("--schemas", default=None, help="comma-separated schema names")
    parser.add_argument("--only", default="schemagen,grounded,outlines,instructor")
    parser.add_argument("--base-url", default=os.environ.get("SCHEMAGEN_TEST_LLAMA_URL"))
    parser.add_argument("--plot", default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--threads", type=int, default=None,
                        help="llama.cpp threads for schemagen and Outlines (default: half the cores, "
                        "as both do)")
    parser.add_argument("--results", default=None,
                        help="also write the docs home page's accuracy.json (benchmarks/plots.py) here")
    parser.add_argument("--merge", nargs="*", default=None,
                        help="no run: print and plot the rows of earlier --json files (runs split up)")
    args = parser.parse_args()
    if args.merge:
        merged = [row for f in args.merge for row in json.loads(Path(f).read_text())["rows"]]
        report(merged)
        if args.plot:
            plot(merged, args.plot)
        if args.results:
            write_results(merged, args.results)
        return
    cases = load_cases(set(args.schemas.split(",")) if args.schemas else None, args.limit)
    only = args.only.split(",")
    runners = {
        "schemagen": lambda: run_schemagen(cases, grounded=False, threads=args.threads),
        "grounded": lambda: run_schemagen(cases, grounded=True, threads=args.threads),
        "compact": lambda: run_schemagen(cases, grounded=False, compact=True, threads=args.threads),
        "grounded-compact": lambda: run_schemagen(cases, grounded=True, compact=True, threads=args.threads),
        "outlines": lambda: run_outlines(cases, args.threads),
        "instructor": lambda: run_instructor(cases, args.base_url) if args.base_url else None,
    }
    rows = []
    for name in only:
        started = time.perf_counter()
        answers = runners[name]()
        if answers is None:
            print(f"{name}: skipped (no --base-url / SCHEMAGEN_TEST_LLAMA_URL)")
            continue
        row = summarise({"schemagen": "schemagen default", "grounded": "schemagen grounded"}.get(name, name),
                        cases, answers, time.perf_counter() - started)
        row["answers"] = answers
        rows.append(row)
        report([row], ratios=False)
    report(rows, rows_too=False)
    if args.plot and rows:
        plot(rows, args.plot)
    if args.json:
        Path(args.json).write_text(json.dumps({"cases": [c["id"] for c in cases], "rows": rows}, indent=1))
    if args.results and rows:
        write_results(rows, args.results)


def write_results(rows: list[dict[str, Any]], path: str) -> None:
    """The figures benchmarks/plots.py draws on the docs home page."""
    results = [{"label": f"{r['name']}, SmolLM2-135M", "accuracy": round(r["field_accuracy"], 4)}
               for r in rows]
    Path(path).write_text(json.dumps({"metric": f"field accuracy, {rows[0]['cases']} texts",
                                      "results": results}, indent=1) + "\n")


def report(rows: list[dict[str, Any]], *, ratios: bool = True, rows_too: bool = True) -> None:
    for row in rows if rows_too else []:
        print(f"{row['name']:20s} field acc {row['field_accuracy']:.2f} "
              f"({row['fields_right']}/{row['fields']})  valid {row['valid']}/{row['cases']}  "
              f"made-up strings {row['made_up_strings']}/{row['strings']}  "
              f"wall {row['wall_s']:.1f}s", flush=True)
    base = next((r for r in rows if r["name"] == "outlines"), None) if ratios else None
    if base:
        print("\nratios vs Outlines (same run):")
        for row in rows:
            if row is base:
                continue
            acc = row["field_accuracy"] / base["field_accuracy"] if base["field_accuracy"] else float("inf")
            print(f"  {row['name']:20s} field accuracy {acc:.2f}x (target >= 1.2x)  "
                  f"wall {row['wall_s'] / base['wall_s']:.2f}x (target <= 1.0x)")


if __name__ == "__main__":
    main()
