"""Secrets never leave: every configured secret, and secret shapes nobody registered.

The property test generates secrets of many shapes, configures a client with them (API
key, secret headers, a secret query parameter, URL userinfo), has the scripted server
echo them back in an error, and checks that none survives in ``str(e)``, ``repr(e)``,
error attributes, the formatted traceback, the trace, the debug printout or any repr.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import schemagen
from schemagen import RequestRejectedError, RetryPolicy
from schemagen.redact import REDACTED, redact_text, register_secret
from tests.fault_server import FaultServer, status, tool_call

NO_RETRY = RetryPolicy(max_retries=0)
SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


def _token(prefix: str = "") -> st.SearchStrategy[str]:
    # Random-looking on purpose (a digit), as every real key is; >= 8 characters.
    body = st.text(SAFE, min_size=8, max_size=40).map(lambda s: s + "7")
    return body.map(lambda s: prefix + s)


SECRETS = st.one_of(
    _token("sk-"), _token("sk-proj-"), _token(),
    st.tuples(_token(), _token(), _token()).map(lambda t: "eyJ" + ".eyJ".join(t[:2]) + "." + t[2]),
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=SECRETS, header=SECRETS, query=SECRETS, password=SECRETS, header_name=st.sampled_from(
    ["x-api-key", "api-key", "Ocp-Apim-Subscription-Key", "X-Auth-Token", "x-goog-api-key", "Cookie"]))
def test_no_configured_secret_survives(server: FaultServer, key: str, header: str, query: str, password: str,
                                       header_name: str, capsys: pytest.CaptureFixture[str]) -> None:
    secrets = [key, header, query, password]
    echo = (f"Invalid request. We received Authorization: Bearer {key}, {header_name}: {header}, "
            f"the URL http://user:{password}@127.0.0.1/v1/chat?sig={query}, and the Bearer of bad news.")
    base = server.base_url.replace("http://", f"http://user:{password}@")
    sg = schemagen.Client(base_url=base, api_key=key, model="m", default_headers={header_name: header},
                          default_query={"sig": query}, retry_policy=NO_RETRY, debug=True, timeout=5.0)
    server.enqueue(status(400, {"error": {"message": echo, "type": "invalid_request_error"}}))
    with pytest.raises(RequestRejectedError) as info:
        sg.extract(Person, "x")
    err = info.value
    shown = [str(err), repr(err), "".join(traceback.format_exception(err)), repr(err.body), repr(sg),
             repr(sg.backend), str(err.trace.to_dict() if err.trace else "")]
    # The debug printout of a completion that echoes the secrets.
    server.enqueue(tool_call({"name": echo, "age": 1}))
    sg.extract(Person, "y")
    shown.append(capsys.readouterr().err)
    for text in shown:
        for secret in secrets:
            assert secret not in text
    assert "the Bearer of bad news" in str(err)  # prose is left alone
    assert REDACTED in str(err)
    # The async path and its derived client scrub the same way.
    server.enqueue(status(400, {"error": {"message": echo}}))
    with pytest.raises(RequestRejectedError) as ainfo:
        asyncio.run(sg.aextract(Person, "x"))
    text = "".join(traceback.format_exception(ainfo.value))
    assert not any(secret in text for secret in secrets)


def test_chained_sdk_exception_is_replaced_by_a_redacted_one(server: FaultServer) -> None:
    key = "sk-chain-0123456789abcdef"
    sg = schemagen.Client(base_url=server.base_url, api_key=key, model="m", retry_policy=NO_RETRY)
    server.enqueue(status(401, {"error": {"message": f"Incorrect API key provided: {key}"}}))
    with pytest.raises(RequestRejectedError) as info:
        sg.extract(Person, "x")
    cause = info.value.__cause__
    assert cause is not None and type(cause).__name__ == "RedactedError"
    assert "openai.AuthenticationError" in str(cause)
    assert key not in str(cause)
    chain: list[str] = []  # nothing reachable from the error is an openai exception
    todo: list[BaseException | None] = [info.value]
    while todo:
        seen = todo.pop()
        if seen is not None:
            chain.append(type(seen).__module__)
            todo += [seen.__cause__, seen.__context__]
    assert chain and not any(m.startswith("openai") for m in chain)


@pytest.mark.parametrize("text", [
    "the Bearer of bad news", "Basic instinct", "a Token gesture", "use sk-learn-tutorials today",
    "tokens: 12, max_tokens=100", "key points", "EMPTY",
])
def test_prose_is_not_redacted(text: str) -> None:
    register_secret("EMPTY")  # under 8 characters: a placeholder, not a key
    assert redact_text(text) == text


@pytest.mark.parametrize(("text", "gone"), [
    ("Authorization: Bearer abc123DEF456ghi", "abc123DEF456ghi"),
    ("basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("key sk-live-0a1b2c3d4e5f6g7h", "sk-live-0a1b2c3d4e5f6g7h"),
    ("jwt eyJhbGciOi.eyJzdWIiOiIx.c2lnbmF0dXJl", "eyJhbGciOi.eyJzdWIiOiIx.c2lnbmF0dXJl"),
    ("GET https://api.example.com/v1?api-key=abcd1234efgh&x=1", "abcd1234efgh"),
    ("https://bob:hunter2hunter2@proxy.local:8080/v1", "hunter2hunter2"),
])
def test_secret_shapes_nobody_registered(text: str, gone: str) -> None:
    out = redact_text(text)
    assert gone not in out and REDACTED in out
