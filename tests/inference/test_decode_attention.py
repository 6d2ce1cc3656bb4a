"""Decode attention over the KV cache: accuracy vs exact attention on the gathered rows, the torch twin
of its quantized math, smoothing, padding garbage, input checks, and the absence of host syncs.

Runs under TRITON_INTERPRET=1 on the CPU (tests/inference/conftest.py) and natively on CUDA, where a
real CUDA-graph capture/replay test runs too.
"""

from __future__ import annotations

import pytest
import torch

from inference.errors import KernelInputError
from inference.kernels.decode_attention import decode_attention, decode_attention_reference
from inference.kernels.quant_attention import attention_exact
from tests.inference._dispatch_probe import RecordOps

pytestmark = pytest.mark.interpreter


def make_cache(s, hq, hkv, tmax, d, b, *, k_bias=0.0, seed=0, device="cpu"):
    """q (B, Hq, 1, D) and one layer's cache k/v (S, Hkv, Tmax, D), fp16."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, hq, 1, d, generator=gen)
    k = torch.randn(s, hkv, tmax, d, generator=gen)
    if k_bias:  # a large per-channel offset shared by every key: the outlier case smoothing removes
        k = k + k_bias * torch.randn(1, hkv, 1, d, generator=gen)
    v = torch.randn(s, hkv, tmax, d, generator=gen)
    return (t.half().to(device) for t in (q, k, v))


def exact_rows(q, kc, vc, slots, lens, **kw):
    """attention_exact per batch row on cache[slots[b], :, :lens[b]], stacked to (B, Hq, 1, D)."""
    rows = []
    for i, (s, n) in enumerate(zip(slots.tolist(), lens.tolist(), strict=True)):
        rows.append(attention_exact(q[i : i + 1], kc[s : s + 1, :, :n], vc[s : s + 1, :, :n], **kw))
    return torch.cat(rows)


def metrics(out, exact):
    o, e = out.double().flatten().cpu(), exact.double().flatten().cpu()
    cos = torch.nn.functional.cosine_similarity(o, e, dim=0).item()
    rel_l1 = ((o - e).abs().sum() / e.abs().sum()).item()
    return cos, rel_l1


def valid_key_mean(kc, slots, lens):
    """k_mean (S, Hkv, D) float32: each used slot's mean over its valid keys, zeros elsewhere."""
    mean = torch.zeros(kc.shape[0], kc.shape[1], kc.shape[3], dtype=torch.float32, device=kc.device)
    for s, n in zip(slots.tolist(), lens.tolist(), strict=True):
        mean[s] = kc[s, :, :n].float().mean(dim=1)
    return mean


# (name, S, Hq, Hkv, Tmax, D, slots, kv_lens, index dtype, num_splits: None = chosen from shapes)
SUITE = [
    ("d64 MHA auto-split", 4, 4, 4, 200, 64, [3, 0, 1], [1, 100, 200], torch.int64, None),
    ("d96 GQA 8:2 1 split", 3, 8, 2, 130, 96, [2, 2, 0], [130, 65, 7], torch.int64, 1),
    ("d128 MQA 4:1 2 splits", 5, 4, 1, 200, 128, [4, 1, 3, 0], [200, 1, 129, 64], torch.int32, 2),
    ("d128 GQA 8:2 3 splits", 2, 8, 2, 150, 128, [1, 0], [150, 99], torch.int32, 3),
    ("d64 GQA 8:2 4 splits", 3, 8, 2, 200, 64, [0, 2, 0, 1], [33, 200, 190, 1], torch.int64, 4),
]


@pytest.mark.parametrize(
    ("name", "s", "hq", "hkv", "tmax", "d", "slots", "lens", "idx_dtype", "splits"),
    SUITE,
    ids=[c[0] for c in SUITE],
)
def test_accuracy_against_exact_attention_on_gathered_rows(
    kernel_device, name, s, hq, hkv, tmax, d, slots, lens, idx_dtype, splits
):
    q, kc, vc = make_cache(s, hq, hkv, tmax, d, len(slots), device=kernel_device)
    slots_t = torch.tensor(slots, dtype=idx_dtype, device=kernel_device)
    lens_t = torch.tensor(lens, dtype=idx_dtype, device=kernel_device)
    out = decode_attention(q, kc, vc, slots_t, lens_t, num_splits=splits)
    assert out.shape == q.shape and out.dtype == q.dtype
    exact = exact_rows(q, kc, vc, slots_t, lens_t)
    cos, rel_l1 = metrics(out, exact)
    print(f"{name:<24} cos {cos:.6f}  relL1 {rel_l1:.4f}")
    assert cos >= 0.9995 and rel_l1 <= 0.02, (cos, rel_l1)
    for i in range(len(slots)):  # every row on its own too: a wrong slot or length hides in an average
        assert metrics(out[i], exact[i])[0] >= 0.9995, (i, slots[i], lens[i])
    # the kernel computes the same quantized math as its torch twin, up to fp16 rounding of P/output
    ref = decode_attention_reference(q, kc, vc, slots_t, lens_t)
    assert (out.float() - ref.float()).abs().max().item() < 2e-3


