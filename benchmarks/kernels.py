"""Kernel speed on CUDA: quantized attention vs SDPA (FlashAttention backend) and SageAttention,
int4 GEMV/GEMM vs fp16 cuBLAS, decode attention over the KV cache vs SDPA on gathered rows.

Prints tables; no pass/fail. Without CUDA it says so and exits 0 (the interpreter is for
correctness, not speed). The *_rows functions return the numbers as dicts; benchmarks/gpu_all.py
uses them too (with a one-shot timer and toy sizes on the CPU in its --smoke mode).

    python benchmarks/kernels.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable
from functools import partial

import torch


def bench(fn) -> float:
    """Median milliseconds (triton.testing.do_bench: warm-up, L2 flush between runs)."""
    import triton.testing

    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


def once(fn) -> float:
    """Milliseconds of one call after one warm-up (the CPU smoke run: plumbing, not speed)."""
    fn()
    t0 = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - t0)


def graph_of(fn) -> torch.cuda.CUDAGraph:
    """fn captured in a CUDA graph (warmed up on a side stream first, as torch's docs prescribe)."""
    fn()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph


def _sdpa(device: str):
    """SDPA pinned to the FlashAttention backend on CUDA; float32 math on the CPU (no fp16 flash)."""
    sdpa = torch.nn.functional.scaled_dot_product_attention
    if device != "cuda":
        return lambda q, k, v, causal: sdpa(q.float(), k.float(), v.float(), is_causal=causal)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def flash(q, k, v, causal):
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return sdpa(q, k, v, is_causal=causal)

    return flash


def attention_rows(
    seqs: Iterable[int],
    head_dims: Iterable[int] = (64, 128),
    *,
    device: str = "cuda",
    tokens: int = 16384,
    heads: int = 32,
    timer: Callable = bench,
    sage: Callable | None = None,
    deadline: float | None = None,
) -> list[dict]:
    """B·T = `tokens` per shape, fp16. sage(q, k, v, causal) is timed beside ours when given."""
    from inference.kernels.quant_attention import attention, attention_exact

    sdpa = _sdpa(device)
    rows = []
    for d in head_dims:
        for t in seqs:
            for causal in (False, True):
                if deadline is not None and time.monotonic() > deadline:
                    return rows
                b = max(1, tokens // t)
                q, k, v = (torch.randn(b, heads, t, d, device=device, dtype=torch.float16) for _ in range(3))
                row = {"seq": t, "head_dim": d, "causal": causal, "batch": b}
                row["ours_ms"] = timer(partial(attention, q, k, v, causal=causal))
                row["sdpa_ms"] = timer(partial(sdpa, q, k, v, causal))
                if sage is not None:
                    try:
                        row["sage_ms"] = timer(partial(sage, q, k, v, causal))
                    except Exception as exc:  # the package's own kernels may not build here
                        row["sage_error"] = f"{type(exc).__name__}: {exc}"[:200]
                        sage = None
                row["tflops"] = 4 * b * heads * t * t * d * (0.5 if causal else 1.0) / row["ours_ms"] / 1e9
                n = min(t, 512)  # accuracy on a slice: the fp64 reference is O(T²) memory
                sl = [x[:1, :4, :n].contiguous() for x in (q, k, v)]
                exact = attention_exact(*sl, causal=causal)
                out = attention(*sl, causal=causal)
                row["cos"] = torch.nn.functional.cosine_similarity(
                    out.double().flatten(), exact.flatten(), dim=0
                ).item()
                rows.append(row)
                del q, k, v
    return rows


def attention_table(quick: bool) -> None:
    print(
        "\n## attention: B*T = 16k tokens, 32 heads, fp16; TFLOPS counts 4·B·H·Tq·Tk·D (halved when causal)\n"
    )
    print("| seq | head_dim | causal | ours ms | SDPA ms | ours TFLOPS | speedup | cos vs exact |")
    print("|---|---|---|---|---|---|---|---|")
    for r in attention_rows([1024, 4096] if quick else [1024, 2048, 4096, 8192, 16384]):
        print(
            f"| {r['seq']} | {r['head_dim']} | {r['causal']} | {r['ours_ms']:.3f} | {r['sdpa_ms']:.3f} | "
            f"{r['tflops']:.0f} | {r['sdpa_ms'] / r['ours_ms']:.2f}x | {r['cos']:.6f} |",
            flush=True,
        )


def random_layer(k: int, n: int, group: int = 128):
    """A packed 4-bit GPTQ layer (sym, v1 zeros) with random codes."""
    from inference.gptq.format import pack_linear

    gen = torch.Generator().manual_seed(k * 7 + n)
    return pack_linear(
        torch.randint(0, 16, (n, k), dtype=torch.int32, generator=gen),
        torch.full((k // group, n), 8, dtype=torch.int32),
        torch.rand(k // group, n, generator=gen) * 0.01,
        (torch.arange(k) // group).to(torch.int32),
        bits=4,
    )


def matmul_rows(
    shapes: Iterable[tuple[int, int]],
    ms: Iterable[int] = (1, 4, 16),
    *,
    device: str = "cuda",
    timer: Callable = bench,
    group: int = 128,
    deadline: float | None = None,
) -> list[dict]:
    """int4 (auto path: GEMV for M <= GEMV_MAX_M) vs the tiled kernel vs fp16 (cuBLAS on CUDA).
    On CUDA also the auto path replayed from a CUDA graph: the kernel without Python's launch cost."""
    from inference.kernels.int4_gemv import GEMV_LIMIT
    from inference.kernels.int4_matmul import int4_matmul

    rows = []
    for k, n in shapes:
        layer = random_layer(k, n, group)
        qw, qz, sc = (t.to(device) for t in (layer.qweight, layer.qzeros, layer.scales))
        w = layer.dequantize(torch.float16 if device == "cuda" else torch.float32).to(device)  # (N, K)
        for m in ms:
            if deadline is not None and time.monotonic() > deadline:
                return rows
            x = torch.randn(m, k, device=device, dtype=torch.float16)
            xw = x if device == "cuda" else x.float()
            auto = partial(int4_matmul, x, qw, qz, sc, None)
            row = {"m": m, "k": k, "n": n}
            row["int4_ms"] = timer(auto)
            row["tiled_ms"] = timer(partial(int4_matmul, x, qw, qz, sc, None, gemv=False))
            if m <= GEMV_LIMIT:
                row["gemv_ms"] = timer(partial(int4_matmul, x, qw, qz, sc, None, gemv=True))
            if device == "cuda":
                row["int4_graph_ms"] = timer(graph_of(auto).replay)
            row["fp16_ms"] = timer(partial(torch.matmul, xw, w.t()))
            row["weight_gbs"] = (qw.numel() * 4 + sc.numel() * 2) / row["int4_ms"] / 1e6
            ref = (xw @ w.t()).float()
            row["max_err"] = (auto().float() - ref).abs().max().item() / ref.abs().max().item()
            rows.append(row)
    return rows


LLAMA7B_SHAPES = [(4096, 4096), (4096, 11008), (11008, 4096)]  # (K, N) of the attention and MLP linears


def matmul_table(quick: bool) -> None:
    print("\n## int4 (group 128, sym, v1) vs fp16 torch.matmul (cuBLAS), Llama-7B linear shapes\n")
    print(
        "int4 = int4_matmul as QuantLinear calls it (GEMV for M <= 4); graph = the same replayed from a "
        "CUDA graph (no Python launch cost); tiled/GEMV = each kernel forced."
    )
    print(
        "| M | K | N | int4 ms | graph ms | tiled ms | GEMV ms | fp16 ms | speedup | graph speedup | GB/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in matmul_rows(LLAMA7B_SHAPES[:1] if quick else LLAMA7B_SHAPES, (1, 4, 16, 64)):
        print(
            f"| {r['m']} | {r['k']} | {r['n']} | {r['int4_ms']:.4f} | {r['int4_graph_ms']:.4f} | "
            f"{r['tiled_ms']:.4f} | {r.get('gemv_ms', float('nan')):.4f} | {r['fp16_ms']:.4f} | "
            f"{r['fp16_ms'] / r['int4_ms']:.2f}x | {r['fp16_ms'] / r['int4_graph_ms']:.2f}x | "
            f"{r['weight_gbs']:.0f} |",
            flush=True,
        )


def _gathered_sdpa(q, kc, vc, slots, kv_len):
    """Today's batched decode: copy the rows out of the cache, then SDPA (GQA heads expanded by SDPA)."""
    return torch.nn.functional.scaled_dot_product_attention(
        q, kc[slots, :, :kv_len], vc[slots, :, :kv_len], enable_gqa=True
    )


def decode_rows(
    batches: Iterable[int] = (1, 8),
    kv_lens: Iterable[int] = (1024, 4096),
    *,
    device: str = "cuda",
    tmax: int = 4096,
    hq: int = 32,
    hkv: int = 8,
    d: int = 128,
    timer: Callable = bench,
) -> list[dict]:
    from inference.kernels.decode_attention import choose_num_splits, decode_attention
    from inference.kernels.quant_attention import attention_exact

    sdpa = torch.nn.functional.scaled_dot_product_attention
    rows = []
    for b in batches:
        s = 2 * b  # more slots than sequences, so the rows read are a scattered subset
        kc, vc = (torch.randn(s, hkv, tmax, d, device=device, dtype=torch.float16) for _ in range(2))
        slots = torch.randperm(s, device=device)[:b]
        q = torch.randn(b, hq, 1, d, device=device, dtype=torch.float16)
        for kv_len in kv_lens:
            lens = torch.full((b,), kv_len, device=device, dtype=torch.int32)
            call = partial(decode_attention, q, kc, vc, slots, lens)
            kg, vg = kc[slots, :, :kv_len], vc[slots, :, :kv_len]  # (B, Hkv, kv_len, D)
            f = (lambda t: t) if device == "cuda" else (lambda t: t.float())
            row = {"batch": b, "kv_len": kv_len, "splits": choose_num_splits(b, hkv, tmax, q.device)}
            row["ours_ms"] = timer(call)
            if device == "cuda":
                row["ours_graph_ms"] = timer(graph_of(call).replay)
            row["sdpa_ms"] = timer(partial(sdpa, f(q), f(kg), f(vg), enable_gqa=True))
            row["sdpa_gather_ms"] = timer(partial(_gathered_sdpa, f(q), f(kc), f(vc), slots, kv_len))
            exact = attention_exact(q, kg, vg)
            row["cos"] = torch.nn.functional.cosine_similarity(
                call().double().flatten(), exact.flatten(), dim=0
            ).item()
            row["gbs"] = 2 * b * hkv * kv_len * d * 2 / row["ours_ms"] / 1e6
            rows.append(row)
    return rows


def decode_table(quick: bool) -> None:
    hq, hkv, tmax, d = 32, 8, 4096, 128
    print(
        f"\n## decode attention: 1 query token per sequence, fp16 cache (S, {hkv}, {tmax}, {d}), "
        f"GQA {hq}:{hkv}\n"
    )
    print(
        "ours reads the cache rows in place (graph: the same call replayed from a CUDA graph); SDPA "
        "runs on K/V already gathered from the rows, SDPA+gather also times that copy (today's path)."
    )
    print(
        "| B | kv_len | splits | ours ms | ours graph ms | SDPA ms | SDPA+gather ms | ours GB/s (K+V) | cos vs exact |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in decode_rows((1, 8), (1024,) if quick else (1024, 4096)):
        print(
            f"| {r['batch']} | {r['kv_len']} | {r['splits']} | {r['ours_ms']:.4f} | {r['ours_graph_ms']:.4f} | "
            f"{r['sdpa_ms']:.4f} | {r['sdpa_gather_ms']:.4f} | {r['gbs']:.0f} | {r['cos']:.6f} |",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer shapes")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print(
            "no CUDA device: kernel timings need a GPU (the kernels' correctness tests run under "
            "TRITON_INTERPRET=1 instead); nothing to measure"
        )
        return
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    matmul_table(args.quick)
    attention_table(args.quick)
    decode_table(args.quick)


if __name__ == "__main__":
    sys.exit(main())
