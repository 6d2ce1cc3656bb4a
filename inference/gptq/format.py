"""The GPTQ checkpoint format as AutoGPTQ, GPTQModel, HF transformers and vLLM store it.

Boundary: tensors and files only (safetensors + JSON); no model code, no kernels.

Per quantized linear layer `name` (nn.Linear weight is (N, K) = (out, in)):
  name.qweight  int32 (K*bits/32, N)  values packed along K (input dim), lowest bits first
  name.qzeros   int32 (G, N*bits/32)  zero points packed along N (output dim)
  name.scales   fp16  (G, N)          G = K / group_size (group_size -1: one group, G = 1)
  name.g_idx    int32 (K,)            group of each input column (non-trivial with act-order)
  name.bias     fp16  (N,)            optional
Dequantized: W[n, k] = (q[k, n] - zero[g_idx[k], n]) * scale[g_idx[k], n].

Packing is one little-endian bit stream per column: for 2/4/8 bits each int32 holds 32/bits whole
values; for 3 bits 32 values fill 3 int32 words and values straddle word boundaries (AutoGPTQ's
3-bit layout is exactly this stream), so K (and N for qzeros) must be a multiple of 32.

Zero points: v1 (`checkpoint_format: gptq`, what AutoGPTQ writes) stores real zero minus one,
v2 (`gptq_v2`, GPTQModel's internal format) stores the real zero. A symmetric 4-bit checkpoint has
real zero 8: v1 stores 7. Stored 8 under a v1 label is a v2 checkpoint mislabelled (it happens when
tools re-save converted weights); we warn and read it as v2 instead of producing garbage.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from inference.errors import CheckpointError, InferenceError
from inference.gptq.options import check_bits

log = logging.getLogger(__name__)

ZERO_FORMATS = {"gptq": "v1", "gptq_v2": "v2"}
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
QUANTIZE_CONFIG = "quantize_config.json"
QUANT_SUFFIXES = ("qweight", "qzeros", "scales", "g_idx")


# --- packing -------------------------------------------------------------------------------------
def pack(values: torch.Tensor, bits: int, dim: int) -> torch.Tensor:
    """Pack unsigned `bits`-bit integers along `dim` (0 or 1) of a 2-D tensor into int32 words."""
    check_bits(bits)
    if values.dim() != 2:
        raise InferenceError(f"pack expects a 2-D tensor, got shape {tuple(values.shape)}")
    v = values.to(torch.int64)
    if dim == 1:
        return pack(v.t(), bits, 0).t().contiguous()
    rows, cols = v.shape
    if v.min() < 0 or v.max() >= (1 << bits):
        raise InferenceError(f"values to pack are outside 0..{(1 << bits) - 1} for {bits} bits")
    if (rows * bits) % 32 or (bits == 3 and rows % 32):
        raise InferenceError(f"cannot pack {rows} values of {bits} bits into whole int32 words")
    if bits != 3:
        per = 32 // bits
        shifts = torch.arange(per, dtype=torch.int64, device=v.device) * bits  # (per,)
        words = (v.view(rows // per, per, cols) << shifts[None, :, None]).sum(dim=1)  # (rows/per, cols)
    else:
        # 3 bits: expand to a bit stream of 96 bits per 32 values, regroup as 3 words of 32 bits.
        bitpos = torch.arange(3, dtype=torch.int64, device=v.device)
        stream = (v.view(rows // 32, 32, 1, cols) >> bitpos[None, None, :, None]) & 1  # (R/32, 32, 3, C)
        stream = stream.reshape(rows // 32, 3, 32, cols)  # bit b of the stream -> word b//32, bit b%32
        words = (stream << torch.arange(32, dtype=torch.int64, device=v.device)[None, None, :, None]).sum(
            dim=2
        )
        words = words.reshape(rows * 3 // 32, cols)
    # Reinterpret as signed int32 (the checkpoint dtype) with two's-complement wraparound.
    words = torch.where(words >= 2**31, words - 2**32, words)
    return words.to(torch.int32)


def unpack(packed: torch.Tensor, bits: int, dim: int) -> torch.Tensor:
    """Inverse of `pack`: int32 words -> unsigned values as int32, `32/bits` times longer along `dim`."""
    check_bits(bits)
    if packed.dtype != torch.int32 or packed.dim() != 2:
        raise InferenceError(f"unpack expects a 2-D int32 tensor, got {packed.dtype} {tuple(packed.shape)}")
    if dim == 1:
        return unpack(packed.t(), bits, 0).t().contiguous()
    w = packed.to(torch.int64) & 0xFFFFFFFF  # unsigned view of each word
    words, cols = w.shape
    if bits != 3:
        per = 32 // bits
        shifts = torch.arange(per, dtype=torch.int64, device=w.device) * bits
        vals = (w[:, None, :] >> shifts[None, :, None]) & ((1 << bits) - 1)  # (words, per, cols)
        return vals.reshape(words * per, cols).to(torch.int32)
    if words % 3:
        raise InferenceError(f"a 3-bit tensor needs a multiple of 3 words along dim {dim}, got {words}")
    stream = (
        w.view(words // 3, 3, 1, cols)
        >> torch.arange(32, dtype=torch.int64, device=w.device)[None, None, :, None]
    ) & 1
    stream = stream.reshape(words // 3, 32, 3, cols)  # bit stream of 96 -> 32 values x 3 bits
    vals = (stream << torch.arange(3, dtype=torch.int64, device=w.device)[None, None, :, None]).sum(dim=2)
    return vals.reshape(words // 3 * 32, cols).to(torch.int32)


# --- config --------------------------------------------------------------------------------------
@dataclass
class QuantConfig:
    """`quantize_config.json` / `config.json["quantization_config"]` (the keys other tools read)."""

    bits: int = 4
    group_size: int = 128  # -1: one group per output row (per-channel)
    desc_act: bool = False  # act-order: quantize columns by decreasing Hessian diagonal
    sym: bool = True
    damp_percent: float = 0.01
    true_sequential: bool = True
    checkpoint_format: str = "gptq"  # "gptq" (v1 zeros) or "gptq_v2"
    quant_method: str = "gptq"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_bits(self.bits)
        if self.group_size != -1 and self.group_size <= 0:
            raise InferenceError(f"group_size={self.group_size} must be positive or -1 (whole rows)")
        if self.checkpoint_format not in ZERO_FORMATS:
            raise InferenceError(
                f"checkpoint_format={self.checkpoint_format!r} is unknown: expected 'gptq' or 'gptq_v2'"
            )

    @property
    def zero_format(self) -> str:
        return ZERO_FORMATS[self.checkpoint_format]

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "extra"}
        return {**self.extra, **out}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "quantization config") -> QuantConfig:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        if data.get("quant_method", "gptq") != "gptq":
            raise CheckpointError(f"{source}: quant_method={data.get('quant_method')!r}, expected 'gptq'")
        if "bits" not in data:
            raise CheckpointError(f"{source}: 'bits' is missing")
        kwargs = {k: data[k] for k in known if k in data}
        kwargs.setdefault("checkpoint_format", "gptq")
        extra = {k: v for k, v in data.items() if k not in known}
        try:
            return cls(**kwargs, extra=extra)
        except (InferenceError, TypeError) as exc:
            raise CheckpointError(f"{source}: {exc}") from exc


# --- one layer -----------------------------------------------------------------------------------
@dataclass
class QuantizedLinear:
    """The stored tensors of one GPTQ linear layer plus what is needed to interpret them."""

    qweight: torch.Tensor  # int32 (K*bits/32, N)
    qzeros: torch.Tensor  # int32 (G, N*bits/32)
    scales: torch.Tensor  # fp16 (G, N)
    g_idx: torch.Tensor  # int32 (K,)
    bits: int
    zero_format: str = "v1"  # "v1": stored = real - 1; "v2": stored = real
    bias: torch.Tensor | None = None  # (N,)

    @property
    def in_features(self) -> int:
        return self.g_idx.numel()

    @property
    def out_features(self) -> int:
        return self.scales.shape[1]

    @property
    def num_groups(self) -> int:
        return self.scales.shape[0]

    def validate(self, name: str = "layer") -> QuantizedLinear:
        """Check dtypes and shapes against each other; raise CheckpointError naming the tensor."""
        check_bits(self.bits, f"{name}: bits")
        for attr, dtype in (("qweight", torch.int32), ("qzeros", torch.int32), ("g_idx", torch.int32)):
            t = getattr(self, attr)
            if t.dtype != dtype:
                raise CheckpointError(f"{name}.{attr}: dtype {t.dtype}, expected {dtype}")
        if self.scales.dtype not in (torch.float16, torch.bfloat16, torch.float32):
            raise CheckpointError(f"{name}.scales: dtype {self.scales.dtype}, expected float16")
        if (
            self.scales.dim() != 2
            or self.qweight.dim() != 2
            or self.qzeros.dim() != 2
            or self.g_idx.dim() != 1
        ):
            raise CheckpointError(f"{name}: qweight/qzeros/scales must be 2-D and g_idx 1-D")
        k, n, g = self.in_features, self.out_features, self.num_groups
        expect = {
            "qweight": (k * self.bits // 32, n),
            "qzeros": (g, n * self.bits // 32),
        }
        for attr, shape in expect.items():
            if tuple(getattr(self, attr).shape) != shape:
                raise CheckpointError(
                    f"{name}.{attr}: shape {tuple(getattr(self, attr).shape)}, expected {shape} "
                    f"for K={k}, N={n}, {g} groups, {self.bits} bits"
                )
        if (k * self.bits) % 32 or (n * self.bits) % 32:
            raise CheckpointError(f"{name}: K={k} and N={n} must fill whole int32 words at {self.bits} bits")
        if self.g_idx.numel() and (self.g_idx.min() < 0 or self.g_idx.max() >= g):
            raise CheckpointError(f"{name}.g_idx: values must lie in 0..{g - 1}")
        if self.bias is not None and tuple(self.bias.shape) != (n,):
            raise CheckpointError(f"{name}.bias: shape {tuple(self.bias.shape)}, expected ({n},)")
        if self.zero_format not in ("v1", "v2"):
            raise CheckpointError(f"{name}: zero_format {self.zero_format!r}, expected 'v1' or 'v2'")
        return self

    def to(self, device: torch.device | str) -> QuantizedLinear:
        """The same layer with its tensors on `device`."""
        move = {k: getattr(self, k).to(device) for k in ("qweight", "qzeros", "scales", "g_idx")}
        bias = None if self.bias is None else self.bias.to(device)
        return QuantizedLinear(**move, bits=self.bits, zero_format=self.zero_format, bias=bias)

    def int_weight(self) -> torch.Tensor:
        """Quantized values q[k, n] as int32 (K, N)."""
        return unpack(self.qweight, self.bits, dim=0)

    def zeros(self) -> torch.Tensor:
        """Real zero points (G, N) as float32, v1's off-by-one undone."""
        z = unpack(self.qzeros, self.bits, dim=1).float()
        return z + 1 if self.zero_format == "v1" else z

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Dense weight (N, K), nn.Linear layout."""
        q = self.int_weight().float()  # (K, N)
        g = self.g_idx.long()
        w = (q - self.zeros()[g]) * self.scales.float()[g]  # (K, N)
        return w.t().contiguous().to(dtype)


def pack_linear(
    intweight: torch.Tensor,
    zeros: torch.Tensor,
    scales: torch.Tensor,
    g_idx: torch.Tensor,
    *,
    bits: int,
    zero_format: str = "v1",
    bias: torch.Tensor | None = None,
) -> QuantizedLinear:
    """From quantized values (N, K) ints, real zeros (G, N) ints and scales (G, N) to stored tensors."""
    check_bits(bits)
    stored = zeros.to(torch.int64) - (1 if zero_format == "v1" else 0)
    if stored.min() < 0:
        # v1 cannot store a real zero of 0 (AutoGPTQ would wrap it to 2^bits-1, a known bug);
        # the quantizer keeps zeros >= 1 when it writes v1, so reaching this is a caller error.
        raise InferenceError("a real zero point of 0 cannot be stored in the v1 ('gptq') format; use gptq_v2")
    layer = QuantizedLinear(
        qweight=pack(intweight.t().contiguous(), bits, dim=0),
        qzeros=pack(stored, bits, dim=1),
        scales=scales.to(torch.float16).contiguous(),
        g_idx=g_idx.to(torch.int32).contiguous(),
        bits=bits,
        zero_format=zero_format,
        bias=None if bias is None else bias.to(torch.float16).contiguous(),
    )
    return layer.validate()


def detect_zero_format(layer: QuantizedLinear, config: QuantConfig, name: str) -> str:
    """The zero convention the stored zeros really follow; warns when it contradicts the label.

    Only symmetric checkpoints carry enough evidence: every real zero is 2^(bits-1), so v1 stores
    2^(bits-1)-1 and v2 stores 2^(bits-1) everywhere.
    """
    labelled = config.zero_format
    if not config.sym:
        return labelled
    stored = unpack(layer.qzeros, layer.bits, dim=1)
    mid = 1 << (layer.bits - 1)
    if labelled == "v1" and bool((stored == mid).all()):
        log.warning(
            "%s: checkpoint says checkpoint_format='gptq' (v1) but its symmetric zeros are stored as %d "
            "(the v2 convention); reading it as gptq_v2",
            name,
            mid,
        )
        return "v2"
    if labelled == "v2" and bool((stored == mid - 1).all()):
        log.warning(
            "%s: checkpoint says checkpoint_format='gptq_v2' but its symmetric zeros are stored as %d "
            "(the v1 convention); reading it as gptq (v1)",
            name,
            mid - 1,
        )
        return "v1"
    return labelled


# --- files ---------------------------------------------------------------------------------------
def load_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of a folder: one `model.safetensors` or shards listed in the index file."""
    folder = Path(folder)
    index = folder / INDEX_FILE
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{index}: not a safetensors index (no 'weight_map'): {exc}") from exc
        files = sorted(set(weight_map.values()))
    else:
        files = sorted(p.name for p in folder.glob("*.safetensors"))
        weight_map = None
    if not files:
        raise CheckpointError(f"{folder}: no *.safetensors files (and no {INDEX_FILE})")
    tensors: dict[str, torch.Tensor] = {}
    for fname in files:
        path = folder / fname
        if not path.exists():
            raise CheckpointError(f"{path}: listed in {INDEX_FILE} but missing")
        try:
            tensors.update(load_file(str(path)))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{path}: cannot read safetensors: {exc}") from exc
    if weight_map is not None:
        missing = sorted(set(weight_map) - set(tensors))
        if missing:
            raise CheckpointError(
                f"{folder}: tensors listed in the index but absent: {', '.join(missing[:5])}"
            )
    return tensors