def test_split_count_does_not_change_the_result(kernel_device):
    q, kc, vc = make_cache(3, 4, 2, 200, 64, 2, seed=1, device=kernel_device)
    slots = torch.tensor([2, 0], device=kernel_device)
    lens = torch.tensor([200, 70], device=kernel_device)
    outs = [decode_attention(q, kc, vc, slots, lens, num_splits=n).float() for n in (1, 2, 4)]
    for other in outs[1:]:
        assert (other - outs[0]).abs().max().item() < 2e-3


def test_smoothing_with_k_mean_matters_on_biased_keys(kernel_device):
    q, kc, vc = make_cache(3, 4, 2, 160, 64, 2, k_bias=20.0, seed=4, device=kernel_device)
    slots = torch.tensor([2, 0], device=kernel_device)
    lens = torch.tensor([160, 97], device=kernel_device)
    exact = exact_rows(q, kc, vc, slots, lens)
    k_mean = valid_key_mean(kc, slots, lens)
    out = decode_attention(q, kc, vc, slots, lens, k_mean)
    smooth = metrics(out, exact)
    raw = metrics(decode_attention(q, kc, vc, slots, lens), exact)
    print(
        f"biased K: smoothed cos {smooth[0]:.6f} relL1 {smooth[1]:.4f}; raw cos {raw[0]:.6f} relL1 {raw[1]:.4f}"
    )
    assert smooth[0] >= 0.9995 and smooth[1] <= 0.02
    assert raw[1] > 4 * smooth[1] and raw[0] < smooth[0]  # clearly worse without smoothing
    ref = decode_attention_reference(q, kc, vc, slots, lens, k_mean)
    assert (out.float() - ref.float()).abs().max().item() < 2e-3


def test_garbage_past_kv_len_does_not_change_the_output(kernel_device):
    q, kc, vc = make_cache(4, 8, 2, 200, 128, 3, seed=7, device=kernel_device)
    slots = torch.tensor([3, 1, 0], device=kernel_device)
    lens = torch.tensor([9, 64, 131], device=kernel_device)
    k_mean = valid_key_mean(kc, slots, lens)
    dirty_k, dirty_v = kc.clone(), vc.clone()
    for s, n in zip(slots.tolist(), lens.tolist(), strict=True):
        dirty_k[s, :, n:] = 1e4  # a stale sequence's keys: would swamp scores, means and scales
        dirty_v[s, :, n:] = -3e4
    dirty_k[2], dirty_v[2] = float("nan"), float("nan")  # a slot nobody in the batch uses
    for splits in (1, 4):
        clean = decode_attention(q, kc, vc, slots, lens, k_mean, num_splits=splits)
        dirty = decode_attention(q, dirty_k, dirty_v, slots, lens, k_mean, num_splits=splits)
        assert torch.isfinite(dirty).all()
        assert torch.equal(clean, dirty)


def test_softmax_scale_is_applied(kernel_device):
    q, kc, vc = make_cache(2, 4, 2, 90, 64, 2, seed=5, device=kernel_device)
    slots = torch.tensor([1, 0], device=kernel_device)
    lens = torch.tensor([90, 40], device=kernel_device)
    out = decode_attention(q, kc, vc, slots, lens, sm_scale=0.3)
    assert metrics(out, exact_rows(q, kc, vc, slots, lens, sm_scale=0.3))[0] >= 0.9995
    assert metrics(out, exact_rows(q, kc, vc, slots, lens))[0] < 0.999


def test_bfloat16_runs_on_cuda_and_is_refused_by_the_interpreter(kernel_device):
    q, kc, vc = make_cache(2, 4, 2, 70, 64, 2, seed=6, device=kernel_device)
    q, kc, vc = q.bfloat16(), kc.bfloat16(), vc.bfloat16()
    slots = torch.tensor([1, 0], device=kernel_device)
    lens = torch.tensor([70, 3], device=kernel_device)
    if kernel_device == "cpu":
        with pytest.raises(KernelInputError, match="bfloat16 needs CUDA"):
            decode_attention(q, kc, vc, slots, lens)
    else:
        out = decode_attention(q, kc, vc, slots, lens)
        assert out.dtype == torch.bfloat16
        assert metrics(out, exact_rows(q, kc, vc, slots, lens))[0] >= 0.999


