"""Bad model folders fail before loading with one clear line (CLI exit 1, no traceback)."""

from __future__ import annotations

import json

import pytest

from bot.cli.main import main
from inference.errors import InferenceError
from inference.loader import inspect_folder
from tests.inference._llm_helpers import save_hf, tiny_hf_model, tiny_served_model


def run_cli(args, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    return info.value.code, capsys.readouterr().err


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return save_hf(tiny_hf_model("llama"), tmp_path_factory.mktemp("llama"))


def edit_config(path, **changes):
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(changes)
    (path / "config.json").write_text(json.dumps(cfg))


def test_no_config(tmp_path, capsys):
    code, err = run_cli(["serve-llm", "--model", str(tmp_path)], capsys)
    assert code == 1 and "no config.json" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_unsupported_architecture_lists_the_supported_ones(tmp_path, llama_dir):
    for f in llama_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    edit_config(tmp_path, architectures=["GPTNeoXForCausalLM"], model_type="gpt_neox")
    with pytest.raises(InferenceError) as info:
        inspect_folder(tmp_path)
    msg = str(info.value)
    assert "GPTNeoXForCausalLM" in msg
    assert all(
        a in msg for a in ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")
    )


def test_unsupported_rope_scaling(tmp_path, llama_dir):
    for f in llama_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    edit_config(tmp_path, rope_parameters=None, rope_scaling={"type": "longrope", "factor": 2.0})
    with pytest.raises(InferenceError, match=r"longrope.*supported: default, linear, llama3, yarn"):
        inspect_folder(tmp_path)


def test_missing_shard_is_named(tmp_path):
    save_hf(tiny_hf_model("llama"), tmp_path, max_shard_size="100KB")
    shards = sorted(tmp_path.glob("model-*.safetensors"))
    shards[1].unlink()
    with pytest.raises(InferenceError, match=rf"missing 1 of {len(shards)} weight shards.*{shards[1].name}"):
        inspect_folder(tmp_path)


def test_missing_tensor_is_named(tmp_path, llama_dir):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(llama_dir / "model.safetensors"))
    del tensors["model.layers.1.mlp.up_proj.weight"]
    (tmp_path / "config.json").write_text((llama_dir / "config.json").read_text())
    save_file(tensors, str(tmp_path / "model.safetensors"))
    from inference.loader import load_model

    with pytest.raises(InferenceError, match=r"model\.layers\.1\.mlp\.up_proj\.weight"):
        load_model(tmp_path)


def test_unsupported_gptq_bits(tmp_path, llama_dir):
    for f in llama_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    edit_config(tmp_path, quantization_config={"quant_method": "gptq", "bits": 5, "group_size": 128})
    with pytest.raises(InferenceError, match=r"bits=5; GPTQ checkpoints with bits 2, 3, 4, 8"):
        inspect_folder(tmp_path)


def test_out_of_memory_is_refused_at_start_with_numbers(tmp_path, capsys):
    tiny_served_model(tmp_path)
    code, err = run_cli(["serve-llm", "--model", str(tmp_path), "--max-batch", "200000000"], capsys)
    assert (
        code == 1 and "not enough memory" in err and "GiB" in err and "200000000 slots x 1024 tokens" in err
    )


def test_negative_prefill_chunk_is_refused_before_loading(tmp_path, capsys):
    code, err = run_cli(["serve-llm", "--model", str(tmp_path), "--prefill-chunk", "-1"], capsys)
    assert code == 1 and "--prefill-chunk must be >= 0" in err and "Traceback" not in err


def test_llm_pull_without_network_fails_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    code, err = run_cli(["llm", "pull", "someone/some-model", "--dir", str(tmp_path / "m")], capsys)
    assert code == 1 and "cannot download someone/some-model" in err and "unreachable" in err
    assert len(err.strip().splitlines()) == 1
