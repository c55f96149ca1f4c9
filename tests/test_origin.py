"""Origin checks (bocadillo_ws/_origin.py): the matcher, and its three uses in process.

The matcher is plain Python shared by both backends; the view option, the
helper and the middleware run once per backend (``impl``) through
Starlette's ``TestClient`` (base URL ``http://testserver``: a same-origin
page is ``http://testserver``). Refusals are checked both ways a server can
do them: a 403 denial response (TestClient has the ``websocket.http.response``
extension) and, with the extension hidden, a close before accept.
Through real servers: tests/test_interop.py.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi import WebSocket as FastAPIWebSocket
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette 1.x prefers httpx2 for its TestClient
    from starlette.testclient import TestClient, WebSocketDenialResponse

import bocadillo_ws
from bocadillo_ws import OriginMiddleware, OriginPolicy, WebSocketDisconnect, refuse_cross_origin, websocket_view
from bocadillo_ws._origin import Origin, parse_origin
from bocadillo_ws._view import origin_policy, view_endpoint

SAME = "http://testserver"  # the origin of TestClient's pages

MALFORMED = [
    "",
    " ",
    "null",
    "NULL",
    "example.com",
    "//example.com",
    "https://",
    "https:/example.com",
    "https://example.com/",
    "https://example.com/path",
    "https://example.com?x=1",
    "https://example.com#x",
    "https://user@example.com",
    "https://user:pw@example.com",
    "https://example.com:",
    "https://example.com:99999",
    "https://example.com:-1",
    "https://exa mple.com",
    " https://example.com",
    "https://example.com ",
    "https://example.com\r\n",
    "https://exämple.com",
    "https://example.com https://example.org",
    "https://example.com,https://example.com",
    "https://[::1",
    "https://::1",
    "https://*.example.com",
    "https://a..example.com",
    "https://.example.com",
]


# --------------------------------------------------------------------------- parsing


def test_parse_normalises_case_and_default_ports() -> None:
    assert parse_origin("HTTPS://Example.COM") == Origin("https", "example.com", 443)
    assert (
        parse_origin("http://example.com:80") == parse_origin("http://example.com") == Origin("http", "example.com", 80)
    )
    assert parse_origin("http://example.com:8080") == Origin("http", "example.com", 8080)
    assert parse_origin("http://[::1]:8000") == Origin("http", "[::1]", 8000)
    assert parse_origin("http://[::1]") == Origin("http", "[::1]", 80)
    assert parse_origin("chrome-extension://abcdef") == Origin("chrome-extension", "abcdef", None)


@pytest.mark.parametrize("value", MALFORMED)
def test_malformed_origins_do_not_parse(value: str) -> None:
    assert parse_origin(value) is None


# --------------------------------------------------------------------------- exact origins


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://example.com", True),
        ("https://example.com:443", True),
        ("HTTPS://EXAMPLE.COM", True),
        ("https://Example.Com:443", True),
        ("http://example.com", False),  # another scheme
        ("wss://example.com", False),
        ("https://example.com:8443", False),  # another port
        ("https://www.example.com", False),  # a subdomain is another origin
        ("https://example.com.evil.com", False),
        ("https://evilexample.com", False),
        ("http://localhost:8000", True),
        ("http://localhost:8001", False),
        ("http://[::1]:8000", True),
        ("http://[::1]:8001", False),
    ],
)
def test_exact_origins(origin: str, allowed: bool) -> None:
    policy = OriginPolicy(["https://example.com", "http://localhost:8000", "http://[::1]:8000"])
    assert policy.allows(origin) is allowed


def test_exact_pattern_with_a_default_port_matches_without_it() -> None:
    assert OriginPolicy(["http://example.com:80"]).allows("http://example.com")
    assert OriginPolicy(["HTTP://EXAMPLE.com"]).allows("http://example.com:80")


# --------------------------------------------------------------------------- wildcard subdomains


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://a.example.com", True),
        ("https://a.b.example.com", True),  # any depth
        ("https://A.Example.COM", True),
        ("https://a.example.com:443", True),
        ("https://example.com", False),  # the domain itself is not a subdomain
        ("https://example.com.evil.com", False),
        ("https://a.example.com.evil.com", False),
        ("https://evilexample.com", False),
        ("https://a.evilexample.com", False),
        ("http://a.example.com", False),  # another scheme
        ("https://a.example.com:8443", False),  # another port
        ("https://*.example.com", False),  # a literal star is not an origin
    ],
)
def test_wildcard_subdomains(origin: str, allowed: bool) -> None:
    assert OriginPolicy(["https://*.example.com"]).allows(origin) is allowed


def test_wildcard_with_a_port() -> None:
    policy = OriginPolicy(["http://*.dev.test:8000"])
    assert policy.allows("http://app.dev.test:8000")
    assert not policy.allows("http://app.dev.test")
    assert not policy.allows("http://app.dev.test:8001")


@given(st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){0,3}", fullmatch=True))
def test_wildcard_never_matches_a_lookalike(label: str) -> None:
    policy = OriginPolicy(["https://*.example.com"])
    assert policy.allows(f"https://{label}.example.com")
    for lookalike in (f"https://example.com.{label}", f"https://{label}example.com", f"http://{label}.example.com"):
        assert not policy.allows(lookalike)


# --------------------------------------------------------------------------- same origin


@pytest.mark.parametrize(
    ("origin", "host", "scheme", "allowed"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", "ws", True),
        ("https://chat.example.com", "chat.example.com", "wss", True),
        ("https://chat.example.com", "chat.example.com:443", "wss", True),  # default ports normalised
        ("https://chat.example.com:443", "chat.example.com", "wss", True),
        ("http://chat.example.com", "chat.example.com:80", "ws", True),
        ("HTTP://Chat.Example.COM", "chat.example.com", "WS", True),
        ("http://[::1]:8000", "[::1]:8000", "ws", True),  # IPv6
        ("http://[::1]:8000", "[::1]:8001", "ws", False),
        ("http://chat.example.com", "chat.example.com", "wss", False),  # an http page, a wss socket
        ("https://chat.example.com", "chat.example.com", "ws", False),
        ("http://127.0.0.1:8001", "127.0.0.1:8000", "ws", False),
        ("http://localhost:8000", "127.0.0.1:8000", "ws", False),  # same machine, another origin
        ("http://evil.example", "127.0.0.1:8000", "ws", False),
        ("http://chat.example.com", None, "ws", False),  # no Host: nothing to compare with
        ("http://chat.example.com", "chat.example.com/x", "ws", False),  # malformed Host
        ("null", "chat.example.com", "ws", False),
    ],
)
def test_same_origin(origin: str, host: str | None, scheme: str, allowed: bool) -> None:
    assert OriginPolicy(same_origin=True).allows(origin, host=host, scheme=scheme) is allowed


def test_same_origin_and_a_list_add_up() -> None:
    policy = OriginPolicy(["https://admin.example.com"], same_origin=True)
    assert policy.allows("https://chat.example.com", host="chat.example.com", scheme="wss")
    assert policy.allows("https://admin.example.com", host="chat.example.com", scheme="wss")
    assert not policy.allows("https://other.example.com", host="chat.example.com", scheme="wss")


# --------------------------------------------------------------------------- missing, null, malformed


def test_missing_origin_is_allowed_by_default_and_can_be_refused() -> None:
    assert OriginPolicy(["https://example.com"]).allows(None)
    assert OriginPolicy(same_origin=True).allows(None, host="h", scheme="ws")
    assert not OriginPolicy(["https://example.com"], allow_missing_origin=False).allows(None)
    assert not OriginPolicy(same_origin=True, allow_missing_origin=False).allows(None, host="h", scheme="ws")


@pytest.mark.parametrize("value", MALFORMED)
def test_null_and_malformed_origins_are_refused(value: str) -> None:
    policy = OriginPolicy(["https://example.com", "https://*.example.com"], same_origin=True)
    assert not policy.allows(value, host="example.com", scheme="wss")


def test_an_empty_policy_refuses_every_browser() -> None:
    policy = OriginPolicy()
    assert not policy.allows("http://example.com", host="example.com")
    assert policy.allows(None)


@pytest.mark.parametrize(
    "pattern",
    [
        "null",
        "NULL",
        "*",
        "example.com",
        "*.example.com",
        "https://example.com/",
        "https://a.*.example.com",
        "https://*.*.example.com",
        "https://*example.com",
        "https://*.[::1]",
        "https://*.com",  # every .com site
        "https://*.localhost",
        "",
    ],
)
def test_bad_patterns_fail_at_construction(pattern: str) -> None:
    with pytest.raises(ValueError, match="allowed origin"):
        OriginPolicy([pattern])


def test_a_lone_string_is_not_a_list_of_origins() -> None:
    with pytest.raises(TypeError, match="not a str"):
        OriginPolicy("https://example.com")
    with pytest.raises(TypeError, match="expected a str"):
        OriginPolicy([b"https://example.com"])  # type: ignore[list-item]


@given(st.text(max_size=60))
def test_any_header_value_gives_a_bool(value: str) -> None:
    result = OriginPolicy(["https://*.example.com"], same_origin=True).allows(value, host=value, scheme="ws")
    assert isinstance(result, bool)
    if result:  # only a well-formed origin is ever allowed
        assert parse_origin(value) is not None


# --------------------------------------------------------------------------- scopes


def scope(*headers: tuple[bytes, bytes], scheme: str = "ws") -> dict[str, Any]:
    return {"type": "websocket", "scheme": scheme, "headers": list(headers)}


def test_allows_scope_reads_origin_host_and_scheme() -> None:
    policy = OriginPolicy(same_origin=True)
    assert policy.allows_scope(scope((b"host", b"h:8000"), (b"origin", b"http://h:8000")))
    assert not policy.allows_scope(scope((b"host", b"h:8000"), (b"origin", b"http://h:8000"), scheme="wss"))
    assert policy.allows_scope(scope((b"host", b"h")))  # no Origin
    assert not policy.allows_scope(scope((b"origin", b"http://h")))  # no Host


def test_two_origin_or_host_headers_are_refused() -> None:
    policy = OriginPolicy(["http://h"], same_origin=True)
    assert not policy.allows_scope(scope((b"host", b"h"), (b"origin", b"http://h"), (b"origin", b"http://h")))
    assert not policy.allows_scope(scope((b"host", b"h"), (b"host", b"evil"), (b"origin", b"http://evil")))


# --------------------------------------------------------------------------- the three uses, in process


def hide_denial_extension(app: Any) -> Any:
    """The app as a server without ``websocket.http.response`` sees it (Daphne): refusals are a close."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope = {
            **scope,
            "extensions": {k: v for k, v in scope.get("extensions", {}).items() if k != "websocket.http.response"},
        }
        await app(scope, receive, send)

    return wrapped


