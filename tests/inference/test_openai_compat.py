"""The OpenAI API as real clients use it (issue 14), and the server's abuse guards (issue 12: 8, 13).

Client behaviour through the official `openai` package against the shared `serve-llm` process;
body limits, key checks, the OpenAPI document and the event loop under a big prompt in process.
"""

from __future__ import annotations

import asyncio
import threading

import httpx
import openai
import pytest

from inference.server import ServerConfig, create_app, load_served
from tests.inference._llm_helpers import tiny_served_model

MESSAGES = [{"role": "user", "content": "Что такое GPTQ?"}]


# ---- in process -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_served_model(tmp_path_factory.mktemp("compat") / "tiny", max_position_embeddings=64)


@pytest.fixture(scope="module")
def served(folder):
    return load_served(ServerConfig(folder, max_batch=2))


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=120)


async def test_a_body_over_the_limit_is_413_before_parsing(served, monkeypatch):
    parsed = []
    monkeypatch.setattr(served.tokenizer, "apply_chat", lambda m: parsed.append(m) or [1, 2])
    app = create_app(served, max_body_bytes=10_000)
    big = {"model": "tiny", "messages": [{"role": "user", "content": "x" * 20_000}]}

    async def chunked():  # no Content-Length: the limit is found while reading
        yield b'{"model": "tiny", "messages": [{"role": "user", "content": "'
        for _ in range(30):
            yield b"y" * 1000
        yield b'"}]}'

    async with _client(app) as cl:
        declared = await cl.post("/v1/chat/completions", json=big)
        streamed = await cl.post(
            "/v1/chat/completions", content=chunked(), headers={"content-type": "application/json"}
        )
        health = await cl.get("/health")
    for resp in (declared, streamed):
        assert resp.status_code == 413
        error = resp.json()["error"]
        assert error["code"] == "request_too_large" and "10000 bytes" in error["message"]
        assert error["type"] == "invalid_request_error"
    assert parsed == []  # neither body reached the tokenizer
    assert health.status_code == 200


async def test_health_answers_while_a_large_allowed_prompt_is_tokenized(folder, monkeypatch):
    """The chat template + tokenizer run in a worker thread: /health is answered while they are
    still busy (here: held until /health has answered). On the event loop this would deadlock
    until the 120 s safety wait ran out, and /health would come second."""
    served = load_served(ServerConfig(folder, max_batch=1))
    started, release = threading.Event(), threading.Event()
    order: list[str] = []
    real = served.tokenizer.apply_chat

    def slow_apply_chat(messages):
        started.set()
        release.wait(120)
        order.append("tokenized")
        return real(messages)[:8]

    monkeypatch.setattr(served.tokenizer, "apply_chat", slow_apply_chat)
    app = create_app(served)
    body = {"model": "tiny", "messages": [{"role": "user", "content": "слово " * 200_000}], "max_tokens": 1}
    served.engine.start()
    try:
        async with _client(app) as cl:
            chat = asyncio.create_task(cl.post("/v1/chat/completions", json=body))
            assert await asyncio.to_thread(started.wait, 120)
            health = await cl.get("/health")
            order.append("health")
            release.set()
            resp = await chat
    finally:
        release.set()
        served.engine.shutdown()
    assert health.status_code == 200 and order == ["health", "tokenized"]
    assert resp.status_code == 200 and resp.json()["usage"]["prompt_tokens"] == 8


async def test_api_key_bearer_scheme_any_case_and_wrong_keys_refused(served):
    app = create_app(served, api_key="s3cret")
    async with _client(app) as cl:
        got = {
            header: (await cl.get("/v1/models", headers={"Authorization": header})).status_code
            for header in (
                "Bearer s3cret",
                "bearer s3cret",
                "BEARER s3cret",
                "Bearer s3cre",
                "Basic s3cret",
                "",
            )
        }
    assert got == {
        "Bearer s3cret": 200,
        "bearer s3cret": 200,
        "BEARER s3cret": 200,
        "Bearer s3cre": 401,
        "Basic s3cret": 401,
        "": 401,
    }


async def test_model_by_id_and_openapi_document(served):
    app = create_app(served, api_key="k")
    auth = {"Authorization": "Bearer k"}
    async with _client(app) as cl:
        one = await cl.get("/v1/models/tiny", headers=auth)
        alias = await cl.get("/v1/models/default", headers=auth)
        missing = await cl.get("/v1/models/gpt-4", headers=auth)
        doc = (await cl.get("/openapi.json")).json()
    assert one.status_code == 200 and one.json()["id"] == "tiny" and one.json()["object"] == "model"
    assert alias.status_code == 200
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "serve-llm --api-key",
    }
    for path in ("/v1/chat/completions", "/v1/completions"):
        op = doc["paths"][path]["post"]
        assert set(op["responses"]) == {"200", "400", "401", "404", "413", "429", "500"}
        assert op["security"] == [{"bearerAuth": []}]
        ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"]
    assert "422" not in str(doc["paths"]) and "ErrorResponse" in doc["components"]["schemas"]
    assert set(doc["paths"]["/v1/models/{model_id}"]["get"]["responses"]) == {"200", "401", "404"}


