"""Origin checks for WebSocket handshakes (Cross-Site WebSocket Hijacking).

Browsers send cookies with a WebSocket handshake and apply no same-origin
policy to it: any page a logged-in user visits can open the user's socket.
The ``Origin`` header is the server's only clue, so the handshake is checked
against an ``OriginPolicy`` before ``accept()``. Three ways to use it:

- ``websocket_view(allowed_origins=[...], same_origin=True, ...)``;
- ``await refuse_cross_origin(websocket, policy)`` in a hand-written endpoint;
- ``app.add_middleware(OriginMiddleware, ...)`` for a whole app.

A refused handshake gets HTTP 403: a denial response where the server has the
``websocket.http.response`` extension, else a close before accept (which
every server turns into a 403).

Rules (docs/security.md explains the choices):

- An origin is ``scheme://host[:port]`` and nothing else (RFC 6454's
  serialisation, what browsers send). Scheme and host compare
  case-insensitively; a default port is the same as none
  (``http://h:80`` == ``http://h``). Anything else is malformed: refused.
- ``null`` (sandboxed frames, ``file:`` pages, some redirects) names no site:
  always refused, and refused as a pattern.
- ``https://*.example.com`` matches subdomains at any depth
  (``a.example.com``, ``a.b.example.com``), never ``example.com`` itself,
  never ``example.com.evil.com``, never another scheme or port.
- ``same_origin=True`` allows the origin of the URL the request came to: the
  ``Host`` header, with ``ws`` as ``http`` and ``wss`` as ``https``. It trusts
  ``Host``: a DNS-rebinding page sends its own name in both headers. Pair it
  with a host check (Starlette's ``TrustedHostMiddleware``; docs/security.md).
- No ``Origin`` header (non-browser clients; browsers always send one) is
  allowed unless ``allow_missing_origin=False``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple, Protocol

from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

DENIAL_STATUS = 403
DENIAL_BODY = b"Origin not allowed"
# Before accept the code only tells the server to refuse (it answers 403);
# 1008 "policy violation" says why to anyone reading the ASGI events.
DENIAL_CLOSE_CODE = 1008

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# The scheme a page has when it opens a socket to a URL of this scheme.
PAGE_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}

# scheme "://" host [":" port], nothing more. Host: a bracketed IPv6 literal,
# or DNS-ish ASCII (browsers send IDNA names as punycode). The scheme's
# grammar is RFC 3986's.
_ORIGIN = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
_WILDCARD = "*."


class Handshake(Protocol):
    """What ``refuse_cross_origin`` needs: Starlette's ``WebSocket`` and ``bocadillo_ws.WebSocket`` both have it."""

    @property
    def scope(self) -> Scope: ...

    async def send_denial_response(self, response: Response) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


class Origin(NamedTuple):
    """A parsed origin: lower-case scheme and host, the port made explicit (``None``: the scheme has none)."""

    scheme: str
    host: str
    port: int | None


def parse_origin(value: str) -> Origin | None:
    """``value`` as an ``Origin``, or ``None`` if it is not one (``null`` included)."""
    match = _ORIGIN.fullmatch(value)
    if match is None:
        return None
    scheme = match["scheme"].lower()
    port_text = match["port"]
    if port_text is None:
        port = DEFAULT_PORTS.get(scheme)
    else:
        port = int(port_text)
        if port > 65535:
            return None
    return Origin(scheme, match["host"].lower(), port)


def _pattern_error(pattern: str, why: str) -> ValueError:
    return ValueError(f"allowed origin {pattern!r}: {why}")


