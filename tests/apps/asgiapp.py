"""ASGI test app for uvicorn and hypercorn: answers ``VERSION PID``; ``/block?SECONDS`` blocks
the event loop that long (a handler that never yields) before it answers."""
import os
import time

VERSION = os.environ.get("APP_VERSION", "v1")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/block":
        time.sleep(float(scope["query_string"] or b"0"))  # on purpose: the whole loop stops
    body = f"{VERSION} {os.getpid()}\n".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
