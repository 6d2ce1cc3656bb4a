"""The decode step on static buffers (what CUDA graphs replay): same tokens as the eager engine, and a
step whose ops and shapes do not depend on positions, slots or lengths and never sync with the host.

On the CPU the Triton kernels run under the interpreter and the step runs eagerly on the static
buffers (`capture=False`); the CUDA test at the end captures and replays real graphs.
"""

from __future__ import annotations

import pytest
import torch

from inference.cuda_graphs import DecodeGraphs, bucket_sizes
from inference.engine import Engine, EngineConfig, KVCache, SamplingParams
from inference.loader import load_model
from inference.testing.random_gptq import to_random_gptq_
from tests.inference._dispatch_probe import RecordOps
from tests.inference._llm_helpers import save_hf, tiny_hf_model

pytestmark = pytest.mark.interpreter

PROMPTS = [[1, 2, 3, 4, 5], [9, 8, 7], [40, 41], [100, 7, 7, 7, 250, 3, 1]]


@pytest.fixture(scope="module")
def quant_model(tmp_path_factory):
    """Llama-shaped, GQA 2:1, head_dim 64, fp16, int4 linears and quantized attention (Triton)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    path = save_hf(
        tiny_hf_model("llama", hidden_size=128, num_attention_heads=2, num_key_value_heads=1, head_dim=64),
        tmp_path_factory.mktemp("graphs"),
    )
    model, _, name = load_model(path, device=device, dtype=torch.float16, attention="quant")
    assert name == "quant"
    return to_random_gptq_(model, group=32, backend="triton"), device


def engine_for(model, device: str, *, static: bool, max_batch: int = 4, **config) -> Engine:
    cfg = EngineConfig(
        max_batch=max_batch, max_context=64, device=device, dtype=torch.float16, cuda_graphs=False, **config
    )
    engine = Engine(model, None, cfg)
    if static:  # what the engine sets up on CUDA, minus the capture
        engine.cache = KVCache(model.cfg, max_batch, 64, device, torch.float16, k_mean=True, scratch=1)
        engine.graphs = DecodeGraphs(model, engine.cache, max_batch, capture=False)
    return engine


def generate_all(engine: Engine, prompts, max_tokens: int = 6) -> list[list[int]]:
    events = {i: [] for i in range(len(prompts))}
    for i, prompt in enumerate(prompts[:3]):
        engine.submit(prompt, SamplingParams(max_tokens=max_tokens, temperature=0), events[i].append)
    engine.step()
    engine.step()
    # a fourth request joins mid-generation: batches of 3 (padded to 4) then 4
    engine.submit(prompts[3], SamplingParams(max_tokens=max_tokens - 2, temperature=0), events[3].append)
    while any(not e or e[-1].finish_reason is None for e in events.values()):
        engine.step()
    return [[t for ev in events[i] for t in ev.token_ids] for i in range(len(prompts))]


def test_bucket_sizes_cover_every_batch():
    assert bucket_sizes(1) == [1]
    assert bucket_sizes(8) == [1, 2, 4, 8]
    assert bucket_sizes(6) == [1, 2, 4, 6]
    graphs_like = bucket_sizes(6)
    assert all(any(b >= n for b in graphs_like) for n in range(1, 7))


@pytest.mark.slow  # 25-70 s of interpreted kernels on 2 cores; CI's slow step runs it
def test_static_buffer_decode_gives_the_eager_engines_tokens(quant_model):
    model, device = quant_model
    eager = generate_all(engine_for(model, device, static=False), PROMPTS)
    static = generate_all(engine_for(model, device, static=True), PROMPTS)
    assert static == eager
    assert [len(t) for t in eager] == [6, 6, 6, 4]


@pytest.mark.slow  # 25-70 s of interpreted kernels on 2 cores; CI's slow step runs it
def test_chunked_prefill_through_the_quantized_kernels_gives_the_same_tokens(quant_model):
    """Chunks of 3 prompt tokens attend to the cached keys before them (bottom-right causal)."""
    model, device = quant_model
    whole = generate_all(engine_for(model, device, static=True), PROMPTS)
    assert generate_all(engine_for(model, device, static=True, prefill_chunk=3), PROMPTS) == whole


def _prompt_key_mean(engine: Engine, slot: int, n: int, layer: int = 0) -> torch.Tensor:
    return engine.cache.k[layer][slot, :, :n].float().mean(dim=1)  # (Hkv, D)


def _run_all(engine: Engine, prompts: list[list[int]]) -> list:
    reqs = []
    for p in prompts:
        reqs.append(engine.submit(p, SamplingParams(max_tokens=2, temperature=0), lambda ev: None))
    while engine.running or engine.waiting:
        engine.step()
    return reqs


@pytest.mark.slow  # 25-70 s of interpreted kernels on 2 cores; CI's slow step runs it
def test_k_mean_is_the_prompts_mean_when_a_chunk_boundary_splits_it(quant_model):
    """KVView documents k_mean as "the keys' mean over each slot's prompt"; with chunked prefill the
    second prompt of a step gets the budget's leftover (here 1 token), and k_mean becomes the key of
    token 0 alone (typically the BOS / attention-sink key, the worst smoothing vector)."""
    model, device = quant_model
    engine = engine_for(model, device, static=False, max_batch=2, prefill_chunk=8, prefix_reuse_min=0)
    a = [(5 * i + 1) % 200 for i in range(7)]
    b = [(7 * i + 3) % 200 for i in range(20)]
    _ra, rb = _run_all(engine, [a, b])
    got = engine.cache.k_mean[0][rb.slot]
    assert torch.allclose(got, _prompt_key_mean(engine, rb.slot, len(b)), atol=1e-2), (
        "k_mean holds the mean of the first chunk only; first-chunk key vs k_mean max diff "
        f"{(got - engine.cache.k[0][rb.slot, :, 0].float()).abs().max().item():.3g}"
    )


def test_k_mean_is_refreshed_when_a_prefix_is_reused(quant_model):
    """With prefix reuse the prefill starts at position > 0, so KVView.update never rewrites k_mean:
    the slot keeps the previous request's mean (its whole, different prompt)."""
    model, device = quant_model
    engine = engine_for(model, device, static=False, max_batch=2, prefix_reuse_min=4)
    shared = [(11 * i + 5) % 200 for i in range(6)]
    first = [*shared, *[(3 * i + 100) % 200 for i in range(30)]]
    (r1,) = _run_all(engine, [first])
    (r2,) = _run_all(engine, [[*shared, 9, 9, 9]])
    assert r2.slot == r1.slot and r2.cached_tokens == len(shared)
    got = engine.cache.k_mean[0][r2.slot]
    assert torch.allclose(got, _prompt_key_mean(engine, r2.slot, len(shared) + 3), atol=1e-2)


