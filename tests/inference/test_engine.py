"""Engine: KV-cache decoding equals full recomputation, continuous batching, sampling, limits."""

from __future__ import annotations

import itertools

import pytest
import torch

from inference.engine import ContextLengthError, Engine, EngineConfig, QueueFullError
from inference.loader import load_model
from inference.sampling import SamplingParams
from tests.inference._llm_helpers import save_hf, tiny_hf_model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = save_hf(tiny_hf_model("qwen2", seed=3), tmp_path_factory.mktemp("engine"))
    return load_model(path)[0]


def greedy_by_recompute(model, prompt: list[int], n: int) -> list[int]:
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
    return seq[len(prompt) :]


def run_all(engine: Engine, events: dict) -> None:
    while any(not e or e[-1].finish_reason is None for e in events.values()):
        engine.step()


def test_kv_cache_decoding_equals_full_recompute(model):
    engine = Engine(model, None, EngineConfig(max_batch=2, max_context=128))
    prompt = [5, 17, 99, 3, 250, 41]
    ids, _, finish = engine.generate(prompt, SamplingParams(max_tokens=24, temperature=0))
    assert finish == "length" and len(ids) == 24
    assert ids == greedy_by_recompute(model, prompt, 24)


def test_requests_join_a_running_batch_and_match_solo_runs(model):
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11], [12], [13, 14, 15, 16], [200, 201]]
    params = SamplingParams(max_tokens=10, temperature=0)
    solo = [
        Engine(model, None, EngineConfig(max_batch=1, max_context=64)).generate(p, params)[0] for p in prompts
    ]
    engine = Engine(model, None, EngineConfig(max_batch=3, max_context=64))
    events: dict[int, list] = {}
    for i, prompt in enumerate(prompts[:2]):
        events[i] = []
        engine.submit(prompt, params, events[i].append)
    for _ in range(4):  # the first two are mid-generation when the others arrive
        engine.step()
    for i, prompt in enumerate(prompts[2:], start=2):
        events[i] = []
        engine.submit(prompt, params, events[i].append)
    assert engine.stats()["waiting"] == 3
    engine.step()
    assert engine.stats()["running"] == 3  # one slot was free: one joined, two still wait
    run_all(engine, events)
    got = [[t for e in events[i] for t in e.token_ids] for i in range(len(prompts))]
    assert got == solo
    assert engine.stats()["free_slots"] == 3


def test_queue_is_bounded(model):
    engine = Engine(model, None, EngineConfig(max_batch=1, max_context=64, max_queue=2))
    for _ in range(3):  # one for the free slot, two for the queue
        engine.submit([1, 2], SamplingParams(max_tokens=2), lambda e: None)
    with pytest.raises(QueueFullError, match="max_queue 2"):
        engine.submit([1, 2], SamplingParams(max_tokens=2), lambda e: None)


def test_context_limit(model):
    engine = Engine(model, None, EngineConfig(max_batch=1, max_context=16))
    with pytest.raises(ContextLengthError, match="16"):
        engine.submit(list(range(16)), SamplingParams(), lambda e: None)
    ids, _, finish = engine.generate(list(range(10)), SamplingParams(max_tokens=100, temperature=0))
    assert finish == "length" and len(ids) == 6  # prompt + completion fill the 16 positions


def test_stop_token_ids_and_cancel_free_the_slot(model):
    engine = Engine(model, None, EngineConfig(max_batch=1, max_context=64))
    first = engine.generate([7, 8, 9], SamplingParams(max_tokens=5, temperature=0))[0]
    ids, _, finish = engine.generate(
        [7, 8, 9], SamplingParams(max_tokens=5, temperature=0, stop_token_ids=(first[2],))
    )
    assert finish == "stop" and ids == first[:3]
    events: list = []
    req = engine.submit([7, 8, 9], SamplingParams(max_tokens=50), events.append)
    engine.step()
    engine.cancel(req)
    engine.step()
    assert events[-1].finish_reason == "cancelled" and engine.stats()["free_slots"] == 1
    assert engine.stats()["cancelled"] == 1


def test_logprobs_follow_the_models_distribution(model):
    engine = Engine(model, None, EngineConfig(max_batch=2, max_context=64))
    prompt = [5, 17, 99, 3]
    events: list = []
    engine.submit(prompt, SamplingParams(max_tokens=3, temperature=0.7, seed=1, logprobs=3), events.append)
    while not events or events[-1].finish_reason is None:
        engine.step()
    tokens = [t for e in events for t in e.token_ids]
    lps = [lp for e in events for lp in (e.logprobs or [])]
    assert [lp.token_id for lp in lps] == tokens
    with torch.no_grad():
        for i, lp in enumerate(lps):
            expected = torch.log_softmax(model(torch.tensor([prompt + tokens[:i]]))[0, -1], -1)
            assert abs(lp.logprob - float(expected[tokens[i]])) < 1e-4
            assert [t for t, _ in lp.top] == expected.topk(3).indices.tolist()
            assert all(a >= b for (_, a), (_, b) in itertools.pairwise(lp.top))
    plain: list = []
    engine.submit(prompt, SamplingParams(max_tokens=3, temperature=0.7, seed=1), plain.append)
    while not plain or plain[-1].finish_reason is None:
        engine.step()
    assert [t for e in plain for t in e.token_ids] == tokens  # asking for logprobs changes nothing else
    assert all(e.logprobs is None for e in plain)


