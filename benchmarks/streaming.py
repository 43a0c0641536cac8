"""Streaming partials, measured side by side in one run.

1. CPU per chunk: a loopback SSE server (its own process) streams a 200-item Invoice as
   tool_call argument deltas, one token a chunk. The client's CPU time (process_time: the
   server's is not counted) for schemagen ``extract_stream`` vs instructor
   ``create_partial`` on the same stream; also the parse step alone (the deltas fed to
   schemagen's StreamingRun vs instructor's partial parse + validation), without HTTP.
   Target: schemagen <= 0.2x instructor per chunk.
2. Time to the first complete field vs time to the whole object, on the real llama.cpp
   server ($SCHEMAGEN_TEST_LLAMA_URL, or --llama-url) for a 20-item invoice. Target <= 0.2x.
3. CPU of streaming vs not, on the same response: ``extract_stream`` (partials) vs ``extract``
   on the same SSE stream (stream=True: the accumulator and repetition guard only), and vs
   ``extract`` of the same answer as one JSON body. Target <= 1.1x.

    python benchmarks/streaming.py [--items 200] [--rounds 3] [--llama-url URL | --own-llama | --no-llama]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pydantic import Field

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from examples.invoice_plain import Invoice, Item  # noqa: E402

import schemagen  # noqa: E402
from schemagen.chunks import Delta  # noqa: E402
from schemagen.engine.run import ExtractionRun, Settings  # noqa: E402
from schemagen.engine.stream import StreamingRun  # noqa: E402
from schemagen.testing.llama import free_port  # noqa: E402

ADJ = ["steel", "oak", "brass", "nylon", "copper", "rubber", "glass", "cedar", "maple", "carbon", "zinc"]
NOUN = ["bracket", "hinge", "valve", "gasket", "bolt", "washer", "spring", "clamp", "pulley", "lever",
        "bearing", "socket", "flange"]
FINISH = ["matte", "polished", "coated", "raw", "painted", "anodised", "brushed"]


def items_of(n: int) -> list[dict[str, Any]]:
    return [{"description": f"{FINISH[i % 7]} {ADJ[i % 11]} {NOUN[i % 13]} size {i % 5 + 2}",
             "quantity": i % 7 + 1, "unit_price": round(3.25 + (i * 37 % 101) / 4, 2)} for i in range(n)]


def invoice_text(n: int) -> str:
    lines = [f"{it['quantity']} x {it['description']} at {it['unit_price']}" for it in items_of(n)]
    return "Invoice INV-2024-0042 from ACME Corporation\n" + "\n".join(lines)


class Line20(Item):
    description: str = Field(max_length=60)  # a cap the grammar holds: no runaway string


class Invoice20(Invoice):
    """An invoice found in the text, all 20 lines and no more (SmolLM2-135M stops early, or
    goes on past the last line, otherwise; llama.cpp's grammar enforces min/maxItems and maxLength)."""

    items: list[Line20] = Field(min_length=20, max_length=20)


class InvoiceFree(Invoice):
    """The same invoice, as many lines as the model writes (``--llama-free``)."""

    items: list[Line20]


def invoice_json(n: int) -> str:
    items = items_of(n)
    total = round(sum(it["quantity"] * it["unit_price"] for it in items), 2)
    return json.dumps({"invoice_number": "INV-2024-0042", "vendor": "ACME Corporation",
                       "total": total, "items": items})


def token_pieces(text: str) -> list[str]:
    """About one tokenizer token a piece: words with their leading space, punctuation alone."""
    return re.findall(r" ?[A-Za-z]+| ?\d+|\s+|[^\sA-Za-z\d]", text)


# ---------------------------------------------------------------- the loopback SSE server


def serve(port: int, items: int) -> None:
    pieces = token_pieces(invoice_json(items))
    whole = "".join(pieces)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            name = body["tool_choice"]["function"]["name"]
            base = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
            usage = {"prompt_tokens": 100, "completion_tokens": len(pieces),
                     "total_tokens": 100 + len(pieces)}
            if not body.get("stream"):
                call = {"id": "call_0", "type": "function", "function": {"name": name, "arguments": whole}}
                data = json.dumps({**base, "object": "chat.completion", "usage": usage, "choices": [{
                    "index": 0, "finish_reason": "tool_calls",
                    "message": {"role": "assistant", "content": None, "tool_calls": [call]}}]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            out: list[bytes] = []

            def send(obj: Any) -> None:
                data = f"data: {json.dumps(obj)}\n\n".encode()
                out.append(f"{len(data):x}\r\n".encode() + data + b"\r\n")

            for i, piece in enumerate(pieces):
                call: dict[str, Any] = {"index": 0, "function": {"arguments": piece}}
                if i == 0:
                    call.update(id="call_0", type="function")
                    call["function"]["name"] = name
                delta = {"tool_calls": [call]}
                send({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
            send({**base, "choices": [], "usage": usage})
            done = b"data: [DONE]\n\n"
            out.append(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")
            self.wfile.write(b"".join(out))
            self.wfile.flush()

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def start_server(items: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--items", str(items)], cwd=ROOT)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}/v1"


# ---------------------------------------------------------------- 1. CPU per chunk


def cpu_interleaved(fns: dict[str, Any], rounds: int) -> dict[str, float]:
    """Median process CPU seconds of each ``fn``, rounds interleaved so load drift hits all alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.process_time()
            fn()
            times[name].append(time.process_time() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def cpu_per_chunk(base_url: str, items: int, rounds: int) -> dict[str, float]:
    import instructor
    import openai

    n = len(token_pieces(invoice_json(items)))
    sg = schemagen.Client(base_url=base_url, model="m", api_key="bench", max_tokens=20000)
    oa = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0)
    patched = instructor.from_openai(oa, mode=instructor.Mode.TOOLS)
    text = invoice_text(items)
    messages = [{"role": "user", "content": text}]

    def ours() -> None:
        count = sum(1 for _ in sg.stream(Invoice, text))
        assert count > n / 10

    def theirs() -> None:
        last = None
        for last in patched.chat.completions.create_partial(  # noqa: B007
                model="m", response_model=Invoice, messages=messages, max_retries=0):  # type: ignore[arg-type]
            pass
        assert last is not None and len(last.items) == items

    results = {"chunks": float(n)}
    both = cpu_interleaved({"schemagen extract_stream": ours, "instructor create_partial": theirs}, rounds)
    results.update({name: value / n for name, value in both.items()})
    # the parse step alone: the same deltas, no HTTP
    pieces = token_pieces(invoice_json(items))

    def ours_parse() -> None:
        srun = StreamingRun(ExtractionRun(Invoice, "t", Settings(model="m")))
        srun.next_request()
        for piece in pieces:
            srun.feed(Delta("arguments", piece))

    def theirs_parse() -> None:  # instructor's own per-chunk step (what create_partial runs)
        from instructor import Partial

        for _ in Partial[Invoice].model_from_chunks(iter(pieces)):  # type: ignore[misc]
            pass

    def jiter_reparse() -> None:  # jiter's partial mode alone, no validation: O(buffer) per chunk
        from jiter import from_json

        buffer = b""
        for piece in pieces:
            buffer += piece.encode()
            from_json(buffer, partial_mode="trailing-strings")

    parse = cpu_interleaved({"parse only: schemagen": ours_parse, "parse only: jiter partial": jiter_reparse,
                             "parse only: instructor": theirs_parse}, rounds)
    results.update({name: value / n for name, value in parse.items()})
    return results


# ---------------------------------------------------------------- 3. streaming vs not


def overhead(base_url: str, items: int, rounds: int) -> dict[str, float]:
    sg = schemagen.Client(base_url=base_url, model="m", api_key="bench", max_tokens=20000)
    text = invoice_text(items)
    return cpu_interleaved({
        "extract (one JSON body)": lambda: sg.extract(Invoice, text),
        "extract (stream=True, no partials)": lambda: sg.extract(Invoice, text, stream=True),
        "extract_stream (partials)": lambda: sg.stream(Invoice, text).result(),
    }, rounds)


# ---------------------------------------------------------------- 2. first field vs whole, real server


def llama_first_field(url: str, lines: int = 20, tries: int = 1, free: bool = False,
                      temperature: float = 0.0, guard: bool = True) -> dict[str, float] | None:
    """One streamed extraction of a ``lines``-line invoice on a real llama.cpp server, in
    ``json_object`` mode: llama-cpp-python turns its ``schema`` into a grammar and keeps it
    while streaming (a forced tool call it streams without its grammar, and SmolLM2 loops)."""
    from schemagen.retry import RetryPolicy

    text = invoice_text(lines)  # varied lines: similar ones can look like a loop to the guard
    from schemagen.backends.openai_compat import OpenAIBackend

    # guard=False: a latency measurement, not an accuracy one; the grammar's exact item count
    # (min = max = 20) bounds the answer, so a repeated line can't run away.
    backend = OpenAIBackend(model="m", base_url=url, api_key="x", repetition_guard=guard)
    sg = schemagen.Client(backend=backend, mode="json_object",
                          temperature=temperature, seed=7, max_tokens=1400, retries=0,
                          retry_policy=RetryPolicy(max_retries=2, initial_wait=0.5, max_wait=2.0))
    best: dict[str, float] | None = None
    for _ in range(tries):
        start = time.perf_counter()
        first = first_token = None
        last = None
        partials = 0
        try:
            for partial in sg.stream(InvoiceFree if free else Invoice20, text):
                if partial.superseded:
                    continue
                partials += 1
                if first_token is None:
                    first_token = time.perf_counter() - start
                if first is None and partial.fields:
                    first = time.perf_counter() - start
                last = partial
        except schemagen.SchemagenError as exc:
            data = last.data if last is not None and isinstance(last.data, dict) else {}
            seen = len(data.get("items") or [])
            print(f"  (try failed after {time.perf_counter() - start:.1f} s: {type(exc).__name__}: "
                  f"{str(exc)[:160]}; first complete field at {first} s, first token at {first_token} s, "
                  f"{seen} items seen)")
            continue
        whole = time.perf_counter() - start
        if first is None or last is None or last.final is None:
            continue
        got = {"first field s": first, "whole object s": whole, "items": float(len(last.final.items)),
               "first token s": first_token or 0.0, "partials": float(partials)}
        if best is None or got["items"] > best["items"]:
            best = got
        if got["items"] >= lines:
            break
    return best


class _Skip(Exception):
    pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--llama-url", default=os.environ.get("SCHEMAGEN_TEST_LLAMA_URL"))
    parser.add_argument("--own-llama", action="store_true",
                        help="start a private llama.cpp server (a shared one cuts streams on other requests)")
    parser.add_argument("--no-llama", action="store_true")
    parser.add_argument("--only-llama", action="store_true", help="skip the loopback measurements")
    parser.add_argument("--llama-temperature", type=float, default=0.0)
    parser.add_argument("--llama-no-guard", action="store_true",
                        help="turn the repetition guard off (SmolLM2 repeats lines of a 20-line invoice)")
    parser.add_argument("--llama-free", action="store_true",
                        help="2.: no min/maxItems (SmolLM2-135M loops on a forced 20-item list)")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.items)
        return
    proc, base_url = start_server(args.items)
    try:
        if args.only_llama:
            raise _Skip
        per_chunk = cpu_per_chunk(base_url, args.items, args.rounds)
        chunks = int(per_chunk.pop("chunks"))
        print(f"1. CPU per chunk, {args.items}-item Invoice, {chunks} chunks (one token each), "
              f"median of {args.rounds}")
        for name, value in per_chunk.items():
            print(f"   {name:<28} {value * 1e6:8.1f} us/chunk")
        ratio = per_chunk["schemagen extract_stream"] / per_chunk["instructor create_partial"]
        parse = per_chunk["parse only: schemagen"] / per_chunk["parse only: instructor"]
        print(f"   schemagen / instructor: {ratio:.3f}x end to end (target <= 0.2x), {parse:.3f}x parse only")
        jiter = per_chunk["parse only: schemagen"] / per_chunk["parse only: jiter partial"]
        print(f"   schemagen parse (validation included) / jiter partial re-parse (none): {jiter:.2f}x")
        costs = overhead(base_url, args.items, args.rounds)
        print("3. CPU per extraction on the same answer")
        for name, value in costs.items():
            print(f"   {name:<36} {value * 1e3:8.1f} ms")
        same = costs["extract_stream (partials)"] / costs["extract (stream=True, no partials)"]
        body = costs["extract_stream (partials)"] / costs["extract (one JSON body)"]
        print(f"   extract_stream / extract on the same stream: {same:.2f}x (target <= 1.1x); "
              f"vs one JSON body: {body:.2f}x (SSE framing of {chunks} chunks included)")
    except _Skip:
        pass
    finally:
        proc.terminate()
    own = None
    if args.own_llama and not args.no_llama:
        from schemagen.models import smollm2_gguf_path as smollm2_gguf
        from schemagen.testing.llama import start_llama_server

        model = smollm2_gguf()
        if model is not None:
            own = start_llama_server(model)
            args.llama_url = own.base_url
    if args.no_llama or not args.llama_url:
        print("2. skipped: no llama.cpp server (--llama-url, --own-llama or SCHEMAGEN_TEST_LLAMA_URL)")
        return
    try:
        got = llama_first_field(args.llama_url, free=args.llama_free, temperature=args.llama_temperature,
                                guard=not args.llama_no_guard)
    finally:
        if own is not None:
            own.stop()
    if got is None:
        print("2. the llama.cpp server gave no complete invoice")
        return
    print(f"2. real llama.cpp server (SmolLM2-135M, json_object + schema grammar, streamed), 20-line "
          f"invoice ({int(got['items'])} items came back, {int(got['partials'])} partials): first complete "
          f"field {got['first field s']:.2f} s, whole object {got['whole object s']:.2f} s, "
          f"{got['first field s'] / got['whole object s']:.3f}x (target <= 0.2x); the first partial "
          f"(after the prompt) at {got['first token s']:.2f} s")


if __name__ == "__main__":
    main()