def assert_accepted(client: TestClient, path: str, origin: str | None) -> None:
    headers = {} if origin is None else {"origin": origin}
    with client.websocket_connect(path, headers=headers) as session:
        session.send_text("hi")
        assert session.receive_text() == "hi"


def assert_refused(client: TestClient, path: str, origin: str | None, *, denial: bool = True) -> None:
    """The handshake fails: a 403 response, or (no extension) a close before accept (a 403 on a real server)."""
    headers = {} if origin is None else {"origin": origin}
    if denial:
        with pytest.raises(WebSocketDenialResponse) as refused:
            with client.websocket_connect(path, headers=headers):
                pass  # pragma: no cover
        assert refused.value.status_code == 403
        assert refused.value.content == b"Origin not allowed"
    else:
        with pytest.raises(WebSocketDisconnect) as closed:
            with client.websocket_connect(path, headers=headers):
                pass  # pragma: no cover
        assert closed.value.code == 1008


async def echo(ws: Any) -> None:
    async with ws:
        async for message in ws:
            await ws.send(message)


@pytest.mark.parametrize("denial", [True, False], ids=["denial", "close"])
def test_view_option(impl: Any, denial: bool) -> None:
    calls: list[str] = []

    async def view(ws: Any) -> None:
        calls.append(type(ws).__mro__[1].__module__)
        await echo(ws)

    policy = origin_policy(["https://*.example.com"], True, True)
    app = Starlette(routes=[WebSocketRoute("/ws", view_endpoint(view, impl.WebSocket, {}, policy))])
    client = TestClient(app if denial else hide_denial_extension(app))
    assert_accepted(client, "/ws", SAME)
    assert_accepted(client, "/ws", "https://a.example.com")
    assert_accepted(client, "/ws", None)
    assert len(calls) == 3
    for origin in ("http://evil.example", "null", "https://example.com", "http://testserver:8080"):
        assert_refused(client, "/ws", origin, denial=denial)
    assert len(calls) == 3  # a refused handshake never reaches the view


