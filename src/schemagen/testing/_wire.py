"""What a behaviour decides (a reply, a hang, a dropped connection), the call it sees, and the
small JSON/HTTP helpers the server and the Batch API share."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"


@dataclass(frozen=True)
class Hang:
    seconds: float


@dataclass(frozen=True)
class Drop:
    abrupt: bool  # True: TCP RST (SO_LINGER 0); False: a clean FIN


@dataclass(frozen=True)
class Call:
    """One model call as a behaviour sees it."""

    endpoint: str  # "chat" or "completions"
    body: JSON
    index: int
    raw_size: int = 0

    @property
    def forced_tool(self) -> JSON | None:
        """The tool the request forces (or its only tool), as the ``function`` dict."""
        listed = self.body.get("tools") or []
        tools: list[JSON] = [t.get("function", t) for t in listed if isinstance(t, dict)]
        choice = self.body.get("tool_choice")
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name") or choice.get("name")
            for tool in tools:
                if tool.get("name") == name:
                    return tool
            return {"name": name} if name else None
        if len(tools) == 1 and choice != "none":
            return tools[0]
        return None



def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def now() -> int:
    return int(time.time())


_DEFAULT_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model.", "invalid_request_error", None),
    404: ("The model does not exist or you do not have access to it.", "invalid_request_error",
          "model_not_found"),
    408: ("Request timed out.", "server_error", None),
    409: ("Conflict.", "invalid_request_error", None),
    422: ("Unprocessable entity.", "invalid_request_error", None),
    429: ("Rate limit reached for requests. Please try again later.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error",
          None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The server is overloaded or not ready yet.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}

def openai_error(code: int, message: str | None = None, *, type: str | None = None,
                 error_code: str | None = None, param: str | None = None) -> JSON:
    default_message, default_type, default_code = _DEFAULT_ERRORS.get(
        code, (f"HTTP {code}", "server_error" if code >= 500 else "invalid_request_error", None))
    return {"error": {"message": message or default_message, "type": type or default_type,
                      "param": param, "code": error_code or default_code}}



def ok(obj: Any) -> Reply:
    return Reply(200, json_bytes(obj))


def error(code: int, message: str, *, param: str | None = None) -> Reply:
    return Reply(code, json_bytes(openai_error(code, message, param=param)))
