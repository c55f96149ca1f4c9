"""bocadillo_ws: a faster, typed drop-in for Starlette's ``WebSocket``."""

from __future__ import annotations

from starlette.websockets import WebSocketDisconnect, WebSocketState

from ._backend import BACKEND
from ._errors import InvalidJSON, MessageError, MessageTooBig, RateLimited, UnexpectedMessageType
from ._hub import Hub, HubStats, HubUnavailable
from ._message_types import MESSAGE_TYPES
from ._origin import OriginMiddleware, OriginPolicy, refuse_cross_origin
from ._view import websocket_view
from ._websocket import WebSocket

__version__ = "0.1.0"

__all__ = [
    "BACKEND",
    "MESSAGE_TYPES",
    "Hub",
    "HubStats",
    "HubUnavailable",
    "InvalidJSON",
    "MessageError",
    "MessageTooBig",
    "OriginMiddleware",
    "OriginPolicy",
    "RateLimited",
    "UnexpectedMessageType",
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketState",
    "refuse_cross_origin",
    "websocket_view",
]