def test_view_option_refusing_a_missing_origin(impl: Any) -> None:
    policy = origin_policy(None, True, False)
    app = Starlette(routes=[WebSocketRoute("/ws", view_endpoint(echo, impl.WebSocket, {}, policy))])
    client = TestClient(app)
    assert_accepted(client, "/ws", SAME)
    assert_refused(client, "/ws", None)


def test_websocket_view_options() -> None:
    """The public decorator: its origin options are its own, the rest go to the WebSocket."""
    endpoint = websocket_view(same_origin=True, value_type="json")(echo)
    client = TestClient(Starlette(routes=[WebSocketRoute("/ws", endpoint)]))
    with client.websocket_connect("/ws", headers={"origin": SAME}) as session:
        session.send_json({"a": 1})
        assert session.receive_json() == {"a": 1}
    assert_refused(client, "/ws", "http://evil.example")
    # No origin option: no check (the behaviour before origin checks existed).
    unchecked = TestClient(Starlette(routes=[WebSocketRoute("/ws", websocket_view()(echo))]))
    assert_accepted(unchecked, "/ws", "http://evil.example")
    with pytest.raises(ValueError, match="allow_missing_origin=False needs"):
        websocket_view(allow_missing_origin=False)
    with pytest.raises(ValueError, match="allowed origin"):
        websocket_view(allowed_origins=["null"])


