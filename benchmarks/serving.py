"""Serving benchmark: KV cache vs recompute, continuous batching, time to first token.

    python benchmarks/serving.py                 # CPU: a tiny random Llama-shaped model
    python benchmarks/serving.py --size 1b       # a real-size random GPTQ 4-bit model (CUDA)
    python benchmarks/serving.py --json

Prefix reuse is off except where it is measured: the runs repeat the same prompts.
Prints numbers; never pass/fail. Targets from issue 5: the cache decodes >= 5x faster than
recomputing the whole sequence at 256 tokens; 8 concurrent requests give >= 3x the aggregate tokens/s
of 1. Random weights are fine here: speed does not depend on what the weights say.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import torch

from inference.engine import Engine, EngineConfig, SamplingParams
from inference.loader import pick_attention
from inference.model import ModelConfig, Transformer, rope_frequencies
from inference.testing.random_gptq import to_random_gptq_

SIZES = {
    # hidden, layers, heads, kv heads, intermediate, vocab
    "tiny": (256, 4, 8, 4, 768, 4096),
    "small": (512, 6, 8, 4, 1536, 8192),  # ~30M parameters: weights no longer fit the CPU caches
    "1b": (2048, 16, 32, 8, 8192, 32000),  # Llama-3.2-1B-like shapes
    "7b": (4096, 32, 32, 8, 14336, 32000),  # Llama-3-8B-like shapes
}


def build(size: str, device: str, gptq: bool) -> Transformer:
    hidden, layers, heads, kv, inter, vocab = SIZES[size]
    cfg = ModelConfig(
        family="llama",
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=inter,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv,
        head_dim=hidden // heads,
        max_position_embeddings=4096,
        rope_theta=500000.0,
    )
    dtype = torch.float16 if device == "cuda" else torch.float32
    attn, _ = pick_attention(device)
    torch.manual_seed(0)
    with torch.device(device):
        model = Transformer(cfg, attn).to(dtype)
    for p in model.parameters():
        p.data.normal_(0, 0.02)
    model.inv_freq = rope_frequencies(cfg)[0].to(device)  # .to(fp16) above rounded the RoPE frequencies
    if gptq:
        to_random_gptq_(model)
    return model.eval()


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def best_of(repeats: int, fn):
    """Run fn() repeats times, keep the fastest: a shared CPU makes single runs noisy."""
    return max((fn() for _ in range(repeats)), key=lambda r: r[0])


@torch.inference_mode()
def decode_cache_vs_recompute(
    model: Transformer,
    device: str,
    tokens: int,
    prompt_len: int = 16,
    repeats: int = 2,
    cuda_graphs: bool = True,
) -> dict:
    dtype = next(model.parameters()).dtype
    cfg = EngineConfig(
        1, prompt_len + tokens + 1, device=device, dtype=dtype, cuda_graphs=cuda_graphs, prefix_reuse_min=0
    )
    engine = Engine(model, None, cfg)
    prompt = list(range(1, prompt_len + 1))
    params = SamplingParams(max_tokens=tokens, temperature=0)
    engine.generate(prompt, SamplingParams(max_tokens=8, temperature=0))  # warm-up

    def with_cache():
        sync(device)
        t0 = time.perf_counter()
        ids, _, _ = engine.generate(prompt, params)
        sync(device)
        return len(ids) / (time.perf_counter() - t0), ids

    def recompute_all():
        seq = torch.tensor([prompt], device=device)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(tokens):  # no cache: every step runs the whole sequence again
            nxt = model(seq, last_only=True)[0, -1].argmax()
            seq = torch.cat([seq, nxt.view(1, 1)], dim=1)
        sync(device)
        return tokens / (time.perf_counter() - t0), seq[0, prompt_len:].tolist()

    cached, ids = best_of(repeats, with_cache)
    recompute, ids2 = best_of(repeats, recompute_all)
    same = ids == ids2
    return {
        "tokens": tokens,
        "cuda_graphs": engine.graphs is not None,
        "cache_tok_s": cached,
        "recompute_tok_s": recompute,
        "speedup": cached / recompute,
        "same_tokens": same,
    }


@torch.inference_mode()
def batching(
    model: Transformer, device: str, concurrent: int, tokens: int, prompt_len: int = 32, repeats: int = 2
) -> dict:
    dtype = next(model.parameters()).dtype
    engine = Engine(
        model,
        None,
        EngineConfig(concurrent, prompt_len + tokens + 1, device=device, dtype=dtype, prefix_reuse_min=0),
    )

    def run(n: int) -> tuple[float, dict]:
        events: dict[int, list] = {}
        sync(device)
        t0 = time.perf_counter()
        reqs = []
        for i in range(n):
            events[i] = []
            reqs.append(
                engine.submit(
                    [(i * 7 + j) % 1000 + 1 for j in range(prompt_len)],
                    SamplingParams(max_tokens=tokens, temperature=0.8, seed=i),
                    events[i].append,
                )
            )
        while any(not e or e[-1].finish_reason is None for e in events.values()):
            engine.step()
        sync(device)
        wall = time.perf_counter() - t0
        generated = sum(len(r.output) for r in reqs)
        ttft = [r.first_token_at - r.submitted for r in reqs]
        res = {
            "tok_s": generated / wall,
            "ttft_ms_mean": 1000 * sum(ttft) / n,
            "ttft_ms_max": 1000 * max(ttft),
        }
        return res["tok_s"], res

    out = {n: best_of(repeats, lambda n=n: run(n))[1] for n in (1, concurrent)}
    return {
        "concurrent": concurrent,
        "tokens_each": tokens,
        "prompt_len": prompt_len,
        "one": out[1],
        "many": out[concurrent],
        "gain": out[concurrent]["tok_s"] / out[1]["tok_s"],
    }


@torch.inference_mode()
def ttft_long(model: Transformer, device: str, prompt_len: int, repeats: int = 3) -> float:
    """Milliseconds from submit to first token for one long prompt (prefill-bound)."""
    dtype = next(model.parameters()).dtype
    engine = Engine(
        model, None, EngineConfig(1, prompt_len + 2, device=device, dtype=dtype, prefix_reuse_min=0)
    )
    prompt = [(7 * j) % 1000 + 1 for j in range(prompt_len)]

    def once() -> tuple[float, float]:
        ev: list = []
        sync(device)
        req = engine.submit(prompt, SamplingParams(max_tokens=1, temperature=0), ev.append)
        while req.first_token_at is None:  # a prompt longer than prefill_chunk takes several steps
            engine.step()
        sync(device)
        ms = 1000 * (req.first_token_at - req.submitted)
        return -ms, ms

    once()  # warm-up
    return best_of(repeats, once)[1]


@torch.inference_mode()
def ttft_shared_prefix(model: Transformer, device: str, prompt_len: int, reuse: bool) -> float:
    """Milliseconds to the first token of a prompt whose first prompt_len - 16 tokens (a system
    prompt, the earlier turns of a chat) a finished request left in the cache."""
    dtype = next(model.parameters()).dtype
    cfg = EngineConfig(1, prompt_len + 8, device=device, dtype=dtype, prefix_reuse_min=16 if reuse else 0)
    engine = Engine(model, None, cfg)
    shared = [(7 * j) % 1000 + 1 for j in range(prompt_len - 16)]
    params = SamplingParams(max_tokens=1, temperature=0)
    engine.generate([*shared, *range(1, 17)], params)  # leaves the shared part in its slot

    def once(tail: int) -> tuple[float, float]:
        sync(device)
        req = engine.submit([*shared, *range(tail, tail + 16)], params, lambda _ev: None)
        while req.first_token_at is None:
            engine.step()
        sync(device)
        ms = 1000 * (req.first_token_at - req.submitted)
        return -ms, ms

    tails = itertools.count(100, 20)  # each repeat ends differently: only the shared part is cached
    return best_of(3, lambda: once(next(tails)))[1]


@torch.inference_mode()
def stall_while_prefilling(model: Transformer, device: str, prompt_len: int, chunk: int) -> float:
    """Longest gap (ms) between two tokens of a running stream while a prompt_len-token prompt
    arrives: the whole prefill (chunk 0) or one chunk of it per step."""
    dtype = next(model.parameters()).dtype
    cfg = EngineConfig(
        2, prompt_len + 80, device=device, dtype=dtype, prefill_chunk=chunk, prefix_reuse_min=0
    )
    engine = Engine(model, None, cfg)
    stamps: list[float] = []

    def on_token(_ev) -> None:
        sync(device)
        stamps.append(time.perf_counter())

    done: list = []
    engine.submit([1, 2, 3, 4], SamplingParams(max_tokens=60, temperature=0), on_token)
    for _ in range(10):
        engine.step()
    engine.submit([(7 * j) % 1000 + 1 for j in range(prompt_len)], SamplingParams(max_tokens=2), done.append)
    start = len(stamps)
    while not done or done[-1].finish_reason is None:
        engine.step()
    gaps = [b - a for a, b in itertools.pairwise(stamps[start - 1 :])]
    return 1000 * max(gaps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=list(SIZES), default=None, help="default: tiny on CPU, 1b on CUDA")
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--concurrent", type=int, default=8)
    ap.add_argument("--long-prompt", type=int, default=1024, help="prompt length for the prefill-bound TTFT")
    ap.add_argument("--prefill-chunk", type=int, default=EngineConfig.prefill_chunk)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: torch's default); 1 on a shared box"
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    size = args.size or ("1b" if device == "cuda" else "tiny")
    gptq = device == "cuda"
    model = build(size, device, gptq)
    where = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    what = f"{size} ({'GPTQ 4-bit' if gptq else 'fp32'}) on {where}"
    dec = decode_cache_vs_recompute(model, device, args.tokens)
    # side by side on CUDA: the same decode launched op by op from Python
    eager = (
        decode_cache_vs_recompute(model, device, args.tokens, cuda_graphs=False) if device == "cuda" else None
    )
    bat = batching(model, device, args.concurrent, min(args.tokens, 128))
    long_ttft = ttft_long(model, device, args.long_prompt)
    prefix = {r: ttft_shared_prefix(model, device, args.long_prompt, r) for r in (False, True)}
    stall = {c: stall_while_prefilling(model, device, args.long_prompt, c) for c in (0, args.prefill_chunk)}
    if args.json:
        out = {
            "model": what,
            "decode": dec,
            "decode_eager": eager,
            "batching": bat,
            "ttft_long_ms": long_ttft,
            "stall_ms": stall,
            "ttft_shared_prefix_ms": prefix,
        }
        print(json.dumps(out))
        return
    print(f"model: {what}")
    print(
        f"decode {dec['tokens']} tokens: KV cache {dec['cache_tok_s']:.1f} tok/s, full recompute "
        f"{dec['recompute_tok_s']:.1f} tok/s -> {dec['speedup']:.1f}x (target >= 5x; same tokens: "
        f"{dec['same_tokens']}; CUDA graphs: {dec['cuda_graphs']})"
    )
    if eager is not None:
        print(
            f"  eager decode (no CUDA graphs): KV cache {eager['cache_tok_s']:.1f} tok/s -> "
            f"{eager['speedup']:.1f}x over recompute; graphs speed decode up "
            f"{dec['cache_tok_s'] / eager['cache_tok_s']:.1f}x"
        )
    print(
        f"continuous batching, {bat['tokens_each']} tokens each: 1 request {bat['one']['tok_s']:.1f} tok/s, "
        f"{bat['concurrent']} concurrent {bat['many']['tok_s']:.1f} tok/s -> {bat['gain']:.1f}x (target >= 3x)"
    )
    print(
        f"time to first token ({bat['prompt_len']}-token prompt): alone {bat['one']['ttft_ms_mean']:.1f} ms; "
        f"with {bat['concurrent']} arriving together mean {bat['many']['ttft_ms_mean']:.1f} ms, "
        f"max {bat['many']['ttft_ms_max']:.1f} ms; {args.long_prompt}-token prompt alone {long_ttft:.1f} ms"
    )
    print(
        f"time to first token, {args.long_prompt}-token prompt whose first {args.long_prompt - 16} tokens are "
        f"cached: {prefix[False]:.1f} ms recomputed, {prefix[True]:.1f} ms reusing the prefix"
    )
    print(
        f"a running stream's longest wait for its next token while a {args.long_prompt}-token prompt arrives: "
        f"{stall[0]:.1f} ms prefilling it whole, {stall[args.prefill_chunk]:.1f} ms in chunks of {args.prefill_chunk}"
    )


if __name__ == "__main__":
    main()