def _shift_heads(args):
    q, kc, vc, slots, lens, _mean = args
    return q, kc[:, :1].expand(-1, 3, -1, -1), vc[:, :1].expand(-1, 3, -1, -1), slots, lens, None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda a: (a[0][0], *a[1:]), r"q: expected 4-D \(batch, heads, 1, head_dim\)"),
        (lambda a: (a[0].expand(-1, -1, 2, -1), *a[1:]), r"q: expected 4-D"),
        (lambda a: (a[0].float(), *a[1:]), "q: dtype torch.float32"),
        (lambda a: (a[0], a[1].float(), *a[2:]), "k_cache: dtype torch.float32 differs from q's"),
        (lambda a: (a[0], a[1], a[2][:, :, :5], *a[3:]), "v_cache: shape"),
        (lambda a: (a[0], a[1][0], *a[2:]), "k_cache: expected 4-D"),
        (_shift_heads, "3 KV heads do not divide 4"),
        (lambda a: (*a[:3], a[3][:1], *a[4:]), r"slots: expected an int32/int64 tensor of shape \(2,\)"),
        (lambda a: (*a[:3], a[3].float(), *a[4:]), "slots: expected an int32/int64 tensor"),
        (lambda a: (*a[:4], a[4].to(torch.int16), a[5]), "kv_lens: expected an int32/int64 tensor"),
        (lambda a: (*a[:4], a[4][None], a[5]), r"kv_lens: .* torch.int64 \(1, 2\)"),
        (lambda a: (*a[:5], a[5].half()), "k_mean: expected float32 of shape"),
        (lambda a: (*a[:5], a[5][:1]), "k_mean: expected float32 of shape"),
    ],
)
def test_bad_inputs_are_named(kernel_device, mutate, message):
    q, kc, vc = make_cache(3, 4, 2, 16, 64, 2, device=kernel_device)
    slots = torch.tensor([2, 0], device=kernel_device)
    lens = torch.tensor([16, 5], device=kernel_device)
    mean = torch.zeros(3, 2, 64, device=kernel_device)
    with pytest.raises(KernelInputError, match=message):
        decode_attention(*mutate((q, kc, vc, slots, lens, mean)))


def test_head_dim_256_and_bad_split_counts_are_refused(kernel_device):
    q, kc, vc = make_cache(2, 2, 2, 16, 256, 1, device=kernel_device)
    one = torch.tensor([1], device=kernel_device)
    with pytest.raises(KernelInputError, match="head_dim=256"):
        decode_attention(q, kc, vc, one, one)
    q, kc, vc = make_cache(2, 2, 2, 130, 64, 1, device=kernel_device)
    with pytest.raises(KernelInputError, match=r"num_splits=4: expected 1\.\.3"):
        decode_attention(q, kc, vc, one, one, num_splits=4)


def test_no_host_sync_in_a_decode_call(kernel_device):
    q, kc, vc = make_cache(3, 8, 2, 130, 64, 2, seed=9, device=kernel_device)
    slots = torch.tensor([2, 0], device=kernel_device)
    lens = torch.tensor([130, 17], device=kernel_device)
    k_mean = valid_key_mean(kc, slots, lens)
    decode_attention(q, kc, vc, slots, lens, k_mean)  # compile / warm up outside the recording
    with RecordOps() as rec:
        decode_attention(q, kc, vc, slots, lens, k_mean)  # auto split count: 2 kernels
        decode_attention(q, kc, vc, slots, lens, num_splits=1)
    assert any("empty" in op for op in rec.ops)  # the recorder did see the call's torch ops
    assert rec.syncs == [], rec.syncs
    with RecordOps() as control:  # and it does catch a host read of a tensor value
        int(lens.max())
    assert any("_local_scalar_dense" in op for op in control.syncs)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_cuda_graph_replays_with_new_slots_and_lengths():
    q, kc, vc = make_cache(4, 8, 2, 512, 128, 3, seed=11, device="cuda")
    slots = torch.tensor([3, 1, 0], device="cuda")
    lens = torch.tensor([5, 300, 512], device="cuda")
    decode_attention(q, kc, vc, slots, lens)  # compile before capture
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        decode_attention(q, kc, vc, slots, lens)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = decode_attention(q, kc, vc, slots, lens)
    for new_slots, new_lens in (([0, 2, 1], [512, 1, 77]), ([1, 1, 3], [64, 65, 200])):
        slots.copy_(torch.tensor(new_slots))
        lens.copy_(torch.tensor(new_lens))
        q.normal_()
        graph.replay()
        eager = decode_attention(q, kc, vc, slots, lens)
        assert torch.equal(out, eager)
        assert metrics(out, exact_rows(q, kc, vc, slots, lens))[0] >= 0.9995
