"""A request-body size limit for the LLM server, as pure ASGI middleware.

Boundary: bytes on the wire before any route sees them; no JSON, no engine. Why: one 10 MB body
kept `serve-llm` busy for 47 s (issue 12, finding 8; measured here: tokenizing 1 MB of Cyrillic
text takes 2.5 s of CPU, JSON decoding it 0.03 s). A body over the limit is answered 413 with the
OpenAI error envelope before it is parsed; a declared Content-Length over the limit is refused
without waiting for the body. Pure ASGI rather than Starlette's BaseHTTPMiddleware, which hides
client disconnects from the routes (they cancel engine work on disconnect).
"""

from __future__ import annotations

import json

DRAIN_FACTOR = 16  # read (and drop) up to this many limits of an oversized body so the client sees the 413


class BodyLimit:
    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        try:
            declared_n = int(declared) if declared is not None else None
        except ValueError:
            declared_n = None
        if declared_n is not None and declared_n > self.limit:
            await self._refuse(receive, send, declared_n)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left while sending: nothing to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(receive, send, declared_n, more=message.get("more_body", False))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay_receive():
            # the buffered body first, then the real channel (so a disconnect still reaches the route)
            return replay.pop() if replay else await receive()

        await self.app(scope, replay_receive, send)

    async def _refuse(self, receive, send, declared: int | None, *, more: bool = True) -> None:
        # Drain what the client is still sending (bounded): a client that is still writing its body
        # when the connection closes reports a broken pipe instead of the 413.
        drained = 0
        while more and drained < DRAIN_FACTOR * self.limit:
            message = await receive()
            if message["type"] != "http.request":
                break
            drained += len(message.get("body", b""))
            more = message.get("more_body", False)
        size = f"{declared} bytes" if declared is not None else "more than that"
        body = json.dumps(
            {
                "error": {
                    "message": f"request body too large: the limit is {self.limit} bytes, this one has {size}",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "request_too_large",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
