"""`research-bot serve-llm` on a tiny model, exercised with the official `openai` client."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest
import torch

from tests.inference.conftest import MAX_BATCH


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
    assert health["cuda_graphs"] is False and health["prefilling"] == 0  # CPU: no graphs


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


def test_a_repeated_prompt_reuses_the_cache_and_says_so(server, client):
    messages = [
        {"role": "system", "content": "Кэш префикса: повторный запрос не пересчитывает промпт."},
        {"role": "user", "content": "Сколько токенов взято из кэша?"},
    ]
    args = dict(model=server["name"], messages=messages, max_tokens=4, temperature=0)
    first = client.chat.completions.create(**args)
    second = client.chat.completions.create(**args)
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    # every prompt token but the last (its logits are needed) came from the cache
    assert second.usage.prompt_tokens_details.cached_tokens == second.usage.prompt_tokens - 1
    assert second.choices[0].message.content == first.choices[0].message.content


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
    # greedy: at temperature 1 a sampled end-of-turn token now and then finished it before the disconnect
    body = {
        "model": server["name"],
        "messages": MESSAGES,
        "max_tokens": 900,
        "stream": True,
        "temperature": 0,
    }
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


# ---- logprobs and n > 1 ------------------------------------------------------------------------


def _entry_key(e) -> tuple:
    return (e.token, e.bytes, round(e.logprob, 4), [(t.token, round(t.logprob, 4)) for t in e.top_logprobs])


def test_chat_logprobs_greedy_and_streamed(server, client):
    args = dict(
        model=server["name"], messages=MESSAGES, max_tokens=12, temperature=0, logprobs=True, top_logprobs=3
    )
    out = client.chat.completions.create(**args)
    choice = out.choices[0]
    entries = choice.logprobs.content
    assert choice.finish_reason == "length" and len(entries) == out.usage.completion_tokens == 12
    for e in entries:
        assert e.logprob <= 0 and len(e.top_logprobs) == 3
        alts = [t.logprob for t in e.top_logprobs]
        assert alts == sorted(alts, reverse=True) and all(lp <= 0 for lp in alts)
        # greedy: the chosen token is the most likely one
        assert (e.top_logprobs[0].token, e.top_logprobs[0].bytes) == (e.token, e.bytes)
        assert e.top_logprobs[0].logprob == pytest.approx(e.logprob)
    # the tokens' own bytes make the text, including characters split over two tokens; a length
    # cut inside a character shows as U+FFFD in both
    joined = b"".join(bytes(e.bytes) for e in entries)
    assert joined.decode("utf-8", errors="replace") == choice.message.content

    chunks = list(client.chat.completions.create(**args, stream=True))
    streamed = [
        e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content
    ]
    assert [_entry_key(e) for e in streamed] == [_entry_key(e) for e in entries]
    finals = [c.choices[0] for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].logprobs is None


def test_chat_without_logprobs_returns_none(server, client):
    out = client.chat.completions.create(model=server["name"], messages=MESSAGES, max_tokens=2, temperature=0)
    assert out.choices[0].logprobs is None


def test_completions_logprobs_legacy_shape_and_offsets(server, client):
    args = dict(model=server["name"], prompt="Квантование весов", max_tokens=10, temperature=0, logprobs=2)
    out = client.completions.create(**args)
    choice = out.choices[0]
    lp, text = choice.logprobs, choice.text
    assert choice.finish_reason == "length"
    n = out.usage.completion_tokens
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == n
    assert lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset)
    assert all(o < len(text) for o in lp.text_offset)
    rows = zip(lp.tokens, lp.token_logprobs, lp.top_logprobs, lp.text_offset, strict=True)
    for token, logprob, top, offset in rows:
        assert logprob <= 0 and 2 <= len(top) <= 3 and top[token] == pytest.approx(logprob)
        assert max(top.values()) == pytest.approx(logprob)  # greedy
        if not token.startswith("bytes:"):  # a whole-character token sits at its offset in the text
            assert text[offset : offset + len(token)] == token
    streamed = list(client.completions.create(**args, stream=True))
    parts = [c.choices[0].logprobs for c in streamed if c.choices and c.choices[0].logprobs]
    assert [t for p in parts for t in p.tokens] == lp.tokens
    assert [o for p in parts for o in p.text_offset] == lp.text_offset
    assert "".join(c.choices[0].text for c in streamed if c.choices) == text


def test_n_choices_are_seeded_reproducible_and_stream_interleaved(server, client):
    args = dict(
        model=server["name"], messages=MESSAGES, max_tokens=8, temperature=1.0, seed=11, n=3, logprobs=True
    )
    a = client.chat.completions.create(**args)
    b = client.chat.completions.create(**args)
    assert [c.index for c in a.choices] == [0, 1, 2]
    texts = [c.message.content for c in a.choices]
    assert texts == [c.message.content for c in b.choices]
    assert len(set(texts)) >= 2  # seed + i per choice: the choices differ
    single = client.chat.completions.create(**{**args, "n": 1})
    assert single.choices[0].message.content == texts[0]  # choice 0 draws with the request's seed
    assert a.usage.prompt_tokens == single.usage.prompt_tokens  # the prompt counts once
    assert a.usage.completion_tokens == sum(len(c.logprobs.content) for c in a.choices)

    body = {**args, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", server["base"] + "/v1/chat/completions", json=body, timeout=60) as resp:
        lines = [line for line in resp.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]" and lines.count("data: [DONE]") == 1
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    got = {0: "", 1: "", 2: ""}
    finishes = {0: [], 1: [], 2: []}
    for c in chunks[:-1]:
        (ch,) = c["choices"]
        got[ch["index"]] += ch["delta"].get("content") or ""
        if ch["finish_reason"]:
            finishes[ch["index"]].append(ch["finish_reason"])
    assert [got[i] for i in range(3)] == texts
    assert all(len(f) == 1 for f in finishes.values())
    # the same counts (how many prompt tokens came from the cache may differ: `a` left them there)
    counts = ("prompt_tokens", "completion_tokens", "total_tokens")
    assert chunks[-1]["choices"] == [] and {k: chunks[-1]["usage"][k] for k in counts} == {
        k: getattr(a.usage, k) for k in counts
    }


def test_disconnect_cancels_every_choice(server):
    base = server["base"]
    before = httpx.get(base + "/health").json()
    # greedy: a sampled end-of-turn token would finish a choice before the disconnect
    body = {"model": server["name"], "messages": MESSAGES, "max_tokens": 900, "temperature": 0}
    body |= {"stream": True, "n": 3}
    with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=30) as resp:
        lines = resp.iter_lines()
        got = [next(lines) for _ in range(12)]
        assert any('"index":2' in line for line in got)
    deadline = time.monotonic() + 20
    while True:
        health = httpx.get(base + "/health").json()
        if health["cancelled"] >= before["cancelled"] + 3 and health["running"] == 0:
            break
        assert time.monotonic() < deadline, f"slots not freed: {health}"
        time.sleep(0.1)
    assert health["free_slots"] == MAX_BATCH and health["completed"] == before["completed"]


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logprobs": True, "n": 0}, "n"),
        ({"n": 17}, "n"),
        ({"n": 2, "seed": 2**64}, "seed"),
    ],
    ids=["top-logprobs-21", "top-logprobs-without-logprobs", "n-0", "n-17", "seed-over-uint64"],
)
def test_bad_logprobs_and_n_name_the_param(server, client, payload, param):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=server["name"], messages=MESSAGES, max_tokens=2, **payload)
    assert info.value.body["param"] == param and param in info.value.body["message"]


def test_bad_completions_logprobs_name_the_param(server, client):
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=server["name"], prompt="слово", max_tokens=2, logprobs=6)
    assert info.value.body["param"] == "logprobs" and "logprobs" in info.value.body["message"]


def test_echo_with_logprobs_scores_the_prompt(server, client):
    """The request evaluation harnesses send to score a text (lm-eval's loglikelihood): the prompt's
    tokens come back with log P(token | the tokens before it), then the answer's."""
    from transformers import AutoModelForCausalLM

    prompt = "Квантование весов до 4 бит"
    args = dict(model=server["name"], prompt=prompt, max_tokens=1, temperature=0, logprobs=1, echo=True)
    out = client.completions.create(**args)
    lp, text = out.choices[0].logprobs, out.choices[0].text
    ids = _hf_tokenizer(server["folder"]).encode(prompt, add_special_tokens=False)
    n = len(ids)
    assert text.startswith(prompt) and len(lp.tokens) == n + 1 == len(lp.token_logprobs)
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset)
    # the server's numbers are the GPTQ model's: compare with the full-precision model it came from
    # (within quantization error), token by token
    fp = AutoModelForCausalLM.from_pretrained(str(server["folder"]) + "-fp32", local_files_only=True)
    with torch.no_grad():
        ref = torch.log_softmax(fp(torch.tensor([ids])).logits[0].float(), -1)
    expected = [float(ref[i - 1, ids[i]]) for i in range(1, n)]
    assert lp.token_logprobs[1:n] == pytest.approx(expected, abs=0.15)
    streamed = list(client.completions.create(**args, stream=True))
    scores = [
        x
        for c in streamed
        if c.choices and c.choices[0].logprobs
        for x in c.choices[0].logprobs.token_logprobs
    ]
    assert scores == lp.token_logprobs
    assert "".join(c.choices[0].text for c in streamed if c.choices) == text


async def test_n_over_capacity_and_a_full_queue_midway(server):
    """n that could never fit is a 400 naming n; a queue that fills at choice k answers 429 and
    takes back the k choices already queued."""
    from inference.engine import SamplingParams
    from inference.server import ServerConfig, create_app, load_served

    served = load_served(ServerConfig(server["folder"], max_batch=2, max_queue=0))
    app = create_app(served)  # no lifespan: the engine thread is not running, nothing drains
    # greedy never picks the special tokens (zeroed rows), so this one is still running after a step
    served.engine.submit([1, 2, 3], SamplingParams(max_tokens=2, temperature=0), lambda e: None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as cl:
        body = {"model": "default", "messages": MESSAGES, "max_tokens": 2}
        too_many = await cl.post("/v1/chat/completions", json={**body, "n": 3})
        busy = await cl.post("/v1/chat/completions", json={**body, "n": 2})
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "n"
    assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
    served.engine.step()  # the choice queued before the refusal leaves as cancelled
    stats = served.engine.stats()
    assert stats["cancelled"] == 1 and stats["waiting"] == 0 and stats["running"] == 1
