"""``schemagen.testing``: a scripted OpenAI-compatible server for your own test suite.

Real integration tests belong against a real server (llama.cpp, vLLM). This kit exists for
what a real server can't be asked to do on cue: answer 429 with ``Retry-After`` on the
third request, fail with 500, hang until the client times out, reset the connection,
return malformed or truncated tool-call arguments, refuse, stop at ``length``, stream
tool-call deltas, or run a Batch API job whose lines partly fail. Standard library only.

    import openai
    from schemagen.testing import FaultServer, rate_limit, reset, tool_call

    with FaultServer() as srv:
        srv.enqueue(rate_limit(retry_after=1), reset(), tool_call({"name": "Ada"}))
        client = openai.OpenAI(base_url=srv.base_url, api_key="test", max_retries=0)
        ...
        assert srv.requests[0].headers["authorization"] == "Bearer test"

Which behaviour answers a model call (``/v1/chat/completions``, ``/v1/completions`` and each
line of a batch): the next one in the queue (``enqueue``); else ``faults(index)`` if that is
set and returns a behaviour; else ``default`` (by default :func:`from_schema`: a tool call
whose arguments are a minimal valid instance of the forced tool's parameters schema).
``index`` counts model calls from 0, in arrival order.

Split by concern: ``faults`` (the behaviours), ``server`` (the HTTP core and request
records), ``batch_api`` (Files and Batches APIs), ``streaming`` (an SSE server that streams
tool-call argument deltas) and ``llama`` (start a real llama.cpp server). Run it out of process with
``python -m schemagen.testing --port 8000 --latency 0.05``. See docs/testing.md.
"""

from schemagen.testing._wire import Call, Drop, Hang, Reply, openai_error
from schemagen.testing.faults import (
    Behaviour,
    completion_text,
    content,
    context_length_error,
    disconnect,
    from_schema,
    hang,
    malformed_arguments,
    rate_limit,
    refusal,
    reset,
    respond,
    status,
    tool_call,
    tool_calls,
    truncated,
)
from schemagen.testing.instances import example_for_schema
from schemagen.testing.llama import LlamaServer, free_port, start_llama_server
from schemagen.testing.server import FaultServer, RequestRecord
from schemagen.testing.streaming import StreamRecord, StreamScript, StreamServer

__all__ = [
    "Behaviour",
    "Call",
    "Drop",
    "FaultServer",
    "Hang",
    "LlamaServer",
    "Reply",
    "RequestRecord",
    "StreamRecord",
    "StreamScript",
    "StreamServer",
    "completion_text",
    "content",
    "context_length_error",
    "disconnect",
    "example_for_schema",
    "free_port",
    "from_schema",
    "hang",
    "malformed_arguments",
    "openai_error",
    "rate_limit",
    "refusal",
    "reset",
    "respond",
    "start_llama_server",
    "status",
    "tool_call",
    "tool_calls",
    "truncated",
]
