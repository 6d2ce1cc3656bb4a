"""Triton int4 GEMV (decode rows) vs the plain-torch reference, and int4_matmul's dispatch to it.

Interpreter on CPU (tiny shapes: it simulates every program in numpy), native on CUDA.
"""

from __future__ import annotations

import pytest
import torch

from inference.kernels import int4_gemv
from inference.kernels.configs import GEMV_MAX_M, GemvConfig
from inference.kernels.int4_gemv import launch_gemv
from inference.kernels.int4_matmul import int4_matmul, int4_matmul_reference
from tests.inference.test_int4_matmul import assert_close, make_layer, run_both

pytestmark = pytest.mark.interpreter


def tensors(layer, device):
    return [t.to(device) for t in (layer.qweight, layer.qzeros, layer.scales)]


# (M, K, N, group size, act-order): M = 1..4 rows; K not a multiple of the step (200 = 25 words, one
# group of 200 inputs); N not a multiple of the column block; groups smaller than a step; act-order
CASES = [
    (1, 128, 96, 32, False),
    (4, 128, 96, 32, False),
    (1, 200, 40, -1, False),
    (3, 200, 40, -1, False),
    (2, 200, 64, 40, True),
    (4, 200, 64, 40, True),
    (3, 256, 48, 16, False),
    (1, 96, 136, 32, True),
    (2, 96, 136, 32, True),
]


@pytest.mark.parametrize(("m", "k", "n", "group", "act_order"), CASES)
def test_gemv_matches_reference(kernel_device, m, k, n, group, act_order):
    layer = make_layer(k, n, group_size=group, act_order=act_order, bias=m % 2 == 1, seed=k + m)
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(m)).half().to(kernel_device)
    y, ref = run_both(layer, x, pass_g_idx=act_order)  # M <= GEMV_MAX_M: the GEMV kernel
    assert_close(y, ref)


@pytest.mark.parametrize("bits", [2, 8])
def test_other_bit_widths(kernel_device, bits):
    layer = make_layer(128, 64, bits=bits, zero_format="v2", seed=bits)
    x = torch.randn(2, 128).half().to(kernel_device)
    assert_close(*run_both(layer, x, pass_g_idx=False))


@pytest.mark.parametrize("act_order", [False, True])
def test_split_k_counts_agree(kernel_device, act_order):
    """Each split writes its own fp32 partial; any split count, even ones leaving a short last
    split, sums to the same result."""
    layer = make_layer(512, 32, group_size=64, act_order=act_order, bias=True, seed=3)
    x = torch.randn(3, 512).half().to(kernel_device)
    qw, qz, sc = tensors(layer, kernel_device)
    g = layer.g_idx.to(kernel_device) if act_order else None
    bias = layer.bias.to(kernel_device)
    ref = int4_matmul_reference(x, qw, qz, sc, layer.g_idx.to(kernel_device), bias)
    outs = []
    for split in (1, 3, 8):
        cfg = GemvConfig(block_n=32, block_k=64, split_k=split, num_stages=1)
        outs.append(launch_gemv(x, qw, qz, sc, g, bias, bits=4, zero_format="v1", group_size=64, cfg=cfg))
        assert_close(outs[-1], ref)
    assert not torch.equal(outs[0], torch.zeros_like(outs[0]))


def test_int4_matmul_sends_decode_rows_to_gemv(kernel_device, monkeypatch):
    calls: list[int] = []

    def spy(x2, *args, **kw):
        calls.append(x2.shape[0])
        return launch_gemv(x2, *args, **kw)

    monkeypatch.setattr("inference.kernels.int4_matmul.launch_gemv", spy)
    layer = make_layer(64, 32, seed=1)
    qw, qz, sc = tensors(layer, kernel_device)
    for m in (1, GEMV_MAX_M, GEMV_MAX_M + 1):
        x = torch.randn(1, m, 64).half().to(kernel_device)
        y = int4_matmul(x, qw, qz, sc)
        assert y.shape == (1, m, 32)
        assert_close(y, int4_matmul_reference(x, qw, qz, sc))
    assert calls == [1, GEMV_MAX_M]
    forced = int4_matmul(torch.randn(2, 64).half().to(kernel_device), qw, qz, sc, gemv=False)
    assert forced.shape == (2, 32) and calls == [1, GEMV_MAX_M]


def test_split_count_depends_on_shapes_only():
    """CUDA-graph safety: the split count is a function of shapes (and the device's SM count)."""
    cpu = torch.device("cpu")
    one_step = int4_gemv.choose_split_k(4096, 4, 128, 8, cpu)
    assert one_step == 1  # a single K step cannot be split
    wide = int4_gemv.choose_split_k(4096, 512, 128, 8, cpu)
    assert wide > 1 and wide == int4_gemv.choose_split_k(4096, 512, 128, 8, cpu)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_compiled_gemv_in_bf16_replays_from_a_cuda_graph_bit_for_bit():
    """Llama-sized K with split-K on a real GPU: bf16 activations, and a captured graph gives the
    same bits as the eager call (partials are summed in a fixed order, no atomics)."""
    layer = make_layer(4096, 512, group_size=128, bias=True, seed=2)
    qw, qz, sc = tensors(layer, "cuda")
    bias = layer.bias.cuda()
    x = torch.randn(2, 4096, device="cuda", dtype=torch.bfloat16)
    ref = int4_matmul_reference(x, qw, qz, sc, None, bias).float()
    y = int4_matmul(x, qw, qz, sc, None, bias).float()
    assert (y - ref).abs().max().item() <= 1e-2 * ref.abs().max().item()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        int4_matmul(x, qw, qz, sc, None, bias)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = int4_matmul(x, qw, qz, sc, None, bias)
    x.copy_(torch.randn_like(x))
    graph.replay()
    assert torch.equal(out, int4_matmul(x, qw, qz, sc, None, bias))


@pytest.mark.slow
@pytest.mark.parametrize("m", [8, 16])
@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("act_order", [False, True])
def test_forced_gemv_sweep_up_to_its_row_limit(kernel_device, m, bits, act_order):
    layer = make_layer(384, 72, bits=bits, group_size=128, act_order=act_order, bias=True, seed=m + bits)
    x = torch.randn(m, 384, generator=torch.Generator().manual_seed(m)).half().to(kernel_device)
    args = [t.to(kernel_device) for t in (layer.qweight, layer.qzeros, layer.scales, layer.g_idx, layer.bias)]
    if not act_order:
        args[3] = None
    ref = int4_matmul_reference(x, *args, bits=bits)
    assert_close(int4_matmul(x, *args, bits=bits, gemv=True), ref)
