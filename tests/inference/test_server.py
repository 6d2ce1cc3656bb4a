"""`research-bot serve-llm` on a tiny model, exercised with the official `openai` client."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time

import httpx
import openai
import pytest

from tests.inference._llm_helpers import build_served_folder

MAX_BATCH = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = build_served_folder(tmp_path_factory.mktemp("served") / "tiny-chat")
    port = _free_port()
    # one torch thread: on a shared CI box, OpenMP threads spinning against other processes made
    # decoding ~9x slower (measured 25 vs 220 tok/s at load 10 on 2 cores)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "RESEARCH_BOT_DATA_DIR": str(folder.parent / "data"),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "bot.cli.main",
        "serve-llm",
        "--model",
        str(folder),
        "--port",
        str(port),
        "--max-batch",
        str(MAX_BATCH),
        "--max-queue",
        "32",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            pytest.fail(f"serve-llm exited: {proc.stdout.read()}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("serve-llm did not come up in 120 s")
        time.sleep(0.2)
    yield {"base": base, "folder": folder, "name": folder.name}
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server["base"] + "/v1", api_key="unused", max_retries=0, timeout=60)


def _hf_tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


MESSAGES = [
    {"role": "system", "content": "Отвечай кратко."},
    {"role": "user", "content": "Что такое GPTQ? 🤖"},
]


def test_models_and_health(server, client):
    assert [m.id for m in client.models.list().data] == [server["name"]]
    health = httpx.get(server["base"] + "/health").json()
    assert health["status"] == "ok" and health["max_batch"] == MAX_BATCH
    assert health["weights"] == "gptq-4bit" and health["attention"] == "torch"


def test_chat_non_streaming_counts_usage(server, client):
    out = client.chat.completions.create(model=server["name"], messages=MESSAGES, max_tokens=8, temperature=0)
    choice = out.choices[0]
    assert choice.finish_reason == "length" and choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content
    prompt = _hf_tokenizer(server["folder"]).apply_chat_template(
        MESSAGES, add_generation_prompt=True, tokenize=False
    )
    n_prompt = len(_hf_tokenizer(server["folder"]).encode(prompt, add_special_tokens=False))
    assert out.usage.prompt_tokens == n_prompt
    assert out.usage.completion_tokens == 8 and out.usage.total_tokens == n_prompt + 8


def test_streaming_chat_equals_non_streaming_and_reports_usage(server, client):
    args = dict(model=server["name"], messages=MESSAGES, max_tokens=12, temperature=0)
    full = client.chat.completions.create(**args).choices[0].message.content
    chunks = list(client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12


def test_completions_plain_and_streaming(server, client):
    args = dict(model=server["name"], prompt="Квантование весов", max_tokens=6, temperature=0)
    out = client.completions.create(**args)
    assert out.choices[0].finish_reason == "length" and out.usage.completion_tokens == 6
    streamed = list(client.completions.create(**args, stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == out.choices[0].text


def test_stop_string_cuts_the_answer(server, client):
    args = dict(model=server["name"], messages=MESSAGES, temperature=0)
    text = client.chat.completions.create(**args, max_tokens=40).choices[0].message.content
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    assert stop.strip(), f"pick a visible stop string from {text!r}"
    cut = client.chat.completions.create(**args, max_tokens=40, stop=[stop])
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == text[: text.find(stop)]
    streamed = client.chat.completions.create(**args, max_tokens=40, stop=stop, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == text[: text.find(stop)]


def test_seed_makes_sampling_reproducible(server, client):
    args = dict(model=server["name"], messages=MESSAGES, max_tokens=16, temperature=1.0, top_p=0.95)
    a = client.chat.completions.create(**args, seed=7).choices[0].message.content
    b = client.chat.completions.create(**args, seed=7).choices[0].message.content
    c = client.chat.completions.create(**args, seed=8).choices[0].message.content
    assert a == b
    assert a != c


def test_sixteen_concurrent_streams_all_complete(server):
    async def one(cl: openai.AsyncOpenAI, i: int) -> tuple[str, str | None, int]:
        stream = await cl.chat.completions.create(
            model=server["name"],
            messages=[{"role": "user", "content": f"вопрос {i}"}],
            max_tokens=10,
            temperature=0.8,
            seed=i,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, finish, usage = "", None, 0
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage:
                usage = chunk.usage.completion_tokens
        return text, finish, usage

    async def main():
        async with openai.AsyncOpenAI(base_url=server["base"] + "/v1", api_key="x", max_retries=0) as cl:
            return await asyncio.gather(*(one(cl, i) for i in range(16)))

    results = asyncio.run(main())
    assert len(results) == 16
    assert all(finish == "length" and usage == 10 for _, finish, usage in results)
    health = httpx.get(server["base"] + "/health").json()
    assert health["running"] == 0 and health["free_slots"] == MAX_BATCH


def test_disconnect_mid_stream_frees_the_slot(server):
    base = server["base"]
    before = httpx.get(base + "/health").json()
    body = {"model": server["name"], "messages": MESSAGES, "max_tokens": 900, "stream": True}
    with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=30) as resp:
        lines = resp.iter_lines()
        got = [next(lines) for _ in range(6)]
        assert any(line.startswith("data: {") for line in got)
    # the client is gone; the server must cancel the request rather than generate 200 tokens for nobody
    deadline = time.monotonic() + 20
    while True:
        health = httpx.get(base + "/health").json()
        if health["cancelled"] > before["cancelled"] and health["running"] == 0:
            break
        assert time.monotonic() < deadline, f"slot not freed: {health}"
        time.sleep(0.1)
    assert health["free_slots"] == MAX_BATCH and health["completed"] == before["completed"]


@pytest.mark.parametrize(
    ("payload", "status", "param", "code"),
    [
        ({"model": "no-such-model", "messages": MESSAGES}, 404, "model", "model_not_found"),
        ({"messages": MESSAGES, "max_tokens": -5}, 400, "max_tokens", None),
        ({"messages": []}, 400, "messages", None),
        (
            {"messages": [{"role": "user", "content": "слово " * 3000}]},
            400,
            "messages",
            "context_length_exceeded",
        ),
        ({"messages": MESSAGES, "temperature": 5}, 400, "temperature", None),
    ],
    ids=["unknown-model", "negative-max-tokens", "empty-messages", "over-context", "bad-temperature"],
)
def test_bad_requests_get_openai_errors(server, client, payload, status, param, code):
    payload = {"model": server["name"], **payload}
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(**payload)
    err = info.value
    assert err.status_code == status
    assert err.body["param"] == param and err.body["message"] and err.body["type"]
    if code:
        assert err.body["code"] == code


def test_malformed_json_gets_an_error_envelope(server):
    resp = httpx.post(
        server["base"] + "/v1/chat/completions",
        content=b'{"model": "x", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and "JSON" in error["message"]
    resp = httpx.post(server["base"] + "/v1/nope", json={})
    assert resp.status_code == 404 and "error" in resp.json()
    assert json.loads(resp.text)["error"]["message"]


def test_null_sampling_fields_mean_defaults(server):
    body = {
        "model": server["name"],
        "messages": MESSAGES,
        "max_tokens": 3,
        "temperature": None,
        "top_p": None,
        "n": None,
        "stream": None,
        "stop": None,
        "seed": None,
    }
    resp = httpx.post(server["base"] + "/v1/chat/completions", json=body, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"]["completion_tokens"] == 3
