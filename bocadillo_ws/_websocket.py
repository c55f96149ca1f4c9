"""The public ``WebSocket``: the selected backend's core plus Starlette's connection API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from starlette.exceptions import WebSocketException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket as StarletteWebSocket
from starlette.websockets import WebSocketDisconnect

from . import _starlette_states as states
from ._backend import WebSocketCore, make_json_codec
from ._errors import MessageError
from ._limits import check_limits, limit_receive
from ._message_types import message_type_code

MessageType = Literal["text", "bytes", "json", "event"]


class JSONCodecObject(Protocol):
    """What ``json_codec=`` accepts besides a name."""

    def dumps(self, obj: Any, /) -> str | bytes: ...
    def loads(self, payload: str | bytes, /) -> Any: ...


JSONCodecSpec = Literal["ujson", "orjson", "json"] | JSONCodecObject

_Self = TypeVar("_Self", bound="WebSocketAPI")

# Type checkers see the public class's Starlette base on the mixin too.
if TYPE_CHECKING:
    _Mixin = StarletteWebSocket
else:
    _Mixin = object


class WebSocketAPI(_Mixin):
    """Everything of ``bocadillo_ws.WebSocket`` that is not per-message hot path.

    Mixed in before a backend's ``WebSocketCore`` and Starlette's
    ``WebSocket``; see ``WebSocket`` below.
    """

    # Provided by WebSocketCore (declared here for type checkers).
    _app_state: int
    _client_state: int
    catch_disconnect: bool

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        value_type: MessageType | None = None,
        receive_type: MessageType | None = None,
        send_type: MessageType | None = None,
        catch_disconnect: bool = True,
        json_codec: JSONCodecSpec = "ujson",
        max_size: int | None = None,
        max_rate: float | None = None,
        max_burst: int | None = None,
    ) -> None:
        # What Starlette's HTTPConnection.__init__ and WebSocket.__init__ check and
        # keep; the states and the ASGI callables live in the backend's core.
        assert scope["type"] == "websocket"
        self.scope = scope
        if value_type is not None:
            message_type_code(value_type, "value_type")  # name the parameter the user wrote
            receive_type = send_type = value_type
        max_size, rate, burst = check_limits(max_size, max_rate, max_burst)
        self._bind(  # type: ignore[attr-defined]
            limit_receive(receive, max_size, rate, burst),
            send,
            "text" if receive_type is None else receive_type,
            "text" if send_type is None else send_type,
            catch_disconnect,
            json_codec,
        )

    _OPTIONS = frozenset(
        {"value_type", "receive_type", "send_type", "catch_disconnect", "json_codec"}
        | {"max_size", "max_rate", "max_burst"}
    )

    @classmethod
    def _check_options(cls, options: dict[str, Any]) -> None:
        """Refuse bad constructor keywords early (at decoration time, for views)."""
        unknown = sorted(set(options) - cls._OPTIONS)
        if unknown:
            raise TypeError(f"Unknown WebSocket option(s): {', '.join(unknown)}")
        for name in ("value_type", "receive_type", "send_type"):
            if options.get(name) is not None:
                message_type_code(options[name], name)
        make_json_codec(options.get("json_codec", "ujson"))
        check_limits(options.get("max_size"), options.get("max_rate"), options.get("max_burst"))

    @classmethod
    def from_starlette(cls: type[_Self], websocket: StarletteWebSocket, **options: Any) -> _Self:
        """Wrap a Starlette/FastAPI ``WebSocket`` that a framework already created.

        The new object uses its transport and shares its connection state:
        whichever of the two accepts, sends, receives or closes, both see
        the same ``client_state`` and ``application_state`` (so the
        framework's own handlers and code that still holds its object keep
        working). Wrapping the same object again (other options) shares that
        one state too; a wrapper given here wraps its origin again. Raises
        ``TypeError`` for anything else, or for a ``bocadillo_ws.WebSocket``
        that wraps nothing (use it as it is).
        """
        if isinstance(websocket, WebSocketAPI):
            origin = getattr(websocket, "_origin", None)
            if origin is None:
                raise TypeError("from_starlette() expects a starlette WebSocket; this is a bocadillo_ws one already")
            websocket = origin
        if not isinstance(websocket, StarletteWebSocket):
            raise TypeError(f"from_starlette() expects a starlette WebSocket, got {type(websocket).__name__}")
        self = cls(websocket.scope, websocket._receive, websocket._send, **options)
        self._adopt(websocket)  # type: ignore[attr-defined]
        states.share(websocket, self)
        return self

    # ------------------------------------------------------------------ lifecycle

    async def accept(
        self,
        subprotocol: str | None = None,
        headers: Iterable[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Wait for ``websocket.connect`` if not yet seen, then send ``websocket.accept``."""
        await states.call(self, "accept", subprotocol, headers)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Send ``websocket.close``."""
        await states.call(self, "close", code, reason)

    async def ensure_closed(self, code: int = 1000, reason: str | None = None) -> None:
        """Close unless already closed by either side; never raises for "already closed"."""
        if self._app_state > 1 or self._client_state > 1:  # DISCONNECTED or RESPONSE
            return
        try:
            await self.close(code, reason)
        except WebSocketDisconnect:
            pass  # the peer went away while we were closing: closed all the same

    async def send_denial_response(self, response: Response) -> None:
        """Reject the handshake with an HTTP response (needs the server's extension)."""
        if "websocket.http.response" in self.scope.get("extensions", {}):
            await response(self.scope, self.receive_event, self.send_event)  # type: ignore[attr-defined]
        else:
            raise RuntimeError("The server doesn't support the Websocket Denial Response extension.")

    async def __aenter__(self: _Self) -> _Self:
        if self._app_state == 0:  # CONNECTING
            await self.accept()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None:
            await self.ensure_closed(1000)
            return False
        if isinstance(exc, WebSocketDisconnect):
            return bool(self.catch_disconnect)  # the peer is gone: nothing to send
        if not isinstance(exc, Exception):
            return False  # cancellation or interpreter exit: don't await the peer
        if isinstance(exc, WebSocketException):
            # Starlette's "close with this code" signal: do exactly that, as
            # Starlette's own handler would, and it is handled (re-raising
            # would make that handler close a second time).
            try:
                await self.ensure_closed(exc.code, exc.reason)
            except Exception:
                return False
            return True
        code = exc.close_code if isinstance(exc, MessageError) else 1011
        try:
            await self.ensure_closed(code)
        except Exception:
            pass  # never hide the original exception behind a failed close
        return False

    # ------------------------------------------------------------------ Starlette's iterators

    async def iter_text(self) -> AsyncIterator[str]:
        try:
            while True:
                yield await self.receive_text()
        except WebSocketDisconnect:
            pass

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        try:
            while True:
                yield await self.receive_bytes()
        except WebSocketDisconnect:
            pass

    async def iter_json(self) -> AsyncIterator[Any]:
        try:
            while True:
                yield await self.receive_json()
        except WebSocketDisconnect:
            pass


class WebSocket(WebSocketAPI, WebSocketCore, StarletteWebSocket):
    """A WebSocket connection: Starlette's API, Bocadillo's typed messages, a compiled hot path.

    A ``starlette.websockets.WebSocket`` (a subclass): every check that
    Starlette, FastAPI or user code makes of one accepts it.
    ``receive()``/``send()`` are typed (``receive_type``/``send_type``,
    text by default); ``value_type="event"`` makes them Starlette's raw
    events exactly.
    """
