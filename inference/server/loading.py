"""What `serve-llm` serves: its settings, and the checked, loaded model with its engine.

Boundary: a model folder and settings in, an `Engine` + `ChatTokenizer` out; no HTTP. Everything is
checked before the weights load (folder, tokenizer, memory for weights plus KV cache), so a wrong
flag is one clear message, not an out-of-memory error halfway through loading.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from inference.engine import Engine, EngineConfig, kv_cache_bytes
from inference.errors import InferenceError
from inference.loader import check_memory, inspect_folder, load_model
from inference.tokenizer import ChatTokenizer

DEFAULT_MAX_CONTEXT = 8192  # caps the per-slot KV cache for long-context models unless asked for more
DEFAULT_MAX_BODY = 4 * 2**20  # bytes; 32k tokens of text in JSON is well under 1 MB


@dataclass
class ServerConfig:
    model_dir: Path
    served_name: str | None = None
    max_batch: int = 8
    max_context: int | None = None
    max_queue: int = 64
    api_key: str | None = None
    device: str = "auto"
    attention: str = "auto"
    cuda_graphs: bool = True
    prefill_chunk: int = 512
    prefix_caching: bool = True
    max_body_bytes: int = DEFAULT_MAX_BODY


@dataclass
class Served:
    engine: Engine
    tokenizer: ChatTokenizer
    name: str
    attention: str
    weights: str  # "gptq-4bit" or the dense dtype, reported by /health


def load_served(cfg: ServerConfig) -> Served:
    """Check everything, then load: folder, tokenizer, memory for weights + KV cache, weights."""
    if cfg.max_batch < 1 or cfg.max_queue < 0:
        raise InferenceError(
            f"--max-batch must be >= 1 and max queue >= 0 (got {cfg.max_batch}, {cfg.max_queue})"
        )
    if cfg.prefill_chunk < 0:
        raise InferenceError(f"--prefill-chunk must be >= 0 (0: whole prompts), got {cfg.prefill_chunk}")
    folder = inspect_folder(cfg.model_dir)
    tokenizer = ChatTokenizer.from_folder(folder.path, folder.config.eos_token_ids)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    mc = folder.config
    limit = min(mc.max_position_embeddings, mc.sliding_window or mc.max_position_embeddings)
    max_context = min(cfg.max_context or min(limit, DEFAULT_MAX_CONTEXT), limit)
    # CUDA graphs pad batches into one extra scratch slot; count it so the check stays honest
    scratch = 1 if cfg.cuda_graphs and device.startswith("cuda") else 0
    kv = kv_cache_bytes(mc, cfg.max_batch + scratch, max_context, dtype)
    check_memory(folder, device=device, kv_bytes=kv, what=f"{cfg.max_batch} slots x {max_context} tokens")
    model, folder, attn = load_model(folder, device=device, dtype=dtype, attention=cfg.attention)
    engine_cfg = EngineConfig(
        cfg.max_batch,
        max_context,
        cfg.max_queue,
        device,
        dtype,
        cuda_graphs=cfg.cuda_graphs,
        prefill_chunk=cfg.prefill_chunk,
        prefix_reuse_min=EngineConfig.prefix_reuse_min if cfg.prefix_caching else 0,
    )
    engine = Engine(model, tokenizer, engine_cfg)
    name = cfg.served_name or folder.path.resolve().name
    weights = f"gptq-{folder.quant['bits']}bit" if folder.quant else str(dtype).removeprefix("torch.")
    return Served(engine, tokenizer, name, attn, weights)
