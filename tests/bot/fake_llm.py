"""A scripted OpenAI-compatible endpoint on 127.0.0.1 (chat completions, streaming and not), so the
real RagService streams a model answer into the bot without any model."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class FakeLLM:
    answer: str  # streamed in `chunk` characters every `delay_s`
    chunk: int = 24
    delay_s: float = 0.02
    requests: list[dict] = field(default_factory=list)
    base_url: str = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self.base_url

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "c1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", "m"),
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": self.answer},
                        }
                    ],
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(0, len(self.answer), self.chunk):
            event = {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "m",
                "choices": [
                    {"index": 0, "delta": {"content": self.answer[i : i + self.chunk]}, "finish_reason": None}
                ],
            }
            await response.write(f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode())
            await asyncio.sleep(self.delay_s)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
