"""The one scripted OpenAI-compatible endpoint every test package uses in place of a model.

Boundary: HTTP on 127.0.0.1 only, the subset of the OpenAI API our clients call:
POST /v1/chat/completions (plain JSON, or server-sent events with "stream": true) and
GET /v1/models. It runs in its own thread, so synchronous clients (rag, crosspost) and asyncio ones
(the bot) talk to it alike. Every request body is recorded in `requests`.

What a completion answers, first match wins:
- the next entry of `replies` (a queue): {"text": ...}, {"status": 500} (an error envelope),
  {"sleep": s, "text": ...} (answers late), {"garbage": True} (an HTML page instead of JSON);
- else `script(last user message, call number from 1)`;
- else "NOT_IN_CORPUS", the abstention a well-behaved model gives to the RAG prompt.
Streams send the text in `chunk`-character deltas, `delay_s` apart (the bot's throttling tests
need an answer that takes a while to arrive).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Script = Callable[[str, int], str]


class FakeOpenAI:
    def __init__(self, script: Script | None = None, *, chunk: int = 7, delay_s: float = 0.0):
        self.script, self.chunk, self.delay_s = script, chunk, delay_s
        self.replies: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.models: list[dict[str, Any]] = [{"id": "default", "object": "model"}]
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def next_reply(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:  # concurrent requests each take their own reply and call number
            self.requests.append(body)
            if self.replies:
                return self.replies.pop(0)
            call = len(self.requests)
        if self.script is None:
            return {"text": "NOT_IN_CORPUS"}
        users = [m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "user"]
        return {"text": self.script(users[-1] if users else "", call)}


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, json.dumps({"object": "list", "data": fake.models}).encode())
            else:
                self._send(404, b'{"error": {"message": "not found"}}')

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            reply = fake.next_reply(body)
            if reply.get("sleep"):
                time.sleep(reply["sleep"])
            if reply.get("status"):
                self._send(reply["status"], b'{"error": {"message": "boom"}}')
            elif reply.get("garbage"):
                self._send(200, b"<html>this is not json</html>", "text/html")
            elif body.get("stream"):
                self._stream(reply["text"])
            else:
                message = {"role": "assistant", "content": reply["text"]}
                payload = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", "fake"),
                    "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
                self._send(200, json.dumps(payload, ensure_ascii=False).encode())

        def _send(self, status: int, data: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, text: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()  # HTTP/1.0: the stream ends when the connection closes
            for i in range(0, len(text), fake.chunk):
                delta = {"content": text[i : i + fake.chunk]}
                event = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": "fake",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                }
                self.wfile.write(f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode())
                self.wfile.flush()
                if fake.delay_s:
                    time.sleep(fake.delay_s)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    return Handler
