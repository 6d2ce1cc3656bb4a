"""Quantized attention: Triton kernel vs the torch twin of its math, and accuracy vs exact fp64 attention.

Runs under TRITON_INTERPRET=1 on the CPU (tests/inference/conftest.py) and natively on CUDA. The
interpreter has no bfloat16, so bf16 is only exercised on CUDA; INT8 tl.dot with INT32 output works
in the interpreter (numpy integer matmul) and needs nothing special.
"""

from __future__ import annotations

import pytest
import torch

from inference.errors import KernelInputError
from inference.kernels.configs import ATTN_CANDIDATES, AttnConfig, attention_config
from inference.kernels.quant_attention import (
    attention,
    attention_auto,
    attention_exact,
    attention_reference,
)

pytestmark = pytest.mark.interpreter


def qkv(b, hq, hkv, tq, tk, d, *, k_bias=0.0, seed=0, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, hq, tq, d, generator=gen)
    k = torch.randn(b, hkv, tk, d, generator=gen)
    if k_bias:  # a large per-channel offset shared by every key: the outlier case smoothing removes
        k = k + k_bias * torch.randn(1, hkv, 1, d, generator=gen)
    v = torch.randn(b, hkv, tk, d, generator=gen)
    return (t.half().to(device) for t in (q, k, v))


def metrics(out, exact):
    o, e = out.double().flatten().cpu(), exact.double().flatten().cpu()
    cos = torch.nn.functional.cosine_similarity(o, e, dim=0).item()
    rel_l1 = ((o - e).abs().sum() / e.abs().sum()).item()
    rmse = (o - e).pow(2).mean().sqrt().item()
    return cos, rel_l1, rmse


# (name, batch, Hq, Hkv, Tq, Tk, head_dim, causal, K bias)
SUITE = [
    ("random", 2, 4, 4, 123, 123, 64, False, 0.0),
    ("random d128", 1, 2, 2, 17, 200, 128, False, 0.0),
    ("biased K", 1, 4, 4, 64, 200, 64, False, 8.0),
    ("causal", 2, 2, 2, 123, 123, 64, True, 0.0),
    ("bottom-right q=1", 1, 4, 2, 1, 257, 128, True, 0.0),
    ("bottom-right q=16", 1, 4, 2, 16, 257, 64, True, 0.0),
    ("GQA 8:2 d96", 1, 8, 2, 17, 130, 96, True, 4.0),
    ("MQA", 1, 4, 1, 33, 65, 64, False, 0.0),
]


@pytest.mark.parametrize(
    ("name", "b", "hq", "hkv", "tq", "tk", "d", "causal", "bias"), SUITE, ids=[s[0] for s in SUITE]
)
def test_accuracy_against_exact_attention(kernel_device, name, b, hq, hkv, tq, tk, d, causal, bias):
    q, k, v = qkv(b, hq, hkv, tq, tk, d, k_bias=bias, device=kernel_device)
    out = attention(q, k, v, causal=causal)
    assert out.shape == q.shape and out.dtype == q.dtype
    cos, rel_l1, rmse = metrics(out, attention_exact(q, k, v, causal=causal))
    print(f"{name:<20} cos {cos:.6f}  relL1 {rel_l1:.4f}  rmse {rmse:.5f}")
    assert cos >= 0.9995 and rel_l1 <= 0.02, (cos, rel_l1)
    # the kernel computes the same quantized math as its torch twin up to fp16 output rounding
    ref = attention_reference(q.cpu(), k.cpu(), v.cpu(), causal=causal)
    assert (out.float().cpu() - ref.float()).abs().max().item() < 2e-3


# tiles smaller and larger than the quantization blocks (Q 128 rows, K 64 keys): the same numbers
CONFIGS = [AttnConfig(16, 16, 4, 1), AttnConfig(32, 128, 4, 1), AttnConfig(64, 32, 4, 1)]


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"m{c.block_m}n{c.block_n}")
def test_every_tile_shape_computes_the_same_quantized_attention(kernel_device, cfg, causal):
    """T = 83 queries, 150 keys: no length is a multiple of a tile, causal tiles end mid-block, and
    some tiles have an unmasked range before their diagonal blocks."""
    q, k, v = qkv(1, 4, 2, 83, 150, 64, k_bias=2.0, seed=9, device=kernel_device)
    out = attention(q, k, v, causal=causal, config=cfg)
    ref = attention_reference(q.cpu(), k.cpu(), v.cpu(), causal=causal)
    assert (out.float().cpu() - ref.float()).abs().max().item() < 2e-3
    assert metrics(out, attention_exact(q, k, v, causal=causal))[0] >= 0.9995


@pytest.mark.slow
@pytest.mark.parametrize("d", [64, 96, 128])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"m{c.block_m}n{c.block_n}")
def test_tile_sweep_with_padded_batches(kernel_device, d, causal, cfg):
    """Every tile shape, head dim and mask at once: GQA, per-sequence key lengths (one shorter than
    the queries, so some rows see no key), T not a multiple of any block."""
    q, k, v = qkv(2, 4, 2, 37, 141, d, k_bias=3.0, seed=d, device=kernel_device)
    lens = torch.tensor([141, 30], device=kernel_device)
    out = attention(q, k, v, causal=causal, kv_lens=lens, config=cfg)
    ref = attention_reference(q.cpu(), k.cpu(), v.cpu(), causal=causal, kv_lens=lens.cpu())
    assert (out.float().cpu() - ref.float()).abs().max().item() < 2e-3
    exact = attention_exact(q, k, v, causal=causal, kv_lens=lens)
    assert metrics(out[:1], exact[:1])[0] >= 0.9995