@pytest.mark.parametrize("denial", [True, False], ids=["denial", "close"])
def test_helper_in_a_hand_written_endpoint(impl: Any, denial: bool) -> None:
    results: list[bool] = []

    async def endpoint(websocket: StarletteWebSocket) -> None:
        ws = impl.WebSocket.from_starlette(websocket)
        refused = await refuse_cross_origin(ws, OriginPolicy(["http://friend.example"], same_origin=True))
        results.append(refused)
        if not refused:
            await echo(ws)

    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    client = TestClient(app if denial else hide_denial_extension(app))
    assert_accepted(client, "/ws", SAME)
    assert_accepted(client, "/ws", "http://friend.example")
    assert_refused(client, "/ws", "http://evil.example", denial=denial)
    assert results == [False, False, True]


def test_helper_on_starlettes_websocket_defaults_to_same_origin() -> None:
    async def endpoint(websocket: StarletteWebSocket) -> None:
        if await refuse_cross_origin(websocket):
            return
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    client = TestClient(Starlette(routes=[WebSocketRoute("/ws", endpoint)]))
    assert_accepted(client, "/ws", SAME)
    assert_accepted(client, "/ws", None)
    assert_refused(client, "/ws", "http://evil.example")


@pytest.mark.parametrize("denial", [True, False], ids=["denial", "close"])
def test_middleware_in_starlette(impl: Any, denial: bool) -> None:
    async def homepage(request: Any) -> Any:
        from starlette.responses import PlainTextResponse

        return PlainTextResponse("page")

    from starlette.routing import Route

    app = Starlette(routes=[Route("/", homepage), WebSocketRoute("/ws", view_endpoint(echo, impl.WebSocket, {}))])
    app.add_middleware(OriginMiddleware, allowed_origins=["https://*.example.com"], same_origin=True)
    client = TestClient(app if denial else hide_denial_extension(app))
    assert_accepted(client, "/ws", SAME)
    assert_accepted(client, "/ws", "https://app.example.com")
    assert_refused(client, "/ws", "http://evil.example", denial=denial)
    # HTTP requests are not its business, whatever their Origin.
    response = client.get("/", headers={"origin": "http://evil.example"})
    assert (response.status_code, response.text) == (200, "page")


def test_middleware_in_fastapi(impl: Any) -> None:
    app = FastAPI()

    @app.websocket("/ws")
    async def endpoint(websocket: FastAPIWebSocket) -> None:
        await echo(impl.WebSocket.from_starlette(websocket))

    app.add_middleware(OriginMiddleware)  # no options: same-origin
    client = TestClient(app)
    assert_accepted(client, "/ws", SAME)
    assert_accepted(client, "/ws", None)
    assert_refused(client, "/ws", "http://evil.example")
    assert_refused(client, "/ws", "https://testserver")  # same host, another scheme


def test_middleware_options() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - never called
        raise AssertionError

    assert OriginMiddleware(app).policy.same_origin
    assert not OriginMiddleware(app, allowed_origins=["https://example.com"]).policy.same_origin
    policy = OriginPolicy(["https://example.com"], allow_missing_origin=False)
    assert OriginMiddleware(app, policy=policy).policy is policy
    with pytest.raises(TypeError, match="either policy="):
        OriginMiddleware(app, policy=policy, same_origin=True)


def test_public_names() -> None:
    assert {"OriginPolicy", "OriginMiddleware", "refuse_cross_origin"} <= set(bocadillo_ws.__all__)
