"""FastAPI: take over FastAPI's WebSocket with ``from_starlette``.  Run: uvicorn --app-dir examples fastapi_rooms:app"""

from fastapi import FastAPI
from fastapi import WebSocket as FastAPIWebSocket

import bocadillo_ws

app = FastAPI()


@app.websocket("/ws/{room}")
async def chat(websocket: FastAPIWebSocket, room: str) -> None:
    ws = bocadillo_ws.WebSocket.from_starlette(websocket, value_type="json")
    async with ws:
        async for message in ws:
            await ws.send({"room": room, **message})
