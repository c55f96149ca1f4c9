"""Raw ASGI: text in, JSON out.  Run: uvicorn --app-dir examples raw_asgi:app"""

from starlette.types import Receive, Scope, Send

from bocadillo_ws import WebSocket


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "websocket":  # lifespan and HTTP: not this sketch's business
        return
    ws = WebSocket(scope, receive, send, receive_type="text", send_type="json")
    async with ws:
        async for text in ws:
            await ws.send({"length": len(text)})
