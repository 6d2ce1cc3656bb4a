"""Model folder -> `Transformer` with weights: config checks, (sharded) safetensors, full precision or GPTQ.

Boundary: reads files and builds modules; knows nothing about requests or HTTP. Every problem with
the folder is found before any weights are read (config, architecture, shards, quantization
settings), so a server never starts half-loaded. GPTQ layers become `QuantLinear` modules from the
quantization core (`inference.quant_linear`), which picks the Triton kernel on CUDA.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from inference.errors import CheckpointError, InferenceError
from inference.gptq.format import QuantizedLinear
from inference.model import ModelConfig, Transformer, rope_frequencies, torch_attention

log = logging.getLogger(__name__)

LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class ModelFolderError(InferenceError):
    """The model folder is missing config, weights or holds settings we cannot serve."""


class OutOfMemoryError(InferenceError):
    """The weights plus the KV cache for the requested batch do not fit the device."""


@dataclass
class ModelFolder:
    """What is known about a model folder before reading weights."""

    path: Path
    hf_config: dict[str, Any]
    config: ModelConfig
    weight_files: list[Path]
    quant: dict[str, Any] | None  # GPTQ quantization_config, None for full precision

    @property
    def weight_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.weight_files)


def inspect_folder(model_dir: str | os.PathLike) -> ModelFolder:
    path = Path(model_dir).expanduser()
    if not path.is_dir():
        raise ModelFolderError(f"model folder {path} does not exist")
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise ModelFolderError(f"{path}: no config.json (is this a Hugging Face model folder?)")
    try:
        hf_config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFolderError(f"{cfg_path}: cannot read JSON ({exc})") from None
    config = ModelConfig.from_hf(hf_config, source=str(cfg_path))
    gen_path = path / "generation_config.json"
    if gen_path.is_file():  # instruct models list their end-of-turn ids here (Llama 3: 128001, 128009)
        try:
            eos = json.loads(gen_path.read_text(encoding="utf-8")).get("eos_token_id")
        except (OSError, json.JSONDecodeError):
            eos = None
        extra = eos if isinstance(eos, list) else ([eos] if eos is not None else [])
        config.eos_token_ids = tuple(dict.fromkeys([*config.eos_token_ids, *map(int, extra)]))
    return ModelFolder(path, hf_config, config, _weight_files(path), _quant_config(path, hf_config))


def _weight_files(path: Path) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, json.JSONDecodeError, KeyError) as exc:
            raise ModelFolderError(f"{index}: not a safetensors index ({exc})") from None
        shards = sorted(set(weight_map.values()))
        missing = [s for s in shards if not (path / s).is_file()]
        if missing:
            raise ModelFolderError(
                f"{path}: missing {len(missing)} of {len(shards)} weight shards listed in "
                f"{index.name}: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
            )
        return [path / s for s in shards]
    single = path / "model.safetensors"
    if single.is_file():
        return [single]
    others = sorted(p.name for p in path.glob("*.safetensors"))
    if others:
        return [path / p for p in others]
    bins = sorted(p.name for p in path.glob("*.bin"))
    hint = f" (found {', '.join(bins[:3])}: convert to safetensors)" if bins else ""
    raise ModelFolderError(f"{path}: no model.safetensors or model.safetensors.index.json{hint}")


def _quant_config(path: Path, hf_config: dict[str, Any]) -> dict[str, Any] | None:
    qcfg = hf_config.get("quantization_config")
    source = "config.json quantization_config"
    if qcfg is None and (path / "quantize_config.json").is_file():
        qcfg = json.loads((path / "quantize_config.json").read_text(encoding="utf-8"))
        qcfg.setdefault("quant_method", "gptq")
        source = "quantize_config.json"
    if qcfg is None:
        return None
    method = str(qcfg.get("quant_method", "gptq")).lower()
    if method != "gptq":
        raise ModelFolderError(
            f"{path / 'config.json'}: quantization method {method!r} is not supported; use gptq"
        )
    # Every width GPTQ checkpoints use loads; 3-bit has no Triton kernel, so its layers run through
    # a dense dequantized copy (correct, fp16 memory cost on CUDA; check_memory counts it).
    from inference.gptq.options import SUPPORTED_BITS

    bits = qcfg.get("bits")
    if bits not in SUPPORTED_BITS:
        raise ModelFolderError(
            f"{path}: {source} has bits={bits}; GPTQ checkpoints with bits "
            f"{', '.join(map(str, SUPPORTED_BITS))} can be served"
        )
    return qcfg


def check_memory(folder: ModelFolder, *, device: str, kv_bytes: int, what: str) -> None:
    """Refuse before loading when weights + KV cache exceed free memory on the device."""
    free = available_memory(device)
    if device == "cpu":
        # CPU computes in fp32, and QuantLinear's torch path keeps a dense fp32 copy of each 4-bit
        # layer: 8x the packed bytes (an upper bound; embeddings are not packed).
        weights = folder.weight_bytes * 8 if folder.quant else _fp32_bytes(folder)
    elif folder.quant and folder.quant.get("bits") == 3:
        weights = folder.weight_bytes * 16 // 3  # no 3-bit kernel: dense fp16 copies of the layers
    else:
        weights = folder.weight_bytes
    need = weights + kv_bytes
    if free is not None and need > free:
        gib = 1024**3
        raise OutOfMemoryError(
            f"not enough memory on {device}: weights {weights / gib:.2f} GiB + KV cache {kv_bytes / gib:.2f} GiB "
            f"({what}) = {need / gib:.2f} GiB, but {free / gib:.2f} GiB is free; lower --max-batch or --max-context"
        )


def _fp32_bytes(folder: ModelFolder) -> int:
    # CPU serving computes in fp32: fp16/bf16 checkpoints double in size once loaded.
    return (
        folder.weight_bytes * 2
        if (folder.hf_config.get("dtype") or folder.hf_config.get("torch_dtype", "float32")) != "float32"
        else folder.weight_bytes
    )


def available_memory(device: str) -> int | None:
    if device.startswith("cuda"):
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def pick_attention(device: str, choice: str = "auto"):
    """The attention function for the whole run: the quantized Triton kernel on CUDA, torch elsewhere."""
    if choice not in ("auto", "torch", "quant"):
        raise InferenceError(f"attention must be auto, torch or quant, not {choice!r}")
    if choice == "torch" or (choice == "auto" and not device.startswith("cuda")):
        return torch_attention, "torch"
    try:
        # QuantAttention: the Triton kernels for head_dim <= 128 on CUDA (or under TRITON_INTERPRET=1 in
        # fp16), full-precision attention otherwise, with one warning.
        from inference.attention_backends import QuantAttention

        backend = QuantAttention()
    except ImportError as exc:
        if choice == "quant":
            raise InferenceError(f"quantized attention kernel unavailable: {exc}") from None
        log.warning("quantized attention kernel unavailable (%s); using torch attention", exc)
        return torch_attention, "torch"
    return backend, "quant"


def load_model(
    model_dir: str | os.PathLike | ModelFolder,
    *,
    device: str = "cpu",
    dtype: torch.dtype | None = None,
    attention: str = "auto",
) -> tuple[Transformer, ModelFolder, str]:
    """Build the model on `device`; returns (model, folder info, attention backend name)."""
    folder = model_dir if isinstance(model_dir, ModelFolder) else inspect_folder(model_dir)
    dtype = dtype or (torch.float16 if device.startswith("cuda") else torch.float32)
    attn_fn, attn_name = pick_attention(device, attention)
    cfg = folder.config
    with torch.device("meta"):
        model = Transformer(cfg, attn_fn)
    if folder.quant:
        # the one GPTQ reader (inference.gptq.format), the same code the format tests check
        from inference.gptq.format import read_checkpoint

        ckpt = read_checkpoint(folder.path)
        tensors = {name: _run_tensor(name, t, device, dtype) for name, t in ckpt.tensors.items()}
        _swap_quant_linears(model, tensors, ckpt.layers, folder, device)
    else:
        tensors = _read_tensors(folder, device, dtype)
    if cfg.tie_word_embeddings or "lm_head.weight" not in tensors:
        tensors.setdefault("lm_head.weight", tensors.get("model.embed_tokens.weight"))
    expected = set(model.state_dict().keys())
    missing = sorted(k for k in expected if tensors.get(k) is None)
    if missing:
        raise CheckpointError(
            f"{folder.path}: checkpoint lacks {len(missing)} tensors the {cfg.family} config needs, "
            f"e.g. {', '.join(missing[:3])}"
        )
    for name in expected:
        want, got = model.state_dict()[name].shape, tensors[name].shape
        if want != got:
            raise CheckpointError(
                f"{folder.path}: tensor {name} has shape {tuple(got)}, config implies {tuple(want)}"
            )
    model.load_state_dict({k: tensors[k] for k in expected}, strict=True, assign=True)
    if cfg.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    model.inv_freq = rope_frequencies(cfg)[0].to(device)  # built on meta above; buffers are not stored
    model.eval().requires_grad_(False)
    return model, folder, attn_name


def _run_tensor(name: str, t: torch.Tensor, device: str, dtype: torch.dtype) -> torch.Tensor:
    # GPTQ packs ints and keeps fp16 scales; only dense float weights take the run dtype
    if t.is_floating_point() and not name.endswith(".scales"):
        t = t.to(dtype)
    return t.to(device)


def _read_tensors(folder: ModelFolder, device: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for file in folder.weight_files:
        with safe_open(str(file), framework="pt", device="cpu") as fh:
            for name in fh.keys():  # noqa: SIM118 (safe_open is not a dict)
                out[name] = _run_tensor(name, fh.get_tensor(name), device, dtype)
    return out


def _swap_quant_linears(
    model: Transformer,
    tensors: dict[str, torch.Tensor],
    layers: dict[str, QuantizedLinear],
    folder: ModelFolder,
    device: str,
) -> None:
    """Replace each decoder linear by a `QuantLinear` over its checkpoint layer; its buffers join `tensors`."""
    from inference.quant_linear import QuantLinear

    left = dict(layers)
    for i, layer in enumerate(model.model.layers):
        for parent_name, parent in (("self_attn", layer.self_attn), ("mlp", layer.mlp)):
            for lin in LINEAR_NAMES:
                if not hasattr(parent, lin):
                    continue
                prefix = f"model.layers.{i}.{parent_name}.{lin}"
                stored = left.pop(prefix, None)
                if stored is None:
                    if f"{prefix}.weight" in tensors:  # some tools leave sensitive layers unquantized
                        continue
                    raise CheckpointError(f"{folder.path}: GPTQ checkpoint lacks tensor {prefix}.qweight")
                dense: nn.Linear = getattr(parent, lin)
                if (stored.in_features, stored.out_features) != (dense.in_features, dense.out_features):
                    raise CheckpointError(
                        f"{prefix}: tensors describe a {stored.in_features}->{stored.out_features} layer, "
                        f"the model expects {dense.in_features}->{dense.out_features}"
                    )
                quant = QuantLinear(stored.to(device), name=prefix)
                setattr(parent, lin, quant)
                for pname, tensor in quant.state_dict().items():
                    tensors[f"{prefix}.{pname}"] = tensor
    if left:
        raise CheckpointError(
            f"{folder.path}: quantized layers the {folder.config.family} model does not have: "
            f"{', '.join(sorted(left)[:3])}"
        )
