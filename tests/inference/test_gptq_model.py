"""A GPTQ checkpoint written by our quantizer loads into QuantLinear layers and matches its dequantized model."""

from __future__ import annotations

import json

import pytest
import torch

from inference.gptq.format import read_checkpoint
from inference.loader import load_model
from inference.quant_linear import QuantLinear
from tests.inference._llm_helpers import CORPUS, save_hf, tiny_hf_model, train_tokenizer


@pytest.mark.parametrize(("family", "bits"), [("llama", 4), ("qwen2", 4), ("qwen3", 4), ("llama", 3)])
def test_gptq_loaded_model_matches_dequantized_reference(tmp_path, family, bits):
    """3-bit too: no Triton kernel, but the checkpoint loads and serves through the torch path."""
    from inference.gptq.quantize import QuantOptions, quantize_folder

    fast = train_tokenizer(tmp_path / "fp")
    hf = tiny_hf_model(family, vocab_size=len(fast))
    save_hf(hf, tmp_path / "fp")
    quantize_folder(
        tmp_path / "fp",
        tmp_path / "q",
        CORPUS * 8,
        QuantOptions(bits=bits, group_size=32, act_order=True),
        calib_samples=8,
        seq_len=32,
    )
    config = json.loads((tmp_path / "q" / "config.json").read_text())
    assert config["dtype"] == config["torch_dtype"] == "float16"  # transformers 5 reads "dtype"
    model, folder, _ = load_model(tmp_path / "q")
    assert folder.quant["bits"] == bits
    assert sum(isinstance(m, QuantLinear) for m in model.modules()) == 7 * hf.config.num_hidden_layers

    # reference: the transformers model with every quantized layer replaced by its dequantized weight
    ckpt = read_checkpoint(tmp_path / "q")
    state = {k: v.float() for k, v in ckpt.tensors.items()}
    for prefix, layer in ckpt.layers.items():
        state[f"{prefix}.weight"] = layer.dequantize(torch.float32)
        if layer.bias is not None:
            state[f"{prefix}.bias"] = layer.bias.float()
    assert any(not torch.equal(layer.g_idx, layer.g_idx.sort().values) for layer in ckpt.layers.values())
    state.setdefault("lm_head.weight", state["model.embed_tokens.weight"])
    hf.load_state_dict(state)
    ids = torch.randint(0, len(fast), (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (model(ids) - hf(ids).logits).abs().max().item()
    assert diff < 2e-4, diff


def test_loader_reads_through_the_checkpoint_reader_and_names_foreign_layers(tmp_path):
    """The loader uses `read_checkpoint` (one reader): its validation reaches `serve-llm`, and a
    quantized layer the model has no place for is refused instead of being silently dropped."""
    from safetensors.torch import load_file, save_file

    from inference.errors import CheckpointError
    from inference.gptq.quantize import QuantOptions, quantize_folder

    fast = train_tokenizer(tmp_path / "fp")
    save_hf(tiny_hf_model("llama", vocab_size=len(fast)), tmp_path / "fp")
    quantize_folder(
        tmp_path / "fp",
        tmp_path / "q",
        CORPUS * 8,
        QuantOptions(bits=3, group_size=32),
        calib_samples=4,
        seq_len=32,
    )
    path = tmp_path / "q" / "model.safetensors"
    good = load_file(str(path))
    prefix = "model.layers.0.mlp.up_proj"
    moved = {
        k.replace(prefix, "model.layers.9.mlp.up_proj") if k.startswith(prefix) else k: v
        for k, v in good.items()
    }
    moved[f"{prefix}.weight"] = torch.zeros(1)  # keep the slot "dense" so only the stray layer is wrong
    save_file(moved, str(path))
    with pytest.raises(
        CheckpointError, match=r"quantized layers the llama model does not have: model\.layers\.9"
    ):
        load_model(tmp_path / "q")
    bad = dict(good)
    for suffix in ("scales", "qzeros"):  # one group where the config's group size implies two
        bad[f"{prefix}.{suffix}"] = bad[f"{prefix}.{suffix}"][:1].contiguous()
    bad[f"{prefix}.g_idx"] = torch.zeros_like(bad[f"{prefix}.g_idx"])
    save_file(bad, str(path))
    with pytest.raises(CheckpointError, match=rf"{prefix}\.scales: 1 groups, expected"):
        load_model(tmp_path / "q")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gptq_model_on_cuda_uses_the_triton_kernels_and_agrees_with_cpu(tmp_path):
    from inference.engine import Engine, EngineConfig, SamplingParams
    from inference.gptq.quantize import QuantOptions, quantize_folder

    fast = train_tokenizer(tmp_path / "fp")
    hf = tiny_hf_model(
        "qwen2",
        vocab_size=len(fast),
        hidden_size=128,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
    )
    save_hf(hf, tmp_path / "fp")
    quantize_folder(
        tmp_path / "fp",
        tmp_path / "q",
        CORPUS * 8,
        QuantOptions(bits=4, group_size=32),
        calib_samples=8,
        seq_len=32,
    )
    gpu, _, attn = load_model(tmp_path / "q", device="cuda")
    cpu, _, _ = load_model(tmp_path / "q", device="cpu")
    assert attn == "quant"
    assert {m.backend for m in gpu.modules() if isinstance(m, QuantLinear)} == {"triton"}
    ids = torch.randint(0, len(fast), (1, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = gpu(ids.cuda()).cpu(), cpu(ids)
    assert (a - b).abs().max().item() < 5e-2
    assert (a.argmax(-1) == b.argmax(-1)).float().mean().item() > 0.9
    engine = Engine(gpu, None, EngineConfig(max_batch=4, max_context=128, device="cuda", dtype=torch.float16))
    for prompt in ([1, 2, 3], [4, 5, 6, 7, 8]):
        out, _, finish = engine.generate(prompt, SamplingParams(max_tokens=16, temperature=0))
        assert finish == "length" and len(out) == 16
