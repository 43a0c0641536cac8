"""A scripted loopback server that streams chat completions (SSE): tool-call argument deltas,
for the repetition guard and for streaming partials (the vLLM/OpenAI delta shape,
/v1/completions text, dropped connections, and a server that ignores ``stream=True``).

Each model call streams the next scripted tool-call arguments, one small piece per
chunk (about a token, as llama.cpp and OpenAI do), and honours ``max_tokens`` by
stopping with ``finish_reason="length"``. It records how many chunks it managed to
send before the client hung up, so a test can see the stream was closed early.
Standard library only.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class StreamScript:
    """What one model call streams: the tool-call arguments (or text), ``piece`` characters a chunk."""

    arguments: str
    piece: int = 4  # characters per chunk
    usage: bool = False  # send a usage chunk at the end (stream_options.include_usage)
    delay: float = 0.001  # between chunks, so a hang-up is noticed while streaming
    chunks: list[str] | None = None  # the exact pieces to send (else ``arguments`` cut by ``piece``)
    as_text: bool = False  # stream ``arguments`` as content (chat) / text (/v1/completions), no tool call
    drop_after: int | None = None  # hang up abruptly after this many pieces (no finish, no [DONE])
    json_body: bool = False  # ignore stream=True: answer with one JSON body, as some servers do


@dataclass
class StreamRecord:
    """One streamed request: chunks planned within ``max_tokens``, sent, and whether the client
    hung up early (``done`` is set when the handler returns)."""

    body: dict[str, Any]
    planned: int = 0  # chunks the script would send within max_tokens
    sent: int = 0
    disconnected: bool = False
    done: threading.Event = field(default_factory=threading.Event)


def pieces(text: str, size: int) -> Iterator[str]:
    """``text`` in chunks of ``size`` characters."""
    for start in range(0, len(text), size):
        yield text[start:start + size]


class StreamServer:
    """Streams the next queued :class:`StreamScript` (``scripts``) for each ``POST``; records each
    request in ``requests``. Use as a context manager; ``base_url`` ends in ``/v1``."""

    def __init__(self) -> None:
        self.scripts: list[StreamScript] = []
        self.requests: list[StreamRecord] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                record = StreamRecord(body)
                server.requests.append(record)
                try:
                    server.stream(self, body, record)
                except (BrokenPipeError, ConnectionResetError):
                    record.disconnected = True
                finally:
                    record.done.set()
                    self.close_connection = True

        self.httpd: ThreadingHTTPServer = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread: threading.Thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> StreamServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def stream(self, handler: BaseHTTPRequestHandler, body: dict[str, Any], record: StreamRecord) -> None:
        script = self.scripts.pop(0)
        completions = "prompt" in body
        name = (body.get("tool_choice") or {}).get("function", {}).get("name", "")
        limit = body.get("max_tokens") or 10**9
        parts = script.chunks if script.chunks is not None else list(pieces(script.arguments, script.piece))
        as_text = script.as_text or completions
        finish = "stop" if as_text else "tool_calls"
        if len(parts) > limit:
            parts, finish = parts[:limit], "length"
        record.planned = len(parts)
        if script.json_body:
            self._json_body(handler, body, script, name, completions, as_text)
            return
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("connection", "close")
        handler.send_header("transfer-encoding", "chunked")  # as llama.cpp and vLLM: a hang-up is visible
        handler.end_headers()

        def write(data: bytes) -> None:
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            handler.wfile.flush()

        def send(obj: Any) -> None:
            write(f"data: {json.dumps(obj)}\n\n".encode())

        base = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
        send({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": None},
                                   "finish_reason": None}]})
        for i, part in enumerate(parts):
            if script.drop_after is not None and i >= script.drop_after:
                handler.wfile.write(b"40\r\ndata: {\"choi")  # a chunk cut in half, then the hang-up
                handler.wfile.flush()
                handler.connection.shutdown(2)
                return
            if completions:
                send({**base, "object": "text_completion", "choices": [
                    {"index": 0, "text": part, "finish_reason": None}]})
            elif as_text:
                send({**base, "choices": [{"index": 0, "delta": {"content": part}, "finish_reason": None}]})
            else:
                call: dict[str, Any] = {"index": 0, "function": {"arguments": part}}
                if i == 0:
                    call.update(id="call_0", type="function")
                    call["function"]["name"] = name
                delta = {"tool_calls": [call]}
                send({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            record.sent = i + 1
            if script.delay:
                time.sleep(script.delay)
        end = {"index": 0, "text": "", "finish_reason": finish} if completions else \
            {"index": 0, "delta": {}, "finish_reason": finish}
        send({**base, "choices": [end]})
        if script.usage:
            send({**base, "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": len(parts),
                                                   "total_tokens": 50 + len(parts)}})
        write(b"data: [DONE]\n\n")
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()

    def _json_body(self, handler: BaseHTTPRequestHandler, body: dict[str, Any], script: StreamScript,
                   name: str, completions: bool, as_text: bool) -> None:
        text = "".join(script.chunks) if script.chunks is not None else script.arguments
        if completions:
            choice: dict[str, Any] = {"index": 0, "text": text, "finish_reason": "stop"}
        elif as_text:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        else:
            call = {"id": "call_0", "type": "function", "function": {"name": name, "arguments": text}}
            choice = {"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                      "finish_reason": "tool_calls"}
        usage = {"prompt_tokens": 50, "completion_tokens": 9, "total_tokens": 59}
        data = json.dumps({"id": "cmpl-j", "object": "chat.completion", "model": body["model"],
                           "choices": [choice], "usage": usage}).encode()
        handler.send_response(200)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()


__all__ = ["StreamRecord", "StreamScript", "StreamServer", "pieces"]
