"""GPTQ options measured on a real model: group-aware order, range (clip) search, calibration mix."""

from __future__ import annotations

import pytest
import torch

from inference.errors import QuantizeError
from inference.gptq.calibration import english_texts, file_texts, mix
from inference.gptq.quantize import (
    HessianAccumulator,
    QuantOptions,
    column_order,
    find_params,
    gptq_quantize,
    quantize_values,
    rtn_quantize,
)


def _hessian(k=128, rows=1024, seed=0):
    """Correlated inputs whose energy grows along k: the important columns come last in storage,
    the case where quantizing them first pays."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, k, generator=gen) @ (torch.randn(k, k, generator=gen) / k**0.5)
    x = x * torch.linspace(0.2, 4.0, k) + torch.randn(k, generator=gen)
    acc = HessianAccumulator(k, "layer")
    acc.add(x)
    return acc.h, x


def test_group_aware_order_keeps_groups_contiguous_and_important_ones_first():
    diag = torch.tensor([1.0, 9.0, 2.0, 3.0, 8.0, 0.5, 4.0, 4.5])
    perm = column_order(diag, QuantOptions(group_size=2, group_aware=True), 2)
    # groups by decreasing max (9, 8, 4.5, 3), columns inside a group by decreasing diag
    assert perm.tolist() == [1, 0, 4, 5, 7, 6, 3, 2]
    assert column_order(diag, QuantOptions(group_size=2, group_aware=False), 2).tolist() == list(range(8))
    assert column_order(diag, QuantOptions(group_size=2, act_order=True), 2).tolist() == [
        1,
        4,
        7,
        6,
        3,
        2,
        0,
        5,
    ]


@pytest.mark.parametrize("sym", [True, False])
def test_group_aware_gptq_has_a_trivial_g_idx_and_lower_output_error(sym):
    h, x = _hessian()
    w = torch.randn(64, 128, generator=torch.Generator().manual_seed(1)) * 0.05
    plain = gptq_quantize(w, h, QuantOptions(group_size=32, sym=sym, group_aware=False))
    aware = gptq_quantize(w, h, QuantOptions(group_size=32, sym=sym, group_aware=True))
    assert torch.equal(aware.g_idx, (torch.arange(128) // 32).to(torch.int32))  # the kernels' fast path

    def err(q):
        return ((x @ (w - q).t()) ** 2).mean().item()

    assert err(aware.dequant) < err(plain.dequant)
    # scales were put back in storage order: the packed tensors dequantize to what GPTQ chose
    assert torch.allclose(aware.pack(4, "v1").dequantize(), aware.dequant, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("sym", [True, False])
def test_clip_search_lowers_the_rounding_error_of_heavy_tailed_rows(sym):
    gen = torch.Generator().manual_seed(2)
    u = torch.rand(2, 32, 128, generator=gen)
    w = 0.02 * (torch.log(u[0]) - torch.log(u[1]))  # Laplace rows: weights of trained layers look so
    maxq = 15

    def err(opts):
        scale, zero = find_params(w, opts)
        q = (quantize_values(w, scale, zero, maxq) - zero[:, None]) * scale[:, None]
        return (q - w).square().sum().item()

    # measured for this seed (squared error): sym 0.063 vs 0.071, asym 0.049 vs 0.056
    assert err(QuantOptions(sym=sym, clip_search=True)) < 0.95 * err(QuantOptions(sym=sym, clip_search=False))
    rtn = rtn_quantize(w, QuantOptions(group_size=64, sym=sym, clip_search=True))
    assert rtn.intweight.min() >= 0 and rtn.intweight.max() <= maxq


def test_mix_balances_sources_by_characters_and_interleaves():
    english = ["e" * 100] * 10  # 1,000 characters
    russian = ["р" * 50] * 4  # 200 characters
    out = mix(english, russian, [])
    assert out[:4] == ["e" * 100, "р" * 50, "e" * 100, "р" * 50]
    assert sum(len(t) for t in out if t[0] == "e") == 200 == sum(len(t) for t in out if t[0] == "р")
    assert mix([], [" "]) == []


def test_english_calibration_text_is_available_offline():
    texts = english_texts()
    assert sum(len(t) for t in texts) > 50_000  # enough for 32 windows x 256 tokens


def test_english_calibration_text_survives_litellm(monkeypatch):
    """A whole-suite run imports LiteLLM, which swaps importlib.metadata's message type; the English
    calibration text (and so `quantize`'s default mix) came back empty after it."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import
    before = english_texts()
    import litellm  # noqa: F401

    assert english_texts() == before


def test_calibration_files_give_one_clear_error(tmp_path):
    good = tmp_path / "a.txt"
    good.write_text("first paragraph\n\nsecond\n\n\n", encoding="utf-8")
    assert file_texts([good]) == ["first paragraph", "second"]
    with pytest.raises(QuantizeError, match=r"--calib .*missing\.txt: cannot read"):
        file_texts([tmp_path / "missing.txt"])
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(QuantizeError, match=r"bin\.txt: cannot read it as UTF-8"):
        file_texts([tmp_path / "bin.txt"])
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    with pytest.raises(QuantizeError, match="no text to calibrate on"):
        file_texts([tmp_path / "empty.txt"])


def test_an_indefinite_hessian_raises_the_dampening_with_a_warning(caplog):
    h, _ = _hessian(k=64)
    eigval, eigvec = torch.linalg.eigh(h)
    shift = 0.05 * torch.diag(h).mean()  # one direction 5% of the mean diagonal below zero
    h_bad = h - (eigval[0] + shift) * torch.outer(eigvec[:, 0], eigvec[:, 0])
    w = torch.randn(8, 64, generator=torch.Generator().manual_seed(5))
    with caplog.at_level("WARNING", logger="inference.gptq.quantize"):
        res = gptq_quantize(
            w, h_bad, QuantOptions(group_size=32, damp_percent=0.01), "model.layers.4.mlp.up_proj"
        )
    assert "model.layers.4.mlp.up_proj: Hessian not positive definite; damp_percent raised to" in caplog.text
    assert torch.isfinite(res.dequant).all()
    with pytest.raises(QuantizeError, match="not positive definite even with damp_percent"):
        gptq_quantize(w, -h, QuantOptions(group_size=32), "layer")
