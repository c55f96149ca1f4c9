"""The README's quick starts (``examples/``), run as written, on both backends.

Each example imports ``bocadillo_ws.WebSocket`` / ``websocket_view``; the
test points those names at the backend under test, then loads the file by
path (``examples/`` is not a package, and the repository root must not go
on ``sys.path``: it would shadow the installed package).
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import pytest
from fastapi import Depends

import bocadillo_ws
import bocadillo_ws._view
import bocadillo_ws.fastapi

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient; httpx still works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def swallowing(app: Any, errors: list[BaseException]) -> Any:
    """``app``, keeping what escapes it (as a server would log it) instead of raising into TestClient."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        try:
            await app(scope, receive, send)
        except Exception as exc:
            errors.append(exc)

    return wrapped


@pytest.fixture
def load_example(WebSocket: type[Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(bocadillo_ws, "WebSocket", WebSocket)
    monkeypatch.setattr(bocadillo_ws._view, "WebSocket", WebSocket)
    json_websocket = Annotated[
        bocadillo_ws.fastapi.Provided, Depends(bocadillo_ws.fastapi.provider(WebSocket, value_type="json"))
    ]
    monkeypatch.setattr(bocadillo_ws.fastapi, "JSONWebSocket", json_websocket)

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def test_starlette_echo(load_example: Any) -> None:
    errors: list[BaseException] = []
    app = swallowing(load_example("starlette_echo").app, errors)
    with TestClient(app) as client, client.websocket_connect("/echo") as ws:
        ws.send_json({"hello": ["world", 1]})
        assert ws.receive_json() == {"echo": {"hello": ["world", 1]}}
        ws.send_text("{not json")
        assert ws.receive() == {"type": "websocket.close", "code": 1007, "reason": ""}
    assert [type(error) for error in errors] == [bocadillo_ws.InvalidJSON]  # re-raised after the close


def test_fastapi_rooms(load_example: Any) -> None:
    app = load_example("fastapi_rooms").app
    with TestClient(app) as client, client.websocket_connect("/ws/lobby?name=ana") as ws:
        ws.send_json({"text": "hi"})
        assert ws.receive_json() == {"room": "lobby", "from": "ana", "text": "hi"}
        ws.send_bytes(b'{"text": "binary JSON frames are JSON too"}')
        assert ws.receive_json() == {"room": "lobby", "from": "ana", "text": "binary JSON frames are JSON too"}


def test_raw_asgi(load_example: Any) -> None:
    errors: list[BaseException] = []
    app = swallowing(load_example("raw_asgi").app, errors)
    # No lifespan: the sketch answers only WebSocket scopes (TestClient's
    # lifespan wants startup.complete; uvicorn takes a plain return).
    with TestClient(app).websocket_connect("/") as ws:
        ws.send_text("héllo")
        assert ws.receive_json() == {"length": 5}
        ws.send_bytes(b"not text")
        assert ws.receive() == {"type": "websocket.close", "code": 1003, "reason": ""}
    assert [type(error) for error in errors] == [bocadillo_ws.UnexpectedMessageType]


@pytest.mark.parametrize("name", ["starlette_echo", "fastapi_rooms", "raw_asgi"])
def test_readme_shows_the_example_as_it_is(name: str) -> None:
    """The README's quick start is the example's code (docstring aside), so both stay right."""
    code = (EXAMPLES / f"{name}.py").read_text().split('"""', 2)[2].strip()
    blocks = [block.strip() for block in re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)]
    assert code in blocks