def test_chunked_prefill_gives_the_same_tokens(model):
    prompt = [(7 * i + 3) % 300 for i in range(45)]
    params = SamplingParams(max_tokens=8, temperature=0)
    whole = Engine(model, None, EngineConfig(max_batch=1, max_context=64, prefill_chunk=0))
    chunked = Engine(model, None, EngineConfig(max_batch=1, max_context=64, prefill_chunk=8))
    assert chunked.generate(prompt, params)[0] == whole.generate(prompt, params)[0]
    assert whole.generate(prompt, params)[0] == greedy_by_recompute(model, prompt, 8)


def test_a_long_prompt_does_not_stall_running_streams(model):
    engine = Engine(model, None, EngineConfig(max_batch=2, max_context=128, prefill_chunk=8))
    running: list = []
    engine.submit([1, 2, 3], SamplingParams(max_tokens=30, temperature=0), running.append)
    engine.step()
    assert len(running) == 1
    late: list = []
    engine.submit(
        [(5 * i) % 300 for i in range(40)], SamplingParams(max_tokens=4, temperature=0), late.append
    )
    steps = 0
    while not late:
        before = len(running)
        engine.step()
        steps += 1
        assert len(running) == before + 1  # the running request got its token in every step
    assert steps == 5  # 40 prompt tokens in chunks of 8


def test_a_shared_prefix_is_reused_and_gives_the_same_tokens(model):
    system = [(11 * i + 5) % 300 for i in range(30)]
    params = SamplingParams(max_tokens=6, temperature=0)
    fresh = Engine(model, None, EngineConfig(max_batch=2, max_context=96, prefix_reuse_min=0))
    reuse = Engine(model, None, EngineConfig(max_batch=2, max_context=96))
    first, _, _ = reuse.generate([*system, 7, 8, 9], params)
    assert reuse.stats()["cached_prompt_tokens"] == 0
    # a follow-up turn: the whole first exchange, then new tokens
    follow_up = [*system, 7, 8, 9, *first, 40, 41]
    assert reuse.generate(follow_up, params)[0] == fresh.generate(follow_up, params)[0]
    assert reuse.stats()["cached_prompt_tokens"] == len(system) + 3 + len(first) - 1
    # another question with the same system prompt reuses just the shared part
    other = [*system, 100, 101]
    before = reuse.stats()["cached_prompt_tokens"]
    assert reuse.generate(other, params)[0] == fresh.generate(other, params)[0]
    assert reuse.stats()["cached_prompt_tokens"] - before == len(system)
    assert fresh.stats()["cached_prompt_tokens"] == 0


def test_a_prompt_equal_to_the_cached_tokens_still_gets_its_logits(model):
    engine = Engine(model, None, EngineConfig(max_batch=1, max_context=96, prefix_reuse_min=4))
    prompt = [(3 * i + 1) % 300 for i in range(20)]
    params = SamplingParams(max_tokens=5, temperature=0)
    once = engine.generate(prompt, params)[0]
    assert engine.generate(prompt, params)[0] == once  # 19 tokens reused, the last one recomputed
    assert engine.stats()["cached_prompt_tokens"] == 19


def test_prompt_logprobs_score_every_prompt_token(model):
    """What evaluation harnesses ask for (completions echo + logprobs): log P(token i | tokens < i)."""
    engine = Engine(model, None, EngineConfig(max_batch=1, max_context=64, prefill_chunk=5))
    prompt = [(13 * i + 2) % 300 for i in range(17)]
    params = SamplingParams(max_tokens=2, temperature=0, logprobs=1, prompt_logprobs=2)
    with torch.no_grad():
        expected = torch.log_softmax(model(torch.tensor([prompt]))[0], -1)  # (T, V)
    for _ in range(2):  # the second time the prompt is in the cache, and is computed again anyway
        events: list = []
        engine.submit(prompt, params, events.append)
        while not events or events[-1].finish_reason is None:
            engine.step()
        lps = events[0].logprobs
        assert [lp.token_id for lp in lps[:17]] == prompt and lps[0].logprob is None
        for i in range(1, 17):
            assert abs(lps[i].logprob - float(expected[i - 1, prompt[i]])) < 1e-4
            assert [t for t, _ in lps[i].top] == expected[i - 1].topk(2).indices.tolist()
        assert len(lps) == 18 and lps[17].token_id == events[0].token_ids[0]  # then the first answer token
        assert len(events[1].logprobs) == 1 and events[1].cached_tokens == 0