class OriginPolicy:
    """Which ``Origin`` headers a WebSocket handshake may carry.

    ``allowed_origins``: exact origins (``"https://example.com"``) and
    wildcard subdomains (``"https://*.example.com"``). ``same_origin``: also
    allow the origin of the URL the request came to, as the ``Host`` header
    names it (trusted as sent: check hosts with Starlette's
    ``TrustedHostMiddleware`` against DNS rebinding). ``allow_missing_origin``:
    allow a handshake without ``Origin``. A policy with no allowed origins and
    ``same_origin=False`` refuses every browser (fails closed).
    """

    __slots__ = ("_exact", "_wildcards", "allow_missing_origin", "allowed_origins", "same_origin")

    def __init__(
        self,
        allowed_origins: Iterable[str] = (),
        *,
        same_origin: bool = False,
        allow_missing_origin: bool = True,
    ) -> None:
        if isinstance(allowed_origins, str):
            # A lone string would otherwise be read as a list of one-letter origins.
            raise TypeError("allowed_origins must be an iterable of origins, not a str")
        self.allowed_origins: tuple[str, ...] = tuple(allowed_origins)
        self.same_origin = bool(same_origin)
        self.allow_missing_origin = bool(allow_missing_origin)
        exact: set[Origin] = set()
        wildcards: list[tuple[str, str, int | None]] = []
        for pattern in self.allowed_origins:
            if not isinstance(pattern, str):
                raise TypeError(f"allowed origin {pattern!r}: expected a str, got {type(pattern).__name__}")
            if pattern.strip().lower() == "null":
                raise _pattern_error(pattern, "'null' comes from sandboxed and file: pages of any site")
            if pattern == "*":
                raise _pattern_error(pattern, "to allow every origin, do not check origins")
            wildcard = _WILDCARD in pattern
            origin = parse_origin(pattern.replace("://*.", "://", 1) if wildcard else pattern)
            if origin is None or (wildcard and f"://{_WILDCARD}" not in pattern):
                raise _pattern_error(pattern, "expected scheme://host[:port] or scheme://*.domain[:port]")
            if wildcard:
                if origin.host.startswith("["):
                    raise _pattern_error(pattern, "an IP address has no subdomains")
                if "." not in origin.host.rstrip("."):
                    # "https://*.com" would let every .com site in.
                    raise _pattern_error(pattern, "a wildcard needs a domain, not a top-level domain")
                wildcards.append((origin.scheme, "." + origin.host, origin.port))
            else:
                exact.add(origin)
        self._exact: frozenset[Origin] = frozenset(exact)
        self._wildcards: tuple[tuple[str, str, int | None], ...] = tuple(wildcards)

    def __repr__(self) -> str:
        return (
            f"OriginPolicy({list(self.allowed_origins)!r}, same_origin={self.same_origin!r}, "
            f"allow_missing_origin={self.allow_missing_origin!r})"
        )

    def allows(self, origin: str | None, *, host: str | None = None, scheme: str = "ws") -> bool:
        """Whether a handshake with this ``Origin`` header value may be accepted.

        ``origin`` is ``None`` when the header is missing. ``host`` (the
        ``Host`` header) and ``scheme`` (the scope's: ``ws`` or ``wss``) are
        the URL the request came to, used by ``same_origin``.
        """
        if origin is None:
            return self.allow_missing_origin
        parsed = parse_origin(origin)
        if parsed is None:
            return False
        if parsed in self._exact:
            return True
        for wild_scheme, suffix, port in self._wildcards:
            if parsed.scheme == wild_scheme and parsed.port == port and parsed.host.endswith(suffix):
                return True
        if self.same_origin and host is not None:
            page_scheme = PAGE_SCHEMES.get(scheme.lower())
            return page_scheme is not None and parse_origin(f"{page_scheme}://{host}") == parsed
        return False

    def allows_scope(self, scope: Scope) -> bool:
        """``allows`` for an ASGI ``websocket`` scope. Two ``Origin`` (or ``Host``) headers: refused."""
        origin: str | None = None
        host: str | None = None
        origins = hosts = 0
        for name, value in scope["headers"]:
            # ASGI header names are lower-case bytes.
            if name == b"origin":
                origins += 1
                origin = value.decode("latin-1")
            elif name == b"host":
                hosts += 1
                host = value.decode("latin-1")
        if origins > 1 or hosts > 1:
            return False
        return self.allows(origin, host=host, scheme=scope.get("scheme", "ws"))


def as_policy(policy: OriginPolicy | None) -> OriginPolicy:
    """``policy``, or same-origin (missing ``Origin`` allowed) when ``None``."""
    return OriginPolicy(same_origin=True) if policy is None else policy


async def refuse_cross_origin(websocket: Handshake, policy: OriginPolicy | None = None) -> bool:
    """Refuse the handshake (HTTP 403) unless ``policy`` allows its origin; ``True`` if it refused.

    Call it before ``accept()``; on ``True``, return from the endpoint. With
    no ``policy``, same-origin only. Works on Starlette's ``WebSocket`` and on
    ``bocadillo_ws.WebSocket``.
    """
    if as_policy(policy).allows_scope(websocket.scope):
        return False
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(PlainTextResponse(DENIAL_BODY, status_code=DENIAL_STATUS))
    else:
        await websocket.close(DENIAL_CLOSE_CODE)
    return True


async def deny(scope: Scope, receive: Receive, send: Send) -> None:
    """Refuse a ``websocket`` handshake with a 403, in raw ASGI events."""
    # The server's first event is websocket.connect; the answer follows it.
    message = await receive()
    if message["type"] != "websocket.connect":
        return  # the client is already gone: nothing to refuse
    if "websocket.http.response" in scope.get("extensions", {}):
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(DENIAL_BODY)).encode())]
        await send({"type": "websocket.http.response.start", "status": DENIAL_STATUS, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": DENIAL_BODY})
    else:
        await send({"type": "websocket.close", "code": DENIAL_CLOSE_CODE})


class OriginMiddleware:
    """ASGI middleware: refuse ``websocket`` handshakes whose origin the policy does not allow.

    ``app.add_middleware(OriginMiddleware, allowed_origins=[...], same_origin=True)``
    in Starlette and FastAPI (or ``policy=OriginPolicy(...)``). HTTP and
    lifespan scopes pass through untouched. With no option at all: same-origin.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_origins: Iterable[str] = (),
        same_origin: bool | None = None,
        allow_missing_origin: bool = True,
        policy: OriginPolicy | None = None,
    ) -> None:
        self.app = app
        if policy is not None:
            if allowed_origins or same_origin is not None or not allow_missing_origin:
                raise TypeError("give either policy= or the allowed_origins/same_origin/allow_missing_origin options")
            self.policy = policy
        else:
            allowed = tuple(allowed_origins)
            # Nothing listed and same_origin not given: same-origin, never "refuse everyone" by omission.
            same = (not allowed) if same_origin is None else same_origin
            self.policy = OriginPolicy(allowed, same_origin=same, allow_missing_origin=allow_missing_origin)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and not self.policy.allows_scope(scope):
            await deny(scope, receive, send)
            return
        await self.app(scope, receive, send)