# ---- the real openai client against serve-llm -------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"functions": [{"name": "f", "parameters": {}}]}, "functions"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"logit_bias": {"5": 10}}, "logit_bias"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"frequency_penalty": 3.0}, "frequency_penalty"),
    ],
)
def test_unsupported_chat_parameters_are_refused_by_name(server, client, extra, param):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=server["name"], messages=MESSAGES, max_tokens=2, **extra)
    assert info.value.body["param"] == param and "not supported" in info.value.body["message"]


def test_default_values_of_unsupported_parameters_are_accepted(server, client):
    out = client.chat.completions.create(
        model=server["name"],
        messages=MESSAGES,
        max_tokens=2,
        temperature=0,  # sampled, the tiny model may draw its end token and stop before max_tokens
        presence_penalty=0,
        frequency_penalty=0,
        tool_choice="none",
        response_format={"type": "text"},
    )
    assert out.choices[0].finish_reason == "length"


@pytest.mark.parametrize(("extra", "param"), [({"best_of": 3}, "best_of"), ({"suffix": "end"}, "suffix")])
def test_unsupported_completion_parameters_are_refused_by_name(server, client, extra, param):
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=server["name"], prompt="a", max_tokens=2, **extra)
    assert info.value.body["param"] == param


def test_token_id_prompts_and_several_prompts_in_one_request(server, client):
    tok = client.completions.create(
        model=server["name"], prompt="Квантование весов", max_tokens=1, echo=True, logprobs=0
    )
    ids_text = ["Квантование весов", "GPTQ uses second-order"]
    singles = [
        client.completions.create(model=server["name"], prompt=p, max_tokens=5, temperature=0).choices[0].text
        for p in ids_text
    ]
    batch = client.completions.create(model=server["name"], prompt=ids_text, max_tokens=5, temperature=0, n=2)
    assert [c.index for c in batch.choices] == [0, 1, 2, 3]
    assert [c.text for c in batch.choices] == [singles[0], singles[0], singles[1], singles[1]]
    single_usage = [
        client.completions.create(model=server["name"], prompt=p, max_tokens=1).usage.prompt_tokens
        for p in ids_text
    ]
    assert batch.usage.prompt_tokens == sum(single_usage) and batch.usage.completion_tokens == 20
    # token ids (what lm-eval sends): one list, and a list of lists, give the text prompt's answer
    n_prompt = tok.usage.prompt_tokens
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(server["folder"]), local_files_only=True)
    ids = hf.encode(ids_text[0])
    assert len(ids) == n_prompt
    flat = client.completions.create(model=server["name"], prompt=ids, max_tokens=5, temperature=0)
    nested = client.completions.create(model=server["name"], prompt=[ids, ids], max_tokens=5, temperature=0)
    assert flat.choices[0].text == singles[0]
    assert [c.text for c in nested.choices] == [singles[0], singles[0]]
    streamed = list(
        client.completions.create(
            model=server["name"],
            prompt=ids_text,
            max_tokens=5,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    by_index = {0: "", 1: ""}
    for chunk in streamed:
        for c in chunk.choices:
            by_index[c.index] += c.text
    assert by_index == {0: singles[0], 1: singles[1]}
    assert streamed[-1].usage.prompt_tokens == sum(single_usage)


def test_context_errors_use_openai_wording_and_an_empty_prompt_is_not_one(server, client):
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=server["name"], prompt="слово " * 3000, max_tokens=5)
    body = info.value.body
    assert body["code"] == "context_length_exceeded" and body["param"] == "prompt"
    assert body["message"].startswith(
        "This model's maximum context length is 1024 tokens. However, you requested"
    )
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=server["name"], prompt="", max_tokens=5)
    assert (
        info.value.body["code"] == "empty_prompt"
        and "maximum context length" not in info.value.body["message"]
    )
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=server["name"], prompt=[[1, 2], [10**9]], max_tokens=5)
    assert info.value.body["param"] == "prompt" and "vocabulary" in info.value.body["message"]


def test_the_features_users_use_through_the_openai_client(server, client):
    name = server["name"]
    assert client.models.retrieve(name).id == name
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")
    args = dict(model=name, messages=MESSAGES, max_tokens=6, temperature=0.8, seed=3)
    a = client.chat.completions.create(**args, n=2, logprobs=True, top_logprobs=2)
    b = client.chat.completions.create(**args, n=2, logprobs=True, top_logprobs=2)
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]
    assert all(
        len(c.logprobs.content) == 6 and len(c.logprobs.content[0].top_logprobs) == 2 for c in a.choices
    )
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(**args, stream=True)
        if c.choices
    )
    assert text == client.chat.completions.create(**args).choices[0].message.content