def save_tensors(
    folder: Path,
    tensors: Mapping[str, torch.Tensor],
    *,
    max_shard_bytes: int = 4 * 2**30,
    metadata: Mapping[str, str] | None = None,
) -> list[str]:
    """Write tensors as one file, or as shards plus `model.safetensors.index.json` when larger."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu().clone()  # clone: tied weights must not share storage
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += nbytes
    meta = {"format": "pt", **(metadata or {})}
    if len(shards) == 1:
        save_file(shards[0], str(folder / SINGLE_FILE), metadata=meta)
        return [SINGLE_FILE]
    names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map = {}
    for fname, shard in zip(names, shards, strict=True):
        save_file(shard, str(folder / fname), metadata=meta)
        weight_map.update(dict.fromkeys(shard, fname))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    (folder / INDEX_FILE).write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
    )
    return names


@dataclass
class GPTQCheckpoint:
    folder: Path
    config: dict[str, Any]  # config.json as read
    quant: QuantConfig
    layers: dict[str, QuantizedLinear]  # module path -> tensors, e.g. "model.layers.0.mlp.up_proj"
    tensors: dict[str, torch.Tensor]  # everything else: embeddings, norms, lm_head


def read_quant_config(folder: Path) -> tuple[dict[str, Any], QuantConfig]:
    folder = Path(folder)
    config: dict[str, Any] = {}
    cfg_path = folder / "config.json"
    if cfg_path.exists():
        try:
            config = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{cfg_path}: invalid JSON: {exc}") from exc
    qc_path = folder / QUANTIZE_CONFIG
    if "quantization_config" in config:
        return config, QuantConfig.from_json(config["quantization_config"], f"{cfg_path} quantization_config")
    if qc_path.exists():
        try:
            data = json.loads(qc_path.read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{qc_path}: invalid JSON: {exc}") from exc
        return config, QuantConfig.from_json(data, str(qc_path))
    raise CheckpointError(
        f"{folder}: not a GPTQ checkpoint: no {QUANTIZE_CONFIG} and no quantization_config in config.json"
    )


def read_layer(
    parts: Mapping[str, torch.Tensor],
    quant: QuantConfig,
    name: str,
    *,
    in_features: int | None = None,
    out_features: int | None = None,
) -> QuantizedLinear:
    """One layer from its stored tensors `{qweight, qzeros, scales[, g_idx][, bias]}`, validated.

    The one reader of a GPTQ layer: `read_checkpoint` and the model loader both come through here,
    so what the tests check is what the server runs (3-bit included). `in_features`/`out_features`,
    when given, are the sizes the model expects.
    """
    for suffix in ("qweight", "qzeros", "scales"):
        if suffix not in parts:
            raise CheckpointError(f"{name}.{suffix} is missing")
    qweight = parts["qweight"]
    k = in_features if in_features is not None else qweight.shape[0] * 32 // quant.bits
    gs = k if quant.group_size == -1 else quant.group_size
    g_idx = parts.get("g_idx")
    if g_idx is None:  # old checkpoints omit g_idx when act-order is off
        g_idx = (torch.arange(k, device=qweight.device) // gs).to(torch.int32)
    layer = QuantizedLinear(
        qweight=qweight,
        qzeros=parts["qzeros"],
        scales=parts["scales"],
        g_idx=g_idx.to(torch.int32),
        bits=quant.bits,
        zero_format=quant.zero_format,
        bias=parts.get("bias"),
    ).validate(name)
    expect = (k, out_features if out_features is not None else layer.out_features)
    if (layer.in_features, layer.out_features) != expect:
        raise CheckpointError(
            f"{name}: tensors describe a {layer.in_features}->{layer.out_features} layer, "
            f"the model expects {expect[0]}->{expect[1]}"
        )
    expected_groups = -(-k // gs)
    if layer.num_groups != expected_groups:
        raise CheckpointError(
            f"{name}.scales: {layer.num_groups} groups, expected {expected_groups} "
            f"for K={k} and group_size={quant.group_size}"
        )
    layer.zero_format = detect_zero_format(layer, quant, name)
    return layer


def read_checkpoint(folder: Path) -> GPTQCheckpoint:
    """Read a GPTQ checkpoint folder into per-layer tensors, validating every layer."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: checkpoint folder does not exist")
    config, quant = read_quant_config(folder)
    tensors = load_tensors(folder)
    prefixes = sorted({n.rsplit(".", 1)[0] for n in tensors if n.rsplit(".", 1)[-1] in QUANT_SUFFIXES})
    layers: dict[str, QuantizedLinear] = {}
    for prefix in prefixes:
        parts = {
            suffix: tensors.pop(f"{prefix}.{suffix}")
            for suffix in (*QUANT_SUFFIXES, "bias")
            if f"{prefix}.{suffix}" in tensors
        }
        layers[prefix] = read_layer(parts, quant, prefix)
    if not layers:
        raise CheckpointError(f"{folder}: no quantized layers (no *.qweight tensors)")
    return GPTQCheckpoint(folder, config, quant, layers, tensors)


