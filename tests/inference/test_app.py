"""Server behaviour that needs control over the engine: 429 when the queue is full, the bearer key."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from inference.engine import SamplingParams
from inference.server import ServerConfig, create_app, load_served
from tests.inference._llm_helpers import tiny_served_model

MESSAGES = [{"role": "user", "content": "Привет"}]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_served_model(tmp_path_factory.mktemp("app") / "tiny")


async def test_full_queue_answers_429_with_retry_after(folder):
    served = load_served(ServerConfig(folder, max_batch=1, max_queue=0))
    app = create_app(served)  # no lifespan here: the engine thread is not running, nothing drains
    served.engine.submit([1, 2, 3], SamplingParams(max_tokens=4), lambda e: None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as cl:
        resp = await cl.post("/v1/chat/completions", json={"model": "tiny", "messages": MESSAGES})
        health = (await cl.get("/health")).json()
    assert resp.status_code == 429 and resp.headers["retry-after"] == "1"
    assert (
        resp.json()["error"]["type"] == "rate_limit_error"
        and "retry later" in resp.json()["error"]["message"]
    )
    assert health["rejected"] == 1 and health["waiting"] == 1


async def test_api_key_is_required_on_v1_but_not_health(folder):
    served = load_served(ServerConfig(folder, max_batch=1))
    app = create_app(served, api_key="s3cret")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as cl:
        missing = await cl.get("/v1/models")
        wrong = await cl.get("/v1/models", headers={"Authorization": "Bearer nope"})
        right = await cl.get("/v1/models", headers={"Authorization": "Bearer s3cret"})
        health = await cl.get("/health")
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["error"]["code"] == "invalid_api_key"
    assert right.status_code == 200 and right.json()["data"][0]["id"] == "tiny"
    assert health.status_code == 200


async def test_client_gone_before_its_turn_never_takes_a_slot(folder):
    """A non-streaming request waits in the queue; its client disconnects; the engine drops it."""
    served = load_served(ServerConfig(folder, max_batch=1, max_queue=4))
    app = create_app(served)  # engine thread not running: the request stays queued
    body = json.dumps({"model": "tiny", "messages": MESSAGES, "max_tokens": 50}).encode()
    incoming = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if incoming:  # like uvicorn: a message that is already there comes back without waiting
            return incoming.pop()
        return {"type": "http.disconnect"}  # the client went away right after sending

    async def send(_message):
        pass

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "server": ("test", 80),
        "client": ("test", 1),
    }
    await asyncio.wait_for(app(scope, receive, send), 10)  # returns once the disconnect is seen
    assert served.engine.stats()["waiting"] == 1
    served.engine.step()
    stats = served.engine.stats()
    assert stats["waiting"] == 0 and stats["cancelled"] == 1 and stats["free_slots"] == 1
    assert stats["completed"] == 0
