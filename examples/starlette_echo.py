"""Starlette: a JSON echo with ``websocket_view``.  Run: uvicorn --app-dir examples starlette_echo:app"""

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

from bocadillo_ws import WebSocket, websocket_view


@websocket_view(value_type="json")
async def echo(ws: WebSocket) -> None:
    async with ws:  # accept; close 1000 / 1003 / 1007 / 1011 on the way out
        async for message in ws:  # each message is parsed JSON
            await ws.send({"echo": message})


app = Starlette(routes=[WebSocketRoute("/echo", echo)])
