"""LangChain (`langchain-openai`) and LiteLLM against `serve-llm`, the way their users call them
(issue 14, item 4): chat, legacy completions, streaming, n, log-probabilities, stop, seed, several
prompts per request, a context overflow recognised by each library's own detector, tools refused.

Every answer is compared with what the official `openai` client gets for the same request (the
`client` fixture; its own coverage is in test_server.py and test_openai_compat.py), so a library
that reshapes a request or misreads a response shows up as a difference. The shared `serve-llm`
process of tests/inference/conftest.py serves the tiny model on 127.0.0.1; nothing leaves the host.
"""

from __future__ import annotations

import functools
import operator
import os

import openai
import pytest

# LiteLLM fetches its model cost map from the network at import unless told to use its bundled copy
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

QUESTION = "Что такое GPTQ?"
MESSAGES = [{"role": "user", "content": QUESTION}]
PROMPTS = ["Квантование весов", "GPTQ uses second-order"]
LONG = "слово " * 3000  # ~18k tokens against the tiny model's 1,024
TOOL = {
    "type": "function",
    "function": {"name": "lookup", "description": "d", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture(scope="module")
def litellm():
    import litellm

    litellm.suppress_debug_info = True  # no "Give Feedback" banner on every expected error
    return litellm


@pytest.fixture
def lite(server):
    """Arguments every LiteLLM call takes: our server as an OpenAI-compatible provider, no retries."""
    return {"api_base": server["base"] + "/v1", "api_key": "unused", "num_retries": 0}


def _chat(server, **kw):
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=server["name"], base_url=server["base"] + "/v1", api_key="unused", max_retries=0, **kw
    )


def _reference(client, server, **kw):
    """The official client's chat answer (texts of all choices) for the same request."""
    out = client.chat.completions.create(model=server["name"], messages=MESSAGES, **kw)
    return [c.message.content for c in out.choices]


# ---- LangChain --------------------------------------------------------------------------------------
def test_langchain_chat_invoke_stream_logprobs_stop(server, client):
    chat = _chat(server, max_tokens=12, temperature=0)
    [expected] = _reference(client, server, max_tokens=12, temperature=0)

    answer = chat.invoke(QUESTION)
    assert answer.content == expected
    assert answer.response_metadata["finish_reason"] == "length"
    assert answer.usage_metadata["output_tokens"] == 12

    parts = list(_chat(server, max_tokens=12, temperature=0, stream_usage=True).stream(QUESTION))
    streamed = functools.reduce(operator.add, parts)
    assert len(parts) > 2 and streamed.content == expected
    assert streamed.usage_metadata["output_tokens"] == 12  # from the include_usage chunk

    scored = chat.bind(logprobs=True, top_logprobs=2).invoke(QUESTION)
    content = scored.response_metadata["logprobs"]["content"]
    assert len(content) == 12 and all(len(t["top_logprobs"]) == 2 for t in content)
    assert "".join(bytes(t["bytes"]).decode("utf-8", "replace") for t in content) == expected

    stop = expected[len(expected) // 2 : len(expected) // 2 + 3]
    assert stop.strip(), f"pick a visible stop string from {expected!r}"
    assert chat.invoke(QUESTION, stop=[stop]).content == expected[: expected.find(stop)]


def test_langchain_n_choices_with_a_seed_repeat(server, client):
    from langchain_core.messages import HumanMessage

    kw = dict(max_tokens=6, temperature=0.8, seed=3, n=2)
    chat = _chat(server, **kw)
    runs = [[g.text for g in chat.generate([[HumanMessage(QUESTION)]]).generations[0]] for _ in range(2)]
    assert runs[0] == runs[1] == _reference(client, server, **kw)
    assert runs[0][0] != runs[0][1]  # choice i samples with seed + i


def test_langchain_completions_batch_is_one_request_per_batch(server, client):
    from langchain_openai import OpenAI

    sent: list[str] = []
    llm = OpenAI(
        model=server["name"],
        base_url=server["base"] + "/v1",
        api_key="unused",
        max_retries=0,
        max_tokens=5,
        temperature=0,
        http_client=openai.DefaultHttpxClient(event_hooks={"request": [lambda r: sent.append(r.url.path)]}),
    )
    singles = [
        client.completions.create(model=server["name"], prompt=p, max_tokens=5, temperature=0).choices[0].text
        for p in PROMPTS
    ]
    # OpenAI.batch sends all prompts as one `prompt` list (up to its batch_size of 20)
    assert llm.batch(PROMPTS) == singles
    assert sent == ["/v1/completions"]
    assert "".join(llm.stream(PROMPTS[0])) == singles[0]


def test_langchain_recognises_a_context_overflow_and_a_refused_tool(server):
    from langchain_core.exceptions import ContextOverflowError

    chat = _chat(server, max_tokens=5)
    with pytest.raises(ContextOverflowError, match="maximum context length is 1024 tokens"):
        chat.invoke(LONG)
    with pytest.raises(openai.BadRequestError) as info:
        chat.bind_tools([TOOL]).invoke(QUESTION)
    assert info.value.status_code == 400 and info.value.body["param"] == "tools"


# ---- LiteLLM ----------------------------------------------------------------------------------------
def test_litellm_chat_stream_n_logprobs_seed_stop(server, client, litellm, lite):
    model = f"openai/{server['name']}"
    [expected] = _reference(client, server, max_tokens=12, temperature=0)

    out = litellm.completion(model=model, messages=MESSAGES, max_tokens=12, temperature=0, **lite)
    assert out.choices[0].message.content == expected and out.choices[0].finish_reason == "length"
    assert out.usage.completion_tokens == 12

    chunks = list(
        litellm.completion(
            model=model,
            messages=MESSAGES,
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
            **lite,
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    assert chunks[-1].usage.completion_tokens == 12

    kw = dict(max_tokens=6, temperature=0.8, seed=3, n=2, logprobs=True, top_logprobs=2)
    sampled = litellm.completion(model=model, messages=MESSAGES, **kw, **lite)
    assert [c.message.content for c in sampled.choices] == _reference(client, server, **kw)
    assert all(len(c.logprobs.content) == 6 for c in sampled.choices)
    assert all(len(t.top_logprobs) == 2 for c in sampled.choices for t in c.logprobs.content)

    stop = expected[len(expected) // 2 : len(expected) // 2 + 3]
    cut = litellm.completion(
        model=model, messages=MESSAGES, max_tokens=12, temperature=0, stop=[stop], **lite
    )
    assert cut.choices[0].message.content == expected[: expected.find(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_litellm_text_completion_of_several_prompts(server, client, litellm, lite):
    singles = [
        client.completions.create(model=server["name"], prompt=p, max_tokens=5, temperature=0)
        for p in PROMPTS
    ]
    out = litellm.text_completion(
        model=f"text-completion-openai/{server['name']}", prompt=PROMPTS, max_tokens=5, temperature=0, **lite
    )
    assert [c.text for c in out.choices] == [s.choices[0].text for s in singles]
    assert out.usage.prompt_tokens == sum(s.usage.prompt_tokens for s in singles)


def test_litellm_recognises_a_context_overflow_and_a_refused_tool(server, litellm, lite):
    name = server["name"]
    with pytest.raises(litellm.ContextWindowExceededError):
        litellm.completion(
            model=f"openai/{name}", messages=[{"role": "user", "content": LONG}], max_tokens=5, **lite
        )
    with pytest.raises(litellm.ContextWindowExceededError):
        litellm.text_completion(model=f"text-completion-openai/{name}", prompt=LONG, max_tokens=5, **lite)
    with pytest.raises(litellm.BadRequestError) as info:
        litellm.completion(model=f"openai/{name}", messages=MESSAGES, tools=[TOOL], max_tokens=3, **lite)
    assert info.value.status_code == 400 and "tools is not supported" in str(info.value)
