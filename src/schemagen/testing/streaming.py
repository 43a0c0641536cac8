"""A scripted loopback server that streams chat completions (SSE): tool-call argument deltas.

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
    """The tool-call arguments one model call streams, ``piece`` characters a chunk."""

    arguments: str
    piece: int = 4  # characters per chunk
    usage: bool = False  # send a usage chunk at the end (stream_options.include_usage)
    delay: float = 0.001  # between chunks, so a hang-up is noticed while streaming


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
        name = body["tool_choice"]["function"]["name"]
        limit = body.get("max_tokens") or 10**9
        parts = list(pieces(script.arguments, script.piece))
        finish = "tool_calls"
        if len(parts) > limit:
            parts, finish = parts[:limit], "length"
        record.planned = len(parts)
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("connection", "close")
        handler.end_headers()

        def send(obj: Any) -> None:
            handler.wfile.write(f"data: {json.dumps(obj)}\n\n".encode())
            handler.wfile.flush()

        base = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
        send({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": None},
                                   "finish_reason": None}]})
        for i, part in enumerate(parts):
            call: dict[str, Any] = {"index": 0, "function": {"arguments": part}}
            if i == 0:
                call.update(id="call_0", type="function")
                call["function"]["name"] = name
            send({**base, "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]})
            record.sent = i + 1
            time.sleep(script.delay)
        send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if script.usage:
            send({**base, "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": len(parts),
                                                   "total_tokens": 50 + len(parts)}})
        handler.wfile.write(b"data: [DONE]\n\n")
        handler.wfile.flush()


__all__ = ["StreamRecord", "StreamScript", "StreamServer", "pieces"]
