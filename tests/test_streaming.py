"""Streaming partials: the incremental parser, the sans-IO StreamingRun, and the drivers
over the scripted SSE server (vLLM/OpenAI delta shape, faults). Real servers:
tests/test_streaming_llama.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ValidationInfo, field_validator, model_validator

import schemagen
from schemagen.chunks import Delta, StreamAccumulator
from schemagen.engine.run import ExtractionRun, Settings
from schemagen.engine.stream import Partial, StreamingRun
from schemagen.errors import APIConnectionError, ExtractionError, TruncatedError
from schemagen.exchange import Completion, ToolCall, Usage
from schemagen.parse.partial import PartialJSON
from schemagen.parse.stream import TextCallReader, arguments_at
from schemagen.retry import RetryPolicy
from tests.stream_server import Script, StreamServer

FAST = RetryPolicy(max_retries=2, initial_wait=0.01, max_wait=0.02)


class Line(BaseModel):
    sku: str
    qty: int


class Invoice(BaseModel):
    number: str
    total: float
    paid: bool
    lines: list[Line]


INVOICE = {"number": "INV-7", "total": 125.5, "paid": True,
           "lines": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 30}]}


def tokens(text: str, size: int = 3) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


# ---------------------------------------------------------------- the incremental parser


@pytest.mark.parametrize("size", [1, 2, 5, 64])
def test_partial_json_reads_any_chunking_to_the_same_value(size: int) -> None:
    doc = {"s": 'a "q" \\ é \u2603 \n end', "n": -12.5e2, "t": True, "f": False, "z": None,
           "list": [1, [2, {}], [], {"k": "v"}], "obj": {"deep": {"er": [0]}}}
    text = json.dumps(doc, indent=1)
    parser = PartialJSON()
    for piece in tokens(text, size):
        parser.feed(piece)
    assert parser.done and parser.failed is None
    assert parser.value == doc


def test_strings_show_while_growing_numbers_only_when_complete() -> None:
    parser = PartialJSON()
    seen = []
    for piece in ['{"name": "Ac', 'me Co", "qty": 12', '5, "ok": tr', 'ue}']:
        if parser.feed(piece):
            seen.append(parser.snapshot())
    assert seen[0] == {"name": "Ac"}
    assert seen[1] == {"name": "Acme Co"}  # 12 may still become 125: not shown
    assert seen[2] == {"name": "Acme Co", "qty": 125}  # `tr` may be true or garbage: not shown
    assert seen[3] == {"name": "Acme Co", "qty": 125, "ok": True}


def test_an_escape_split_across_chunks_is_held_back() -> None:
    parser = PartialJSON()
    parser.feed('["caf\\u00')
    assert parser.snapshot() == ["caf"]
    parser.feed('e9 \\')
    assert parser.snapshot() == ["café "]
    parser.feed('"x"]')
    assert parser.value == ['café "x']


def test_snapshots_never_change_after_they_are_taken() -> None:
    text = json.dumps(INVOICE)
    parser = PartialJSON()
    kept: list[tuple[Any, str]] = []
    for piece in tokens(text, 1):
        if parser.feed(piece):
            snap = parser.snapshot()
            kept.append((snap, json.dumps(snap)))
    assert all(json.dumps(snap) == frozen for snap, frozen in kept)
    assert len(kept) > 20 and kept[-1][0] == INVOICE


def test_closed_values_are_reported_with_their_paths() -> None:
    parser = PartialJSON()
    for piece in tokens(json.dumps(INVOICE), 4):
        parser.feed(piece)
    paths = [path for path, _ in parser.closed]
    assert paths == [("number",), ("total",), ("paid",), ("lines", 0), ("lines", 1), ("lines",)]
    assert parser.closed[3][1] == {"sku": "A-1", "qty": 2}


def test_each_character_is_read_once_not_the_whole_buffer_per_chunk() -> None:
    # Parse work per chunk must not grow with the buffer (a re-parse would be ~8x at 8x the size).
    # Work is counted, not timed: lines the parser runs, per chunk.
    import sys

    import schemagen.parse.partial as partial_module

    source = partial_module.__file__

    def lines_per_chunk(n: int) -> float:
        text = json.dumps({"items": [{"sku": f"S{i}", "qty": i} for i in range(n)]})
        pieces = tokens(text, 3)
        count = 0

        def tracer(frame: Any, event: str, arg: Any) -> Any:
            nonlocal count
            if frame.f_code.co_filename != source:
                return None
            if event == "line":
                count += 1
            return tracer

        parser = PartialJSON()
        sys.settrace(tracer)
        try:
            for piece in pieces:
                parser.feed(piece)
        finally:
            sys.settrace(None)
        return count / len(pieces)

    assert lines_per_chunk(800) < lines_per_chunk(100) * 1.5


def test_malformed_text_stops_the_partials_without_raising() -> None:
    parser = PartialJSON()
    parser.feed('{"a": 1, ]')
    assert parser.failed and parser.snapshot() == {"a": 1}
    assert parser.feed('"b": 2}') is False


# ---------------------------------------------------------------- native markers in text


@pytest.mark.parametrize("text, expected", [
    ('<tool_call>\n{"name": "Invoice", "arguments": {"number": "X"}}\n</tool_call>', {"number": "X"}),
    ('[TOOL_CALLS][{"name": "Invoice", "arguments": {"number": "X"}}]', {"number": "X"}),
    ('[TOOL_CALLS]Invoice[ARGS]{"number": "X"}', {"number": "X"}),
    ('<|python_tag|>{"name": "Invoice", "parameters": {"number": "X"}}', {"number": "X"}),
    ('Sure! {"number": "X"}', {"number": "X"}),
])
def test_markers_are_recognised_across_chunk_boundaries(text: str, expected: dict[str, Any]) -> None:
    reader = TextCallReader("Invoice")
    for piece in tokens(text, 2):
        reader.feed(piece)
    assert reader.json is not None
    prefix = reader.prefix(reader.json.value)
    assert prefix is not None and arguments_at(reader.json.value, prefix) == expected


def test_envelope_arguments_are_not_shown_until_they_start() -> None:
    reader = TextCallReader("Invoice")
    reader.feed('<tool_call>{"name": "Invo')
    assert reader.json is not None and reader.prefix(reader.json.value) is None


QWEN3_XML = ("<tool_call>\n<function=Invoice>\n<parameter=number>\nINV-7\n</parameter>\n"
             "<parameter=total>\n125.5\n</parameter>\n<parameter=paid>\ntrue\n</parameter>\n"
             '<parameter=lines>\n[{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 30}]\n</parameter>\n'
             "</function>\n</tool_call>")
PYTHONIC = ("[Invoice(number='INV-7', total=125.5, paid=True, "
            "lines=[{'sku': 'A-1', 'qty': 2}, {'sku': \"B-2\", 'qty': 30}])]")


@pytest.mark.parametrize("text", [QWEN3_XML, PYTHONIC], ids=["qwen3_xml", "pythonic"])
@pytest.mark.parametrize("size", [1, 2, 3, 5, 8])
def test_native_non_json_calls_fill_in_as_they_arrive(text: str, size: int) -> None:
    reader = TextCallReader("Invoice", schema=Invoice.model_json_schema())
    seen: list[Any] = []
    for piece in tokens(text, size):
        reader.feed(piece)
        if reader.json is not None and reader.json.started:
            seen.append(reader.json.snapshot())
    assert reader.json is not None and reader.prefix(reader.json.value) == ()
    assert seen[-1] == INVOICE  # the same value the native parser reads from the whole text
    # the string showed while it grew; the number only once complete; fields one after another
    growing = {s["number"] for s in seen if s.get("number") not in (None, "INV-7")}
    assert (growing and all("INV-7".startswith(n) for n in growing)) or size > 3
    assert not any(s.get("total") not in (None, 125.5) for s in seen)
    firsts = [next(i for i, s in enumerate(seen) if key in s) for key in ("number", "total", "paid", "lines")]
    assert firsts == sorted(firsts) and firsts[0] < len(seen) // 2


@pytest.mark.parametrize("pieces, expected", [
    (["<tool_call><func", "tion=Invoice><param", "eter=number>\nIN", "V-7\n</param", "eter>"],
     {"number": "INV-7"}),
    (["<tool_call><function=Invoice><parameter=number>A\n", "\n</parameter>"], {"number": "A\n"}),
    (["[Inv", "oice(num", "ber = 'a\\", "'b\\u00e", "9', tot", "al=1", "2.5)]"],
     {"number": "a'bé", "total": 12.5}),
])
def test_chunk_boundaries_inside_native_markers_and_escapes(pieces: list[str],
                                                            expected: dict[str, Any]) -> None:
    reader = TextCallReader("Invoice", schema=Invoice.model_json_schema())
    shown = []
    for piece in pieces:
        reader.feed(piece)
        if reader.json is not None and reader.json.started:
            shown.append(reader.json.snapshot())
    assert shown[-1] == expected
    assert all(not isinstance(v, str) or ("<" not in v and "\\" not in v) for s in shown for v in s.values())


# ---------------------------------------------------------------- the sans-IO StreamingRun


class Checked(BaseModel):
    code: str
    count: int
    note: str = ""

    @field_validator("code")
    @classmethod
    def upper(cls, value: str, info: ValidationInfo) -> str:
        SEEN.append(bool(info.context and info.context.get("partial")))
        if value == "bad":
            raise ValueError("code must not be 'bad'")
        return value.upper()

    @model_validator(mode="after")
    def whole(self) -> Checked:
        if self.count < 0:  # reads every field: would crash on a half object
            raise ValueError("count must be >= 0")
        return self


SEEN: list[bool] = []


def tool_completion(arguments: str) -> Completion:
    return Completion(tool_calls=(ToolCall("Checked", arguments, "c0"),), finish_reason="tool_calls",
                      usage=Usage(10, 5, requests=1))


def feed_all(srun: StreamingRun[Any], arguments: str) -> list[Partial[Any]]:
    out: list[Partial[Any]] = []
    for piece in tokens(arguments, 2):
        out += srun.feed(Delta("arguments", piece))
    return out


def test_fields_are_validated_as_they_close_with_the_partial_flag() -> None:
    SEEN.clear()
    run: ExtractionRun[Checked] = ExtractionRun(Checked, "t", Settings(model="m"))
    srun = StreamingRun(run)
    srun.next_request()
    partials = feed_all(srun, '{"code": "ab", "count": 3}')
    assert partials[0].data == {} and partials[1].data == {"code": ""}
    assert next(p.fields for p in partials if p.fields) == {"code": "AB"}  # the field validator ran
    assert SEEN == [True]  # ...knowing the object is partial; the model validator did not run
    assert all(not p.done and p.attempt == 1 for p in partials)
    [final] = srun.receive(tool_completion('{"code": "ab", "count": 3}'))
    assert SEEN == [True, False]  # the final object is validated whole, as in extract
    assert final.done and final.final == Checked(code="AB", count=3) and final.fields["code"] == "AB"


def test_a_failing_field_is_reported_not_raised_and_a_reask_supersedes() -> None:
    run: ExtractionRun[Checked] = ExtractionRun(Checked, "t", Settings(model="m", reasks=1))
    srun = StreamingRun(run)
    srun.next_request()
    first = feed_all(srun, '{"code": "bad", "count": -1}')
    assert "code must not be 'bad'" in first[-1].errors["code"]
    assert srun.receive(tool_completion('{"code": "bad", "count": -1}')) == []  # a reask follows
    assert not run.done and not first[-1].superseded
    srun.next_request()
    assert first[-1].superseded
    second = feed_all(srun, '{"code": "ok", "count": 1}')
    [final] = srun.receive(tool_completion('{"code": "ok", "count": 1}'))
    assert second[0].attempt == 2 and final.final == Checked(code="OK", count=1) and not final.superseded
    assert run.result().attempts == 2 and run.usage.completion_tokens == 10


def test_items_close_validated_one_by_one() -> None:
    run: ExtractionRun[list[Line]] = ExtractionRun(list[Line], "t", Settings(model="m"))
    srun = StreamingRun(run, items="skip")
    srun.next_request()
    arguments = '{"items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": "many"}, {"sku": "C", "qty": 3}]}'
    got = []
    for piece in tokens(arguments, 4):
        got += [(item, len(srun.invalid)) for item in srun.feed(Delta("arguments", piece))]
    assert got == [(Line(sku="A", qty=1), 0), (Line(sku="C", qty=3), 1)]
    assert srun.invalid[0].index == 1 and "qty" in srun.invalid[0].errors
    completion = Completion(tool_calls=(ToolCall("LineList", arguments),), finish_reason="tool_calls")
    assert srun.receive(completion) == []  # every valid item was handed out already
    assert run.result().value == [Line(sku="A", qty=1), Line(sku="C", qty=3)]


def test_extract_iter_needs_a_list_target() -> None:
    with pytest.raises(schemagen.ConfigurationError, match="list target"):
        StreamingRun(ExtractionRun(Line, "t", Settings(model="m")), items="reask")


def test_accumulator_reports_deltas_it_puts_back_together() -> None:
    acc = StreamAccumulator("chat", guard=None)
    acc.add({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "c", "function": {"name": "F", "arguments": '{"a"'}}]}}]})
    acc.add({"choices": [{"index": 0, "delta": {"content": "hi"}}]})
    assert acc.take() == [Delta("arguments", '{"a"'), Delta("content", "hi")] and acc.take() == []


# ---------------------------------------------------------------- drivers over the scripted SSE server


@pytest.fixture
def streamer() -> Iterator[StreamServer]:
    with StreamServer() as srv:
        yield srv


def client(server: StreamServer, **kw: Any) -> schemagen.Client:
    options: dict[str, Any] = {"retry_policy": FAST, "timeout": 10.0, "model": "m", **kw}
    return schemagen.Client(base_url=server.base_url, api_key="x", **options)


def test_tool_call_deltas_stream_partials_then_the_same_value_as_extract(streamer: StreamServer) -> None:
    arguments = json.dumps(INVOICE)
    streamer.scripts += [Script(arguments, piece=3, usage=True, delay=0),
                         Script(arguments, piece=3, usage=True, delay=0)]
    sg = client(streamer)
    stream = sg.stream(Invoice, "text")
    partials = list(stream)
    assert streamer.requests[0].body["stream"] is True
    assert len(partials) > 12 and partials[-1].done and partials[-1].final == Invoice(**INVOICE)
    firsts = {key: next(i for i, p in enumerate(partials) if key in p.fields) for key in INVOICE}
    assert firsts["number"] < firsts["total"] < firsts["paid"] < firsts["lines"] < len(partials) - 1
    lines_seen = [len(p.data.get("lines", [])) for p in partials]
    assert lines_seen.index(2) < len(partials) - 1  # nested items filled in before the end
    # the same value, usage and trace shape as a plain extract (with stream=True)
    plain = sg.extract_result(Invoice, "text", stream=True)
    assert stream.result() == plain.value
    assert stream.extraction.usage == plain.usage and len(stream.extraction.trace.attempts) == 1


async def test_async_twin_agrees(streamer: StreamServer) -> None:
    arguments = json.dumps(INVOICE)
    streamer.scripts.append(Script(arguments, piece=5, delay=0))
    stream = client(streamer).astream(Invoice, "text")
    partials = [p async for p in stream]
    assert partials[-1].final == Invoice(**INVOICE) and await stream.aresult() == Invoice(**INVOICE)
    assert sum("total" in p.fields for p in partials) >= 1


def test_a_dropped_connection_is_retried_from_scratch(streamer: StreamServer) -> None:
    arguments = json.dumps(INVOICE)
    streamer.scripts += [Script(arguments, drop_after=10, delay=0), Script(arguments, delay=0)]
    stream = client(streamer).stream(Invoice, "text")
    partials = list(stream)
    assert len(streamer.requests) == 2
    broken = [p for p in partials if p.superseded]
    assert broken and all(p.attempt == 1 for p in partials)  # same attempt, a transport retry
    assert partials[-1].final == Invoice(**INVOICE) and not partials[-1].superseded
    assert len(stream.extraction.trace.attempts[0].retries) == 1


def test_a_dropped_connection_past_the_retries_raises_with_the_partial(streamer: StreamServer) -> None:
    arguments = json.dumps(INVOICE)
    streamer.scripts += [Script(arguments, drop_after=12, delay=0) for _ in range(3)]
    stream = client(streamer).stream(Invoice, "text")
    with pytest.raises(APIConnectionError) as info:
        list(stream)
    assert info.value.received is not None and info.value.received.data["number"] == "INV-7"
    assert info.value.trace is not None and info.value.trace.attempts[0].outcome == "transport"


def test_a_server_ignoring_stream_true_still_works(streamer: StreamServer) -> None:
    streamer.scripts.append(Script(json.dumps(INVOICE), json_body=True))
    partials = list(client(streamer).stream(Invoice, "text"))
    assert partials[-1].final == Invoice(**INVOICE)
    assert partials[-1].fields["number"] == "INV-7"


def test_a_stream_without_a_tool_call_gives_the_typed_error_of_extract(streamer: StreamServer) -> None:
    streamer.scripts += [Script("I cannot find an invoice.", as_text=True, delay=0) for _ in range(2)]
    with pytest.raises(ExtractionError, match="no `Invoice` tool call") as info:
        # mode="tools": under the default "auto" a server that ignores the tool is stepped down
        list(client(streamer, retries=1, mode="tools").stream(Invoice, "text"))
    assert len(info.value.attempts) == 2


def test_bounds_apply_while_streaming(streamer: StreamServer) -> None:
    streamer.scripts.append(Script(json.dumps(INVOICE), piece=2, delay=0))
    with pytest.raises(TruncatedError) as info:
        list(client(streamer).stream(Invoice, "text", max_tokens=15))
    assert streamer.requests[0].sent == 15
    assert info.value.received is not None and info.value.received.data["number"] == "INV-7"


def test_the_repetition_guard_stops_a_looping_stream(streamer: StreamServer) -> None:
    class Notes(BaseModel):
        title: str
        items: list[str]

    loop = '{"title": "Standup", "items": ["Ann fixed the login bug", ' + '"Bob is blocked", ' * 400
    streamer.scripts.append(Script(loop, delay=0.001))
    stream = client(streamer).stream(Notes, "standup notes", max_tokens=2000)
    with pytest.raises(TruncatedError) as info:
        for _ in stream:
            pass
    assert info.value.reason == "repetition"
    streamer.requests[0].done.wait(5)
    assert streamer.requests[0].disconnected  # closed early, not read to the end
    received = info.value.received
    assert received is not None and received.data["title"] == "Standup" and len(received.data["items"]) > 3


def test_raw_mode_streams_completions_text_through_the_native_markers(streamer: StreamServer) -> None:
    text = '<tool_call>\n{"name": "Invoice", "arguments": ' + json.dumps(INVOICE) + "}\n</tool_call>"
    streamer.scripts.append(Script(text, piece=4, delay=0))
    template = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}<|assistant|>"
    stream = client(streamer, mode="raw", template=template).stream(Invoice, "text")
    partials = list(stream)
    assert "prompt" in streamer.requests[0].body and streamer.requests[0].body["stream"] is True
    assert partials[0].data == {} and "number" in partials[3].data
    assert partials[-1].final == Invoice(**INVOICE)
    notes = " ".join(stream.extraction.trace.attempts[0].notes)
    assert "hermes (1 call)" in notes  # the value itself came through the native parser, as in extract


@pytest.mark.parametrize("text, parser", [(QWEN3_XML, "qwen3_xml"), (PYTHONIC, "pythonic")],
                         ids=["qwen3_xml", "pythonic"])
def test_raw_mode_non_json_formats_stream_partials(streamer: StreamServer, text: str, parser: str) -> None:
    streamer.scripts.append(Script(text, piece=3, delay=0))
    template = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}<|assistant|>"
    stream = client(streamer, mode="raw", template=template).stream(Invoice, "text")
    partials = list(stream)
    assert partials[-1].final == Invoice(**INVOICE)
    growing = [p.data.get("number") for p in partials if "number" not in p.fields]
    # the string showed before its end tag or quote arrived
    assert any(n and n != "INV-7" and "INV-7".startswith(n) for n in growing)
    firsts = [next(i for i, p in enumerate(partials) if key in p.fields) for key in ("number", "paid")]
    assert firsts[0] < firsts[1] < len(partials) - 1  # fields validated as they closed, not at the end
    assert f"{parser} (1 call)" in " ".join(stream.extraction.trace.attempts[0].notes)


def test_extract_iter_yields_items_as_they_close_and_skips_invalid(streamer: StreamServer) -> None:
    items = [{"sku": "A", "qty": 1}, {"sku": "B", "qty": "lots"}, {"sku": "C", "qty": 3}]
    streamer.scripts.append(Script(json.dumps({"items": items}), piece=3, delay=0.005))
    stream = client(streamer).extract_iter(list[Line], "text", on_invalid="skip")
    got = []
    for item in stream:
        got.append((item, streamer.requests[0].sent))
    assert [g[0] for g in got] == [Line(sku="A", qty=1), Line(sku="C", qty=3)]
    assert got[0][1] < streamer.requests[0].planned  # the first item came before the stream ended
    assert [bad.index for bad in stream.invalid] == [1]
    assert stream.result() == [Line(sku="A", qty=1), Line(sku="C", qty=3)]
    assert len(streamer.requests) == 1  # skipped, not reasked


async def test_aextract_iter_yields_items(streamer: StreamServer) -> None:
    items = [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}]
    streamer.scripts.append(Script(json.dumps({"items": items}), delay=0))
    got = [item async for item in client(streamer).aextract_iter(Line, "text")]  # Item = list[Item]
    assert got == [Line(sku="A", qty=1), Line(sku="B", qty=2)]


def test_extract_iter_reask_does_not_repeat_items(streamer: StreamServer) -> None:
    bad = [{"sku": "A", "qty": 1}, {"sku": "B", "qty": "lots"}]
    good = [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}]
    streamer.scripts += [Script(json.dumps({"items": bad}), delay=0),
                         Script(json.dumps({"items": good}), delay=0)]
    stream = client(streamer).extract_iter(list[Line], "text")
    assert list(stream) == [Line(sku="A", qty=1), Line(sku="B", qty=2)]
    assert len(streamer.requests) == 2 and stream.invalid[0].attempt == 1


def test_cli_stream_shows_the_live_view_and_prints_the_final_json(
    streamer: StreamServer, tmp_path: Any,
) -> None:
    from typer.testing import CliRunner

    from schemagen.cli.main import app

    (tmp_path / "schema.py").write_text(
        "from pydantic import BaseModel\n\n"
        "class Line(BaseModel):\n    sku: str\n    qty: int\n\n"
        "class Invoice(BaseModel):\n    number: str\n    total: float\n    paid: bool\n"
        "    lines: list[Line]\n")
    (tmp_path / "in.txt").write_text("invoice text")
    streamer.scripts.append(Script(json.dumps(INVOICE), piece=3, delay=0))
    result = CliRunner().invoke(app, [
        "extract", str(tmp_path / "in.txt"), "--schema", f"{tmp_path / 'schema.py'}:Invoice",
        "--base-url", streamer.base_url, "--model", "m", "--stream",
    ])
    assert result.exit_code == 0, result.output
    assert streamer.requests[0].body["stream"] is True
    assert "attempt 1 · done" in result.stderr and "INV-7" in result.stderr
    assert json.loads(result.stdout) == INVOICE


def test_a_json_schema_target_streams_and_is_validated_whole(streamer: StreamServer) -> None:
    schema = {"title": "Invoice", "type": "object", "required": ["number", "total"],
              "properties": {"number": {"type": "string"}, "total": {"type": "number", "minimum": 0}}}
    streamer.scripts.append(Script(json.dumps({"number": "INV-7", "total": 125.5}), piece=3, delay=0))
    partials = list(client(streamer, mode="tools").stream(schema, "text"))
    assert any(p.data.get("number") == "INV" for p in partials)  # the string shows as it grows
    assert partials[-1].final == {"number": "INV-7", "total": 125.5}
    # a value that breaks the schema is reasked, never returned
    streamer.scripts += [Script(json.dumps({"number": "X", "total": -1}), delay=0) for _ in range(2)]
    with pytest.raises(ExtractionError, match="minimum"):
        list(client(streamer, mode="tools", retries=1).stream(schema, "text"))


def test_extract_iter_refuses_a_json_schema_target(streamer: StreamServer) -> None:
    schema = {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}}}}
    with pytest.raises(schemagen.ConfigurationError, match="Pydantic list target"):
        list(schemagen.extract_iter(schema, "text", base_url=streamer.base_url, api_key="x", model="m"))