def write_checkpoint(
    folder: Path,
    *,
    config: Mapping[str, Any],
    quant: QuantConfig,
    layers: Mapping[str, QuantizedLinear],
    tensors: Mapping[str, torch.Tensor],
    max_shard_bytes: int = 4 * 2**30,
    copy_from: Path | None = None,
    copy_files: Iterable[str] = (),
) -> None:
    """Write safetensors (sharded when large), config.json with quantization_config, quantize_config.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, torch.Tensor] = dict(tensors)
    for prefix, layer in layers.items():
        layer.validate(prefix)
        if layer.zero_format != quant.zero_format:
            raise InferenceError(
                f"{prefix}: zero_format {layer.zero_format} differs from {quant.checkpoint_format}"
            )
        out[f"{prefix}.qweight"] = layer.qweight
        out[f"{prefix}.qzeros"] = layer.qzeros
        out[f"{prefix}.scales"] = layer.scales
        out[f"{prefix}.g_idx"] = layer.g_idx
        if layer.bias is not None:
            out[f"{prefix}.bias"] = layer.bias
    for stale in [*folder.glob("*.safetensors"), folder / INDEX_FILE]:
        stale.unlink(missing_ok=True)
    save_tensors(folder, out, max_shard_bytes=max_shard_bytes)
    cfg = {**config, "quantization_config": quant.to_json()}
    (folder / "config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False))
    (folder / QUANTIZE_CONFIG).write_text(json.dumps(quant.to_json(), indent=2))
    if copy_from is not None:
        for fname in copy_files:
            src = Path(copy_from) / fname
            if src.exists():
                shutil.copy2(src, folder / fname)
