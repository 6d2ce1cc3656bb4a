"""GPTQ checkpoint format: packing, the AutoGPTQ v1 layout, act-order, zero conventions, bad input."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from inference.errors import CheckpointError, InferenceError
from inference.gptq.format import (
    QuantConfig,
    QuantizedLinear,
    load_tensors,
    pack,
    pack_linear,
    read_checkpoint,
    save_tensors,
    unpack,
    write_checkpoint,
)


def bitstream_pack(values: np.ndarray, bits: int) -> np.ndarray:
    """Pack column-wise by the definition: value j's bit b is stream bit j*bits+b, word = bit // 32.

    This is the layout AutoGPTQ's `pack` loops produce for 2/4/8 bits (32/bits values per word,
    lowest bits first) and for 3 bits (32 values over 3 words, values crossing word boundaries).
    """
    rows, cols = values.shape
    out = np.zeros((rows * bits // 32, cols), dtype=np.uint64)
    for j in range(rows):
        for b in range(bits):
            pos = j * bits + b
            out[pos // 32] |= ((values[j].astype(np.uint64) >> np.uint64(b)) & np.uint64(1)) << np.uint64(
                pos % 32
            )
    return out.astype(np.uint32).view(np.int32)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_pack_matches_the_bit_stream_definition_and_round_trips(bits):
    rows = 64 if bits == 3 else 32
    gen = torch.Generator().manual_seed(bits)
    values = torch.randint(0, 1 << bits, (rows, 5), generator=gen, dtype=torch.int32)
    values[0, 0] = (1 << bits) - 1  # the top code sets the sign bit of some words
    packed = pack(values, bits, dim=0)
    assert packed.dtype == torch.int32
    assert np.array_equal(packed.numpy(), bitstream_pack(values.numpy(), bits))
    assert torch.equal(unpack(packed, bits, dim=0), values)
    assert torch.equal(unpack(pack(values.t().contiguous(), bits, dim=1), bits, dim=1), values.t())


def _autogptq_v1_checkpoint(folder, w_int, zeros, scales, bits=4, group_size=32):
    """Build by hand what AutoGPTQ writes for one layer `model.layers.0.mlp.down_proj` (v1):

    qweight[i, n] = OR_j w_int[n, 8i+j] << 4j     (K packed, int32, (K/8, N))
    qzeros[g, i]  = OR_j (zero[g, 8i+j] - 1) << 4j (N packed, v1 stores zero - 1)
    scales fp16 (G, N); g_idx[k] = k // group_size; quantize_config.json without checkpoint_format.
    """
    n, k = w_int.shape
    qweight = np.zeros((k // 8, n), dtype=np.uint32)
    for i in range(k // 8):
        for j in range(8):
            qweight[i] |= w_int[:, 8 * i + j].astype(np.uint32) << np.uint32(4 * j)
    qzeros = np.zeros((zeros.shape[0], n // 8), dtype=np.uint32)
    for i in range(n // 8):
        for j in range(8):
            qzeros[:, i] |= (zeros[:, 8 * i + j] - 1).astype(np.uint32) << np.uint32(4 * j)
    prefix = "model.layers.0.mlp.down_proj"
    folder.mkdir()
    save_file(
        {
            f"{prefix}.qweight": torch.from_numpy(qweight.view(np.int32)),
            f"{prefix}.qzeros": torch.from_numpy(qzeros.view(np.int32)),
            f"{prefix}.scales": torch.from_numpy(scales).half(),
            f"{prefix}.g_idx": (torch.arange(k) // group_size).to(torch.int32),
            "model.norm.weight": torch.ones(n),
        },
        str(folder / "gptq_model-4bit-32g.safetensors"),
    )
    (folder / "quantize_config.json").write_text(
        json.dumps(
            {"bits": bits, "group_size": group_size, "desc_act": False, "sym": False, "damp_percent": 0.01}
        )
    )
    return prefix


def test_hand_built_autogptq_v1_checkpoint_loads_to_the_same_dense_weight_as_our_writer(tmp_path):
    gen = torch.Generator().manual_seed(0)
    n, k, gs = 16, 64, 32
    w_int = torch.randint(0, 16, (n, k), generator=gen, dtype=torch.int32)
    zeros = torch.randint(1, 16, (k // gs, n), generator=gen, dtype=torch.int32)  # v1 cannot hold 0
    scales = torch.rand(k // gs, n, generator=gen) * 0.01 + 0.001
    prefix = _autogptq_v1_checkpoint(
        tmp_path / "auto", w_int.numpy(), zeros.numpy(), scales.numpy(), group_size=gs
    )
    theirs = read_checkpoint(tmp_path / "auto")
    assert theirs.quant.checkpoint_format == "gptq" and theirs.quant.zero_format == "v1"
    g = torch.arange(k) // gs
    expected = (w_int.float() - zeros.float()[g].t()) * scales.half().float()[g].t()  # (N, K)
    assert torch.allclose(theirs.layers[prefix].dequantize(), expected)
    assert "model.norm.weight" in theirs.tensors

    ours = pack_linear(w_int, zeros, scales, g.to(torch.int32), bits=4, zero_format="v1")
    write_checkpoint(
        tmp_path / "ours",
        config={"model_type": "llama"},
        quant=theirs.quant,
        layers={prefix: ours},
        tensors=theirs.tensors,
    )
    again = read_checkpoint(tmp_path / "ours")
    assert torch.equal(again.layers[prefix].qweight, theirs.layers[prefix].qweight)
    assert torch.equal(again.layers[prefix].qzeros, theirs.layers[prefix].qzeros)
    assert torch.equal(again.layers[prefix].dequantize(), theirs.layers[prefix].dequantize())
    cfg = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert (
        cfg["quantization_config"]["bits"] == 4 and cfg["quantization_config"]["checkpoint_format"] == "gptq"
    )


def test_act_order_g_idx_is_honoured():
    gen = torch.Generator().manual_seed(1)
    n, k, gs = 8, 64, 16
    w_int = torch.randint(0, 16, (n, k), generator=gen, dtype=torch.int32)
    zeros = torch.randint(1, 16, (k // gs, n), generator=gen, dtype=torch.int32)
    scales = torch.rand(k // gs, n, generator=gen) + 0.5
    perm = torch.randperm(k, generator=gen)
    g_idx = torch.empty(k, dtype=torch.int32)
    g_idx[perm] = (torch.arange(k) // gs).to(torch.int32)  # column perm[j] is in group j // gs
    layer = pack_linear(w_int, zeros, scales, g_idx, bits=4)
    dense = layer.dequantize()
    for col in (0, 7, 63):
        grp = int(g_idx[col])
        want = (w_int[:, col].float() - zeros[grp].float()) * scales.half()[grp].float()
        assert torch.allclose(dense[:, col], want)
    trivial = pack_linear(w_int, zeros, scales, (torch.arange(k) // gs).to(torch.int32), bits=4)
    assert not torch.allclose(trivial.dequantize(), dense)


def test_v1_and_v2_zero_conventions_store_differently_and_dequantize_the_same():
    gen = torch.Generator().manual_seed(2)
    w_int = torch.randint(0, 16, (8, 32), generator=gen, dtype=torch.int32)
    zeros = torch.randint(1, 16, (1, 8), generator=gen, dtype=torch.int32)
    scales = torch.rand(1, 8, generator=gen) + 0.1
    g = torch.zeros(32, dtype=torch.int32)
    v1 = pack_linear(w_int, zeros, scales, g, bits=4, zero_format="v1")
    v2 = pack_linear(w_int, zeros, scales, g, bits=4, zero_format="v2")
    assert torch.equal(unpack(v1.qzeros, 4, dim=1), zeros - 1)
    assert torch.equal(unpack(v2.qzeros, 4, dim=1), zeros)
    assert torch.equal(v1.dequantize(), v2.dequantize())
    # reading v2 tensors as if they were v1 shifts every zero by one: the label matters
    wrong = QuantizedLinear(v2.qweight, v2.qzeros, v2.scales, v2.g_idx, bits=4, zero_format="v1")
    assert not torch.allclose(wrong.dequantize(), v2.dequantize())
    with pytest.raises(InferenceError, match="v1"):
        pack_linear(w_int, torch.zeros_like(zeros), scales, g, bits=4, zero_format="v1")


def _sym_checkpoint(folder, *, stored_format, label):
    gen = torch.Generator().manual_seed(3)
    w_int = torch.randint(0, 16, (16, 32), generator=gen, dtype=torch.int32)
    zeros = torch.full((1, 16), 8, dtype=torch.int32)  # symmetric 4-bit: real zero 8
    layer = pack_linear(
        w_int,
        zeros,
        torch.rand(1, 16, generator=gen) + 0.1,
        torch.zeros(32, dtype=torch.int32),
        bits=4,
        zero_format=stored_format,
    )
    quant = QuantConfig(bits=4, group_size=-1, sym=True, checkpoint_format=stored_format_label(stored_format))
    write_checkpoint(folder, config={}, quant=quant, layers={"l": layer}, tensors={})
    cfg = json.loads((folder / "config.json").read_text())
    cfg["quantization_config"]["checkpoint_format"] = label
    (folder / "config.json").write_text(json.dumps(cfg))
    return layer


def stored_format_label(fmt):
    return "gptq" if fmt == "v1" else "gptq_v2"


@pytest.mark.parametrize(("stored", "label"), [("v2", "gptq"), ("v1", "gptq_v2")])
def test_mislabelled_symmetric_checkpoint_warns_and_reads_correctly(tmp_path, caplog, stored, label):
    layer = _sym_checkpoint(tmp_path / "ckpt", stored_format=stored, label=label)
    with caplog.at_level(logging.WARNING, logger="inference.gptq.format"):
        ckpt = read_checkpoint(tmp_path / "ckpt")
    assert "symmetric zeros are stored as" in caplog.text
    assert ckpt.layers["l"].zero_format == stored
    assert torch.equal(ckpt.layers["l"].dequantize(), layer.dequantize())


def test_correctly_labelled_checkpoint_does_not_warn(tmp_path, caplog):
    _sym_checkpoint(tmp_path / "ckpt", stored_format="v1", label="gptq")
    with caplog.at_level(logging.WARNING, logger="inference.gptq.format"):
        read_checkpoint(tmp_path / "ckpt")
    assert caplog.text == ""


def test_sharded_safetensors_with_index_round_trip(tmp_path):
    tensors = {f"t{i}": torch.full((64,), float(i)) for i in range(6)}
    names = save_tensors(tmp_path, tensors, max_shard_bytes=600)
    assert len(names) > 1
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(tensors)
    loaded = load_tensors(tmp_path)
    assert all(torch.equal(loaded[k], v) for k, v in tensors.items())
    (tmp_path / names[-1]).unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_tensors(tmp_path)


# --- bad input -----------------------------------------------------------------------------------
def _good_folder(tmp_path):
    w_int = torch.randint(0, 16, (16, 64), dtype=torch.int32)
    layer = pack_linear(
        w_int,
        torch.full((2, 16), 8, dtype=torch.int32),
        torch.ones(2, 16),
        (torch.arange(64) // 32).to(torch.int32),
        bits=4,
    )
    write_checkpoint(
        tmp_path, config={}, quant=QuantConfig(bits=4, group_size=32), layers={"m.l": layer}, tensors={}
    )
    return layer


def _rewrite(tmp_path, edit):
    tensors = load_tensors(tmp_path)
    edit(tensors)
    (tmp_path / "model.safetensors").unlink()
    save_file(tensors, str(tmp_path / "model.safetensors"))


def test_missing_tensor_is_named(tmp_path):
    _good_folder(tmp_path)
    _rewrite(tmp_path, lambda t: t.pop("m.l.scales"))
    with pytest.raises(CheckpointError, match=r"m\.l\.scales is missing"):
        read_checkpoint(tmp_path)


def test_wrong_shape_is_named(tmp_path):
    _good_folder(tmp_path)
    _rewrite(tmp_path, lambda t: t.update({"m.l.qzeros": torch.zeros(2, 3, dtype=torch.int32)}))
    with pytest.raises(CheckpointError, match=r"m\.l\.qzeros: shape \(2, 3\), expected \(2, 2\)"):
        read_checkpoint(tmp_path)


def test_group_count_must_match_group_size(tmp_path):
    _good_folder(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["quantization_config"]["group_size"] = 16
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="group_size=16"):
        read_checkpoint(tmp_path)


@pytest.mark.parametrize("bits", [1, 5, 16])
def test_unsupported_bits_are_refused(tmp_path, bits):
    with pytest.raises(InferenceError, match=f"bits={bits}"):
        pack(torch.zeros(32, 4, dtype=torch.int32), bits, dim=0)
    _good_folder(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["quantization_config"]["bits"] = bits
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=f"bits={bits}"):
        read_checkpoint(tmp_path)


def test_not_a_gptq_folder(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="not a GPTQ checkpoint"):
        read_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope")
