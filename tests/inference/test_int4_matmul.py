"""Triton W4A16 matmul vs its torch reference (interpreter on CPU, native on CUDA), and QuantLinear."""

from __future__ import annotations

import pytest
import torch

from inference.errors import InferenceError, KernelInputError
from inference.gptq.format import pack_linear
from inference.kernels.int4_matmul import MatmulConfig, int4_matmul, int4_matmul_reference, launch
from inference.quant_linear import QuantLinear

pytestmark = pytest.mark.interpreter


def make_layer(k, n, *, bits=4, group_size=32, act_order=False, zero_format="v1", bias=False, seed=0):
    gen = torch.Generator().manual_seed(seed)
    groups = 1 if group_size == -1 else k // group_size
    gs = k if group_size == -1 else group_size
    w_int = torch.randint(0, 1 << bits, (n, k), generator=gen, dtype=torch.int32)
    zeros = torch.randint(1, 1 << bits, (groups, n), generator=gen, dtype=torch.int32)
    scales = torch.rand(groups, n, generator=gen) * 0.02 + 0.005
    g_idx = (torch.arange(k) // gs).to(torch.int32)
    if act_order:
        g_idx = g_idx[torch.randperm(k, generator=gen)].contiguous()
    b = torch.randn(n, generator=gen) if bias else None
    return pack_linear(w_int, zeros, scales, g_idx, bits=bits, zero_format=zero_format, bias=b)


def run_both(layer, x, *, pass_g_idx=True):
    args = (
        x,
        layer.qweight.to(x.device),
        layer.qzeros.to(x.device),
        layer.scales.to(x.device),
        layer.g_idx.to(x.device) if pass_g_idx else None,
        None if layer.bias is None else layer.bias.to(x.device),
    )
    kw = {"bits": layer.bits, "zero_format": layer.zero_format}
    return int4_matmul(*args, **kw), int4_matmul_reference(*args, **kw)


def assert_close(y, ref):
    assert y.shape == ref.shape and y.dtype == ref.dtype
    err = (y.float() - ref.float()).abs().max().item()
    assert err <= 2e-3 * ref.float().abs().max().item() + 1e-3, err


@pytest.mark.parametrize("m", [1, 17, 123])
def test_kernel_matches_reference_for_odd_token_counts(kernel_device, m):
    layer = make_layer(128, 96, bias=True)
    x = torch.randn(m, 128, generator=torch.Generator().manual_seed(m)).half().to(kernel_device)
    assert_close(*run_both(layer, x))


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("zero_format", ["v1", "v2"])
def test_bits_and_zero_conventions(kernel_device, bits, zero_format):
    layer = make_layer(64, 64, bits=bits, zero_format=zero_format, seed=bits)
    x = torch.randn(5, 64).half().to(kernel_device)
    y, ref = run_both(layer, x)
    assert_close(y, ref)
    dense = layer.dequantize().to(kernel_device)
    assert torch.allclose(ref.float(), (x.float() @ dense.t()), atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize(("group_size", "act_order"), [(32, True), (-1, False), (64, False), (16, False)])
def test_groups_and_act_order(kernel_device, group_size, act_order):
    layer = make_layer(128, 64, group_size=group_size, act_order=act_order, seed=7)
    x = torch.randn(3, 2, 128).half().to(kernel_device)  # leading dims are kept
    y, ref = run_both(layer, x)
    assert y.shape == (3, 2, 64)
    assert_close(y, ref)
    if not act_order:  # without g_idx the kernel derives k // group_size itself (the fast path)
        y2, _ = run_both(layer, x, pass_g_idx=False)
        assert_close(y2, ref)


@pytest.mark.parametrize("act_order", [False, True])
def test_split_k_tilings_agree(kernel_device, act_order):
    """Decode shapes use split-K on CUDA (fp32 atomics); check every tiling gives the same result."""
    layer = make_layer(256, 64, group_size=64, act_order=act_order, bias=True, seed=11)
    x = torch.randn(3, 256).half().to(kernel_device)
    ref = int4_matmul_reference(
        x,
        *(t.to(kernel_device) for t in (layer.qweight, layer.qzeros, layer.scales, layer.g_idx, layer.bias)),
    )
    t = [t.to(kernel_device) for t in (layer.qweight, layer.qzeros, layer.scales)]
    for cfg in (
        MatmulConfig(16, 32, 64, split_k=2),
        MatmulConfig(16, 64, 32, split_k=4),
        MatmulConfig(32, 32, 64),
    ):
        y = launch(
            x,
            *t,
            layer.g_idx.to(kernel_device) if act_order else None,
            layer.bias.to(kernel_device),
            bits=4,
            zero_format="v1",
            group_size=64,
            cfg=cfg,
        )
        assert_close(y, ref)


def test_act_order_is_not_ignored(kernel_device):
    layer = make_layer(64, 32, act_order=True, seed=3)
    x = torch.randn(4, 64).half().to(kernel_device)
    y, _ = run_both(layer, x)
    y_wrong, _ = run_both(layer, x, pass_g_idx=False)
    assert not torch.allclose(y.float(), y_wrong.float(), atol=1e-2)


def test_quant_linear_backends_agree(kernel_device):
    layer = make_layer(128, 64, group_size=32, act_order=True, bias=True, seed=5)
    torch_path = QuantLinear(layer, backend="torch")
    kernel_path = QuantLinear(layer, backend="triton").to(kernel_device)
    assert torch_path.act_order and kernel_path.backend == "triton"
    x = torch.randn(17, 128).half()
    y_ref = torch_path(x.float())
    y = kernel_path(x.to(kernel_device))
    assert y.dtype == torch.float16
    assert torch.allclose(y.float().cpu(), y_ref, atol=2e-2, rtol=1e-2)
    assert set(torch_path.state_dict()) == {"qweight", "qzeros", "scales", "g_idx", "bias"}


def test_quant_linear_auto_backend_follows_the_device():
    layer = make_layer(64, 32)
    assert QuantLinear(layer).backend == ("triton" if layer.qweight.is_cuda else "torch")
    three = make_layer(64, 32, bits=3)
    assert QuantLinear(three).backend == "torch"
    with pytest.raises(InferenceError, match="3-bit weights have no Triton kernel"):
        QuantLinear(three, backend="triton")


def test_quant_linear_from_checkpoint_tensors_checks_shapes():
    layer = make_layer(64, 32)
    tensors = {"qweight": layer.qweight, "qzeros": layer.qzeros, "scales": layer.scales}
    q = QuantLinear.from_checkpoint_tensors(
        tensors, in_features=64, out_features=32, quant_config={"bits": 4, "group_size": 32, "sym": False}
    )
    assert torch.equal(q.dense_weight(), layer.dequantize())
    with pytest.raises(InferenceError, match="expects 64->16"):
        QuantLinear.from_checkpoint_tensors(
            tensors, in_features=64, out_features=16, quant_config={"bits": 4, "group_size": 32}
        )
    with pytest.raises(InferenceError, match="qzeros is missing"):
        QuantLinear.from_checkpoint_tensors(
            {"qweight": layer.qweight, "scales": layer.scales},
            in_features=64,
            out_features=32,
            quant_config={"bits": 4, "group_size": 32},
        )


# --- bad input -----------------------------------------------------------------------------------
def test_bad_inputs_are_named(kernel_device):
    layer = make_layer(64, 32)
    qw, qz, sc, gi = (t.to(kernel_device) for t in (layer.qweight, layer.qzeros, layer.scales, layer.g_idx))
    x = torch.randn(4, 64).half().to(kernel_device)
    with pytest.raises(KernelInputError, match=r"x: dtype torch\.float32"):
        int4_matmul(x.float(), qw, qz, sc, gi)
    with pytest.raises(KernelInputError, match="x: tensor is not contiguous"):
        int4_matmul(torch.randn(64, 4).half().to(kernel_device).t(), qw, qz, sc, gi)
    with pytest.raises(KernelInputError, match="qweight"):
        int4_matmul(torch.randn(4, 96).half().to(kernel_device), qw, qz, sc, gi)
    with pytest.raises(KernelInputError, match="bits=5"):
        int4_matmul(x, qw, qz, sc, gi, bits=5)
    with pytest.raises(KernelInputError, match="g_idx"):
        int4_matmul(x, qw, qz, sc, gi[:10])
    with pytest.raises(KernelInputError, match="bias"):
        int4_matmul(x, qw, qz, sc, gi, torch.zeros(7).half().to(kernel_device))
    with pytest.raises(KernelInputError, match="zero_format"):
        int4_matmul(x, qw, qz, sc, gi, zero_format="v3")
