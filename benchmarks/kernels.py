"""Kernel speed on CUDA: quantized attention vs SDPA (FlashAttention backend), int4 matmul vs fp16,
decode attention over the KV cache vs SDPA on gathered rows.

Prints tables; no pass/fail. Without CUDA it says so and exits 0 (the interpreter is for
correctness, not speed).

    python benchmarks/kernels.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

import torch


def bench(fn) -> float:
    """Median milliseconds (triton.testing.do_bench: warm-up, L2 flush between runs)."""
    import triton.testing

    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


def attention_table(quick: bool) -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from inference.kernels.quant_attention import attention, attention_exact

    print(
        "\n## attention: B*T = 16k tokens, 32 heads, fp16; TOPS counts 4·B·H·Tq·Tk·D (halved when causal)\n"
    )
    print("| seq | head_dim | causal | ours ms | SDPA ms | ours TOPS | SDPA TOPS | speedup | cos vs exact |")
    print("|---|---|---|---|---|---|---|---|---|")
    seqs = [1024, 4096] if quick else [1024, 2048, 4096, 8192, 16384]
    for d in (64, 128):
        for t in seqs:
            for causal in (False, True):
                b, h = max(1, 16384 // t), 32
                q, k, v = (torch.randn(b, h, t, d, device="cuda", dtype=torch.float16) for _ in range(3))
                ours = bench(partial(attention, q, k, v, causal=causal))
                with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                    ref = bench(
                        partial(torch.nn.functional.scaled_dot_product_attention, q, k, v, is_causal=causal)
                    )
                flops = 4 * b * h * t * t * d * (0.5 if causal else 1.0)
                n = min(t, 512)  # accuracy on a slice: the fp64 reference is O(T²) memory
                out = attention(
                    q[:1, :4, :n].contiguous(),
                    k[:1, :4, :n].contiguous(),
                    v[:1, :4, :n].contiguous(),
                    causal=causal,
                )
                exact = attention_exact(q[:1, :4, :n], k[:1, :4, :n], v[:1, :4, :n], causal=causal)
                cos = torch.nn.functional.cosine_similarity(
                    out.double().flatten(), exact.flatten(), dim=0
                ).item()
                print(
                    f"| {t} | {d} | {causal} | {ours:.3f} | {ref:.3f} | {flops / ours / 1e9:.0f} | "
                    f"{flops / ref / 1e9:.0f} | {ref / ours:.2f}x | {cos:.6f} |",
                    flush=True,
                )


def matmul_table(quick: bool) -> None:
    from inference.gptq.format import pack_linear
    from inference.kernels.int4_matmul import int4_matmul

    print("\n## int4 (group 128, sym, v1) vs fp16 torch.matmul, Llama-7B linear shapes\n")
    print("| M (tokens) | K | N | int4 ms | fp16 ms | speedup | int4 GB/s (weights) |")
    print("|---|---|---|---|---|---|---|")
    shapes = [(4096, 4096), (4096, 11008), (11008, 4096)]
    for k, n in shapes[:1] if quick else shapes:
        w_int = torch.randint(0, 16, (n, k), dtype=torch.int32)
        layer = pack_linear(
            w_int,
            torch.full((k // 128, n), 8, dtype=torch.int32),
            torch.rand(k // 128, n) * 0.01,
            (torch.arange(k) // 128).to(torch.int32),
            bits=4,
        )
        qw, qz, sc = (t.cuda() for t in (layer.qweight, layer.qzeros, layer.scales))
        w16 = layer.dequantize(torch.float16).cuda()  # (N, K)
        for m in (1, 16, 64):
            x = torch.randn(m, k, device="cuda", dtype=torch.float16)
            ours = bench(partial(int4_matmul, x, qw, qz, sc, None))
            ref = bench(partial(torch.matmul, x, w16.t()))
            err = (int4_matmul(x, qw, qz, sc, None).float() - (x @ w16.t()).float()).abs().max().item()
            gbs = (qw.numel() * 4 + sc.numel() * 2) / ours / 1e6
            print(
                f"| {m} | {k} | {n} | {ours:.4f} | {ref:.4f} | {ref / ours:.2f}x | {gbs:.0f} | max err {err:.3g}",
                flush=True,
            )


def _graph_of(fn) -> torch.cuda.CUDAGraph:
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


def _gathered_sdpa(q, kc, vc, slots, kv_len):
    """Today's batched decode: copy the rows out of the cache, then SDPA (GQA heads expanded by SDPA)."""
    return torch.nn.functional.scaled_dot_product_attention(
        q, kc[slots, :, :kv_len], vc[slots, :, :kv_len], enable_gqa=True
    )


def decode_table(quick: bool) -> None:
    from inference.kernels.decode_attention import choose_num_splits, decode_attention
    from inference.kernels.quant_attention import attention_exact

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
    sdpa = torch.nn.functional.scaled_dot_product_attention
    for b in (1, 8):
        s = 2 * b  # more slots than sequences, so the rows read are a scattered subset
        kc, vc = (torch.randn(s, hkv, tmax, d, device="cuda", dtype=torch.float16) for _ in range(2))
        slots = torch.randperm(s, device="cuda")[:b]
        q = torch.randn(b, hq, 1, d, device="cuda", dtype=torch.float16)
        for kv_len in (1024,) if quick else (1024, 4096):
            lens = torch.full((b,), kv_len, device="cuda", dtype=torch.int32)
            call = partial(decode_attention, q, kc, vc, slots, lens)
            ours = bench(call)
            ours_graph = bench(_graph_of(call).replay)
            kg, vg = kc[slots, :, :kv_len], vc[slots, :, :kv_len]  # (B, Hkv, kv_len, D)
            ref = bench(partial(sdpa, q, kg, vg, enable_gqa=True))
            ref_gather = bench(partial(_gathered_sdpa, q, kc, vc, slots, kv_len))
            exact = attention_exact(q, kg, vg)
            cos = torch.nn.functional.cosine_similarity(
                call().double().flatten(), exact.flatten(), dim=0
            ).item()
            gbs = 2 * b * hkv * kv_len * d * 2 / ours / 1e6
            print(
                f"| {b} | {kv_len} | {choose_num_splits(b, hkv, tmax, q.device)} | {ours:.4f} | "
                f"{ours_graph:.4f} | {ref:.4f} | {ref_gather:.4f} | {gbs:.0f} | {cos:.6f} |",
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
