"""FastAPI: one import gives endpoints a typed WebSocket.  Run: uvicorn --app-dir examples fastapi_rooms:app"""

from typing import Annotated

from fastapi import Depends, FastAPI

from bocadillo_ws.fastapi import JSONWebSocket  # instead of: from fastapi import WebSocket

app = FastAPI()


def nickname(name: str = "anon") -> str:  # ?name=... , through a dependency
    return name[:20]


@app.websocket("/ws/{room}")
async def chat(websocket: JSONWebSocket, room: str, name: Annotated[str, Depends(nickname)]) -> None:
    async with websocket:  # accept; close 1000 / 1003 / 1007 / 1011 on the way out
        async for message in websocket:  # each message is parsed JSON
            await websocket.send({"room": room, "from": name, **message})
