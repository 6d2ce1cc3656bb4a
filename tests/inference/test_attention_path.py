"""The model through the quantized Triton attention (interpreter on CPU, native on CUDA) agrees with
the torch path: the backend choice made at load changes numbers only at quantization noise level."""

from __future__ import annotations

import pytest
import torch

from inference.engine import Engine, EngineConfig, SamplingParams
from inference.loader import load_model, pick_attention
from tests.inference._llm_helpers import save_hf, tiny_hf_model


def test_auto_picks_torch_on_cpu_and_can_be_overridden():
    assert pick_attention("cpu", "auto")[1] == "torch"
    assert pick_attention("cpu", "quant")[1] == "quant"
    with pytest.raises(ValueError, match="auto, torch or quant"):
        pick_attention("cpu", "flash")


@pytest.mark.interpreter
def test_quantized_attention_model_matches_torch_path(tmp_path, kernel_device):
    save_hf(
        tiny_hf_model("llama", hidden_size=128, num_attention_heads=2, num_key_value_heads=1, head_dim=64),
        tmp_path,
    )
    quant, _, name = load_model(tmp_path, device=kernel_device, dtype=torch.float16, attention="quant")
    exact, _, _ = load_model(tmp_path, device=kernel_device, dtype=torch.float32, attention="torch")
    assert name == "quant"
    ids = torch.randint(0, 320, (1, 40), generator=torch.Generator().manual_seed(0)).to(kernel_device)
    with torch.no_grad():
        diff = (quant(ids) - exact(ids)).abs().max().item()
    assert diff < 1e-2, diff
    outputs = []
    for model, dtype in ((quant, torch.float16), (exact, torch.float32)):
        engine = Engine(
            model, None, EngineConfig(max_batch=2, max_context=64, device=kernel_device, dtype=dtype)
        )
        events: dict[int, list] = {0: [], 1: []}
        engine.submit([1, 2, 3, 4, 5], SamplingParams(max_tokens=8, temperature=0), events[0].append)
        engine.submit([9, 8, 7], SamplingParams(max_tokens=8, temperature=0), events[1].append)
        while any(not e or e[-1].finish_reason is None for e in events.values()):
            engine.step()
        outputs.append([[t for ev in e for t in ev.token_ids] for e in events.values()])
    assert outputs[0] == outputs[1]  # batched decode with per-row kv_lens through the kernel
