"""Our model matches `transformers` logits on tiny random configs of every supported family."""

from __future__ import annotations

import pytest
import torch

from inference.loader import load_model
from tests.inference._llm_helpers import save_hf, tiny_hf_model

CASES = {
    "llama": ("llama", {}),
    "llama-tied-bias-llama3rope": (
        "llama",
        dict(
            tie_word_embeddings=True,
            attention_bias=True,
            mlp_bias=True,
            rope_theta=500000.0,
            rope_parameters=dict(
                rope_type="llama3",
                rope_theta=500000.0,
                factor=8.0,
                low_freq_factor=1.0,
                high_freq_factor=4.0,
                original_max_position_embeddings=64,
            ),
        ),
    ),
    "mistral-linear-rope": (
        "mistral",
        dict(rope_parameters=dict(rope_type="linear", rope_theta=10000.0, factor=2.0), sliding_window=None),
    ),
    "qwen2-yarn": (
        "qwen2",
        dict(
            rope_parameters=dict(
                rope_type="yarn", rope_theta=1000000.0, factor=4.0, original_max_position_embeddings=128
            )
        ),
    ),
    "qwen3": ("qwen3", dict(num_attention_heads=4, num_key_value_heads=1, head_dim=32)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_logits_match_transformers(tmp_path, case):
    family, overrides = CASES[case]
    hf = tiny_hf_model(family, **overrides)
    save_hf(hf, tmp_path, max_shard_size="100KB" if family == "qwen2" else None)
    model, folder, attn = load_model(tmp_path)
    assert attn == "torch" and folder.config.family == family
    ids = torch.randint(0, hf.config.vocab_size, (2, 150), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = hf(ids).logits
        got = model(ids)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() < 2e-4, (got - want).abs().max().item()


def test_sharded_checkpoint_is_read_from_index(tmp_path):
    save_hf(tiny_hf_model("llama"), tmp_path, max_shard_size="100KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    _, folder, _ = load_model(tmp_path)
    assert len(folder.weight_files) > 1
