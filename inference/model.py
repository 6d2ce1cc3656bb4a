"""Decoder-only transformer for the Llama, Mistral, Qwen2 and Qwen3 families, built from a HF config.json.

Boundary: this module knows tensors and a config dataclass; it does not read files (see `loader.py`),
schedule requests or sample (see `engine.py`). Linear layers are plain `nn.Linear` here; the loader
swaps in `QuantLinear` for GPTQ checkpoints. Module names mirror the Hugging Face checkpoint names
(`model.layers.0.self_attn.q_proj`) so a state dict loads without renaming.

Supported RoPE scaling kinds: none/"default", "linear", "llama3" and "yarn" (with `attention_factor`,
`mscale`/`mscale_all_dim`, `beta_fast`/`beta_slow`, `truncate`). "dynamic" NTK and "longrope" are
refused with a clear error. Sliding-window attention is not implemented: a model that uses it
(Mistral v0.1) is served with its context limited to the window, where full attention is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from inference.errors import InferenceError


class ModelConfigError(InferenceError):
    """config.json names an architecture or option this implementation does not support."""


# architecture name in config.json -> family; the family decides biases and q/k norms.
ARCHITECTURES = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
}
ROPE_KINDS = ("default", "linear", "llama3", "yarn")


@dataclass
class ModelConfig:
    family: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    max_position_embeddings: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] = field(default_factory=dict)
    attention_bias: bool = False  # q/k/v biases (Qwen2 always, Llama optional)
    o_bias: bool = False  # o_proj bias (Llama `attention_bias` covers o_proj too)
    mlp_bias: bool = False
    qk_norm: bool = False  # Qwen3: RMSNorm over head_dim on q and k before RoPE
    tie_word_embeddings: bool = False
    sliding_window: int | None = None
    eos_token_ids: tuple[int, ...] = ()

    @classmethod
    def from_hf(cls, cfg: dict[str, Any], *, source: str = "config.json") -> ModelConfig:
        archs = cfg.get("architectures") or []
        arch = next((a for a in archs if a in ARCHITECTURES), None)
        if arch is None:
            named = ", ".join(archs) or f"model_type={cfg.get('model_type')!r}"
            raise ModelConfigError(
                f"{source}: unsupported architecture {named}; supported: {', '.join(ARCHITECTURES)}"
            )
        family = ARCHITECTURES[arch]
        try:
            hidden = int(cfg["hidden_size"])
            heads = int(cfg["num_attention_heads"])
            rope = _rope_params(cfg)
            kind = rope.get("rope_type", "default")
            if kind not in ROPE_KINDS:
                raise ModelConfigError(
                    f"{source}: rope_scaling type {kind!r} is not supported; supported: {', '.join(ROPE_KINDS)}"
                )
            eos = cfg.get("eos_token_id")
            eos_ids = tuple(eos) if isinstance(eos, list) else ((eos,) if eos is not None else ())
            window = cfg.get("sliding_window")
            if family == "qwen2" or family == "qwen3":
                window = window if cfg.get("use_sliding_window") else None
            # biases per family as the reference implementations build them: Mistral none, Qwen2 q/k/v
            # always, Llama and Qwen3 q/k/v/o when `attention_bias`, MLP bias only for Llama.
            attn_bias = bool(cfg.get("attention_bias", False)) and family != "mistral"
            return cls(
                family=family,
                vocab_size=int(cfg["vocab_size"]),
                hidden_size=hidden,
                intermediate_size=int(cfg["intermediate_size"]),
                num_layers=int(cfg["num_hidden_layers"]),
                num_heads=heads,
                num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
                head_dim=int(cfg.get("head_dim") or hidden // heads),
                max_position_embeddings=int(cfg.get("max_position_embeddings", 4096)),
                rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
                rope_theta=float(rope.get("rope_theta", 10000.0)),
                rope_scaling=rope,
                attention_bias=True if family == "qwen2" else attn_bias,
                o_bias=attn_bias if family in ("llama", "qwen3") else False,
                mlp_bias=bool(cfg.get("mlp_bias", False)) and family == "llama",
                qk_norm=family == "qwen3",
                tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
                sliding_window=int(window) if window else None,
                eos_token_ids=tuple(int(e) for e in eos_ids),
            )
        except KeyError as exc:
            raise ModelConfigError(f"{source}: missing required field {exc.args[0]!r}") from None


def _rope_params(cfg: dict[str, Any]) -> dict[str, Any]:
    """One flat dict of RoPE settings from either the classic (`rope_theta` + `rope_scaling`) or the
    transformers>=5 (`rope_parameters`) spelling of config.json."""
    params = dict(cfg.get("rope_parameters") or {})
    params.update(cfg.get("rope_scaling") or {})
    if "type" in params and "rope_type" not in params:
        params["rope_type"] = params.pop("type")
    params.setdefault("rope_type", "default")
    params.setdefault("rope_theta", cfg.get("rope_theta", 10000.0))
    return params


def rope_frequencies(cfg: ModelConfig) -> tuple[torch.Tensor, float]:
    """Inverse frequencies (head_dim/2,) and the cos/sin scale for the configured RoPE kind.

    Formulas: linear (Chen et al. 2023, position interpolation), llama3 (Meta's Llama 3.1 smoothing
    between low/high frequency bands), yarn (Peng et al. 2023, arXiv:2309.00071, ramp between
    interpolation and extrapolation plus the 0.1·ln(s)+1 attention temperature).
    """
    dim, base, p = cfg.head_dim, cfg.rope_theta, cfg.rope_scaling
    kind = p.get("rope_type", "default")
    exponents = torch.arange(0, dim, 2, dtype=torch.float32) / dim  # (dim/2,)
    inv_freq = 1.0 / (base**exponents)
    if kind == "default":
        return inv_freq, 1.0
    factor = float(p["factor"])
    if kind == "linear":
        return inv_freq / factor, 1.0
    original = int(p.get("original_max_position_embeddings") or cfg.max_position_embeddings)
    if kind == "llama3":
        low_wavelen = original / float(p["low_freq_factor"])
        high_wavelen = original / float(p["high_freq_factor"])
        wavelen = 2 * math.pi / inv_freq
        smooth = (original / wavelen - p["low_freq_factor"]) / (p["high_freq_factor"] - p["low_freq_factor"])
        smoothed = (1 - smooth) * inv_freq / factor + smooth * inv_freq
        out = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
        medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
        return torch.where(medium, smoothed, out), 1.0

    # yarn
    def mscale(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    attn_factor = p.get("attention_factor")
    if attn_factor is None:
        if p.get("mscale") and p.get("mscale_all_dim"):
            attn_factor = mscale(factor, p["mscale"]) / mscale(factor, p["mscale_all_dim"])
        else:
            attn_factor = mscale(factor)
    beta_fast, beta_slow = p.get("beta_fast") or 32, p.get("beta_slow") or 1

    def correction_dim(rotations: float) -> float:
        return dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if p.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001  # avoid a zero-width ramp
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    extrapolate = 1 - ramp  # 1 where the dimension keeps its original frequency
    inv = (inv_freq / factor) * (1 - extrapolate) + inv_freq * extrapolate
    return inv, float(attn_factor)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # statistics in fp32 as the reference implementations do; fp16 sums overflow at hidden 4096.
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, T, D); cos/sin (B, 1, T, D). Half-split rotation, the layout HF checkpoints use."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


# (q, k, v, *, causal, kv_lens) -> out; chosen once at load (see loader.pick_attention). It may carry
# `.decode(q, k_cache, v_cache, slots, kv_lens, k_mean) -> out`, attention for one new token per row
# read in place from the cache (see inference/attention_backends.py).
AttentionFn = Any


_SDPA_GQA = tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 5)


def torch_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool, kv_lens: torch.Tensor | None = None
) -> torch.Tensor:
    """q (B, Hq, Tq, D), k/v (B, Hkv, Tk, D) -> (B, Hq, Tq, D). Causal is bottom-right aligned
    (query i sees keys up to Tk - Tq + i); kv_lens (B,) masks padded keys."""
    tq, tk = q.shape[2], k.shape[2]
    # GQA through SDPA's enable_gqa: copying K/V per query head (repeat_interleave) was the largest
    # cost of a batched CPU decode step (0.47 vs 0.17 ms per call at B=8, Tk=200).
    gqa = {}
    if k.shape[1] != q.shape[1]:
        if _SDPA_GQA:
            gqa = {"enable_gqa": True}
        else:  # torch < 2.5
            rep = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    if kv_lens is None and (not causal or tq == tk):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal and tq > 1, **gqa)
    keys = torch.arange(tk, device=q.device)
    mask = torch.ones(q.shape[0], 1, tq, tk, dtype=torch.bool, device=q.device)
    if causal:
        queries = torch.arange(tq, device=q.device) + (tk - tq)
        mask = mask & (keys[None, :] <= queries[:, None])[None, None]
    if kv_lens is not None:
        mask = mask & (keys[None, :] < kv_lens[:, None])[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **gqa)


@dataclass
class KVView:
    """Where one forward pass reads and writes keys/values; built by the engine's cache.

    k_cache/v_cache: per layer (S, Hkv, Tmax, D); slots (B,) rows of the batch; start (B,) first
    position written by this pass; kv_lens (B,) valid length after the write. The same numbers are
    kept as host ints too for the gather path: reading them back from the GPU in every layer would
    sync CPU and GPU once per layer and stall the kernel queue. A decode view for an attention
    backend that reads the cache in place (`attn_fn.decode`) has no host ints at all, so the whole
    decode step depends on tensor shapes only and can be captured as a CUDA graph.
    k_mean: per layer (S, Hkv, D) float32, the keys' mean over each slot's prompt, written at prefill
    and subtracted before K is quantized at decode (SageAttention's smoothing; any per-channel
    vector leaves softmax unchanged, the prompt's mean removes most of K's shared bias).
    """

    k_cache: list[torch.Tensor]
    v_cache: list[torch.Tensor]
    slots: torch.Tensor
    start: torch.Tensor
    kv_lens: torch.Tensor
    host_slots: list[int] | None = None
    host_start: list[int] | None = None
    kmax: int = 0  # max(kv_lens) when the host ints are kept
    k_mean: list[torch.Tensor] | None = None
    # prefill: this pass is the request's first (the cached positions before it may come from a
    # reused prefix), so k_mean is recomputed over them; later chunks update it as a running mean
    fresh_mean: bool = True

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k/v (B, Hkv, T, D) at their positions; return the keys/values to attend over."""
        if self.host_slots is None or self.host_start is None:
            raise ValueError("this KV view has no host positions; decode through attn_fn.decode")
        kc, vc = self.k_cache[layer], self.v_cache[layer]
        b, _, t, _ = k.shape
        kmax = self.kmax
        if b == 1:  # prefill (or a lone decode): contiguous slice, no gather copy
            s, p = self.host_slots[0], self.host_start[0]
            kc[s, :, p : p + t] = k[0]
            vc[s, :, p : p + t] = v[0]
            if self.k_mean is not None:  # the prompt's keys' mean smooths its later decode steps
                if self.fresh_mean:
                    self.k_mean[layer][s] = kc[s, :, : p + t].float().mean(dim=1)  # (Hkv, D)
                else:
                    prompt_sum = self.k_mean[layer][s] * p + k[0].float().sum(dim=1)
                    self.k_mean[layer][s] = prompt_sum / (p + t)
            return kc[s : s + 1, :, :kmax], vc[s : s + 1, :, :kmax]
        if t != 1:
            raise ValueError("batched passes must be single-token decode steps")
        self.write_token(layer, k, v)
        first = self.host_slots[0]
        if self.host_slots == list(range(first, first + b)):  # e.g. every slot busy, sorted: a view
            return kc[first : first + b, :, :kmax], vc[first : first + b, :, :kmax]
        return kc[self.slots, :, :kmax], vc[self.slots, :, :kmax]  # gather copy (B, Hkv, kmax, D)

    def write_token(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Decode: scatter one new key/value per row (B, Hkv, 1, D) by tensor indices (no host ints)."""
        self.k_cache[layer][self.slots, :, self.start] = k[:, :, 0]  # (B, Hkv, D) into (S, Hkv, Tmax, D)
        self.v_cache[layer][self.slots, :, self.start] = v[:, :, 0]


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        hd, hq, hkv = cfg.head_dim, cfg.num_heads, cfg.num_kv_heads
        self.cfg = cfg
        self.q_proj = nn.Linear(cfg.hidden_size, hq * hd, bias=cfg.attention_bias)
        self.k_proj = nn.Linear(cfg.hidden_size, hkv * hd, bias=cfg.attention_bias)
        self.v_proj = nn.Linear(cfg.hidden_size, hkv * hd, bias=cfg.attention_bias)
        self.o_proj = nn.Linear(hq * hd, cfg.hidden_size, bias=cfg.o_bias)
        if cfg.qk_norm:
            self.q_norm = RMSNorm(hd, cfg.rms_norm_eps)
            self.k_norm = RMSNorm(hd, cfg.rms_norm_eps)

    def forward(self, x, cos, sin, attn_fn, layer: int, kv: KVView | None) -> torch.Tensor:
        b, t, _ = x.shape
        hd = self.cfg.head_dim
        q = self.q_proj(x).view(b, t, -1, hd)  # (B, T, Hq, D)
        k = self.k_proj(x).view(b, t, -1, hd)  # (B, T, Hkv, D)
        v = self.v_proj(x).view(b, t, -1, hd).transpose(1, 2)  # (B, Hkv, T, D)
        if self.cfg.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q = apply_rope(q.transpose(1, 2), cos, sin)  # (B, Hq, T, D)
        k = apply_rope(k.transpose(1, 2), cos, sin)
        if kv is None:  # whole sequence in one pass (tests, recompute baseline)
            out = attn_fn(q, k, v, causal=True, kv_lens=None)
        elif kv.host_slots is None:
            # decode straight from the cache rows: no gather, no host ints (CUDA-graph safe); the
            # engine builds such views only for one-token steps of backends with `.decode`
            kv.write_token(layer, k, v)
            mean = kv.k_mean[layer] if kv.k_mean is not None else None
            out = attn_fn.decode(q, kv.k_cache[layer], kv.v_cache[layer], kv.slots, kv.kv_lens, mean)
        else:
            k, v = kv.update(layer, k, v)
            # decode (T=1) sees every valid key: no causal mask, only the per-row lengths
            out = attn_fn(q, k, v, causal=t > 1, kv_lens=kv.kv_lens if b > 1 else None)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=cfg.mlp_bias)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=cfg.mlp_bias)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=cfg.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # SwiGLU


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, attn_fn, layer, kv):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, attn_fn, layer, kv)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig, attn_fn: AttentionFn = torch_attention):
        super().__init__()
        self.cfg = cfg
        self.attn_fn = attn_fn
        self.model = Backbone(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        inv_freq, self.rope_scale = rope_frequencies(cfg)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor | None = None,
        kv: KVView | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """input_ids (B, T), positions (B, T) -> logits (B, T, V), or (B, 1, V) with last_only."""
        b, t = input_ids.shape
        if positions is None:
            positions = torch.arange(t, device=input_ids.device).expand(b, t)
        x = self.model.embed_tokens(input_ids)  # (B, T, C)
        freqs = positions[..., None].float() * self.inv_freq  # (B, T, D/2) in fp32 for long contexts
        emb = torch.cat((freqs, freqs), dim=-1)[:, None]  # (B, 1, T, D)
        cos = (emb.cos() * self.rope_scale).to(x.dtype)
        sin = (emb.sin() * self.rope_scale).to(x.dtype)
        for i, layer in enumerate(self.model.layers):
            x = layer(x, cos, sin, self.attn_fn, i, kv)
        if last_only:
            x = x[:, -1:]
        return self.lm_head(self.model.norm(x)).float()