def test_decode_step_is_graph_safe(quant_model):
    """Same ops on the same shapes whatever the positions, slots and lengths; no host sync."""
    model, device = quant_model
    cache = KVCache(model.cfg, 3, 64, device, torch.float16, k_mean=True, scratch=1)
    graphs = DecodeGraphs(model, cache, 3, capture=False)
    bucket = graphs.bucket_for(3)
    signatures = []
    for ids, positions, slots in (([5, 6, 7], [4, 9, 2], [0, 2, 1]), ([1, 2, 3], [33, 0, 17], [1, 0, 2])):
        bucket.inputs.copy_(torch.tensor([ids, positions, slots]))
        with torch.inference_mode(), RecordOps() as rec:
            logits = graphs._step(bucket)
        assert rec.syncs == [], rec.syncs
        assert logits.shape == (3, model.cfg.vocab_size)
        signatures.append(rec.signature)
    assert len(signatures[0]) > 100  # the recorder saw the whole forward
    assert signatures[0] == signatures[1]


def test_padding_rows_never_touch_a_requests_slot(quant_model):
    model, device = quant_model
    cache = KVCache(model.cfg, 4, 64, device, torch.float16, k_mean=True, scratch=1)
    graphs = DecodeGraphs(model, cache, 4, capture=False)
    before = [k.clone() for k in cache.k]
    logits = graphs.run([5], [3], [2])  # one row in the bucket of 1
    assert logits.shape == (1, model.cfg.vocab_size)
    logits = graphs.run([5, 6, 7], [3, 4, 5], [2, 0, 1])  # three rows in the bucket of 4: one padding row
    assert logits.shape == (3, model.cfg.vocab_size)
    for layer, k in enumerate(cache.k):
        changed = (k != before[layer]).flatten(1).any(dim=1).nonzero().flatten().tolist()
        assert changed == [0, 1, 2, 4]  # the three requests' slots and the scratch slot, never slot 3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_captured_graphs_replay_the_eager_engines_tokens(quant_model):
    model, device = quant_model
    cfg = EngineConfig(max_batch=4, max_context=64, device=device, dtype=torch.float16, cuda_graphs=True)
    engine = Engine(model, None, cfg)
    assert engine.graphs is not None and all(b.graph is not None for b in engine.graphs.buckets)
    eager = generate_all(engine_for(model, device, static=False), PROMPTS)
    assert generate_all(engine, PROMPTS) == eager