def test_causal_tiles_never_read_keys_past_their_last_row(kernel_device):
    """Key blocks wholly above a tile's diagonal are skipped, not masked: NaN values there (which a
    masked block would turn into NaN outputs, since 0 * NaN = NaN in P·V) never reach rows 0..31."""
    q, k, v = qkv(1, 1, 1, 64, 64, 64, seed=10, device=kernel_device)
    v[:, :, 32:] = float("nan")
    out = attention(q, k, v, causal=True, config=AttnConfig(16, 16, 4, 1))
    exact = attention_exact(q[:, :, :32], k[:, :, :32], v[:, :, :32], causal=True)
    assert torch.isfinite(out[:, :, :32]).all()
    assert metrics(out[:, :, :32], exact)[0] >= 0.9995


def test_launch_table_covers_the_served_head_dims():
    for d in (64, 96, 128):
        for dev in (
            (torch.device("cpu"), torch.device("cuda", 0))
            if torch.cuda.is_available()
            else [torch.device("cpu")]
        ):
            cfg = attention_config(d, dev)
            cfg.check()
    assert attention_config(128, torch.device("cpu")).num_stages == 1  # the interpreter
    for cfg in ATTN_CANDIDATES:
        cfg.check()
    with pytest.raises(KernelInputError, match="block_m must be"):
        AttnConfig(96, 64).check()


def test_smoothing_matters_on_biased_keys(kernel_device):
    q, k, v = qkv(1, 2, 2, 64, 128, 64, k_bias=20.0, seed=4, device=kernel_device)
    exact = attention_exact(q, k, v)
    smooth = metrics(attention(q, k, v, smooth_k=True), exact)
    raw = metrics(attention(q, k, v, smooth_k=False), exact)
    assert smooth[0] >= 0.9995 and smooth[1] <= 0.02
    assert raw[1] > 4 * smooth[1] and raw[0] < smooth[0]  # clearly worse without smoothing


def test_softmax_scale_is_applied(kernel_device):
    q, k, v = qkv(1, 2, 2, 20, 40, 64, seed=5, device=kernel_device)
    out = attention(q, k, v, sm_scale=0.3)
    assert metrics(out, attention_exact(q, k, v, sm_scale=0.3))[0] >= 0.9995
    assert metrics(out, attention_exact(q, k, v))[0] < 0.999


def test_causal_bottom_right_alignment_matches_the_last_rows_of_full_causal(kernel_device):
    q, k, v = qkv(1, 2, 2, 40, 40, 64, seed=6, device=kernel_device)
    full = attention_exact(q, k, v, causal=True)
    tail = attention(q[:, :, -7:].contiguous(), k, v, causal=True)  # chunked prefill of the last 7 tokens
    assert metrics(tail, full[:, :, -7:])[0] >= 0.9995


def test_padded_batch_with_kv_lens(kernel_device):
    q, k, v = qkv(3, 2, 1, 1, 70, 64, seed=7, device=kernel_device)
    lens = torch.tensor([70, 9, 33], device=kernel_device)
    k[1, :, 9:] = 500.0  # garbage in the padding must not leak into scores, means or scales
    v[1, :, 9:] = float("nan")
    out = attention(q, k, v, causal=True, kv_lens=lens)
    assert torch.isfinite(out).all()
    for i, n in enumerate(lens.tolist()):
        single = attention_exact(q[i : i + 1], k[i : i + 1, :, :n], v[i : i + 1, :, :n], causal=True)
        assert metrics(out[i : i + 1], single)[0] >= 0.9995


def test_rows_that_see_no_key_are_zero(kernel_device):
    q, k, v = qkv(1, 1, 1, 8, 8, 64, seed=8, device=kernel_device)
    out = attention(q, k, v, causal=True, kv_lens=torch.tensor([3], device=kernel_device))
    # offset = 3 - 8: rows 0..4 see no key; row 5 sees key 0
    assert torch.count_nonzero(out[0, 0, :5]) == 0
    assert torch.count_nonzero(out[0, 0, 5]) > 0


def test_head_dim_above_128_is_refused_and_auto_falls_back(kernel_device):
    q, k, v = qkv(1, 2, 2, 5, 9, 160, device=kernel_device)
    with pytest.raises(KernelInputError, match="head_dim=160"):
        attention(q, k, v)
    out = attention_auto(q, k, v, causal=True)
    assert metrics(out, attention_exact(q, k, v, causal=True))[0] > 0.99999


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda q, k, v: (q.float(), k, v), "q: dtype torch.float32"),
        (lambda q, k, v: (q, k.transpose(2, 3), v), "not contiguous|does not match"),
        (
            lambda q, k, v: (q, torch.cat([k, k[:, :1]], 1), torch.cat([v, v[:, :1]], 1)),
            "3 KV heads do not divide 4",
        ),
        (lambda q, k, v: (q, k, v[:, :, :5].contiguous()), "v: shape"),
        (lambda q, k, v: (q[0], k, v), "expected 4-D"),
    ],
)
def test_bad_inputs_are_named(kernel_device, mutate, message):
    q, k, v = qkv(1, 4, 2, 4, 8, 64, device=kernel_device)
    with pytest.raises(KernelInputError, match=message):
        attention(*mutate(q, k, v))


def test_bad_kv_lens_are_named(kernel_device):
    q, k, v = qkv(2, 2, 2, 1, 8, 64, device=kernel_device)
    with pytest.raises(KernelInputError, match=r"kv_lens: values must lie in 0\.\.8"):
        attention(q, k, v, kv_lens=torch.tensor([3, 9], device=kernel_device))
    with pytest.raises(KernelInputError, match=r"kv_lens: expected an int tensor of shape \(2,\)"):
        attention(q, k, v, kv_lens=torch.tensor([3], device=kernel_device))
