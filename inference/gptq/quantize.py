"""GPTQ (Frantar et al., 2022, arXiv:2210.17323) and round-to-nearest, per weight and per model.

Boundary: weights, activations and token ids. Calibration text arrives as token ids from the caller
(the CLI samples it from the corpus store); this module never sees posts.

Per linear layer W (N, K) with calibration inputs X (n, K):
  H = 2/n Σ x xᵀ; dead columns (H_kk = 0) are zeroed; H += λI with λ = damp_percent · mean(diag H);
  U = chol(H⁻¹) upper; columns are quantized in `column_order` (stored order, act-order, or the
  default group-aware order that keeps g_idx trivial), each group's scale from a min/max range,
  optionally shrunk to the least squared error (`clip_search`, on by default); each column's error
  e = (w - q)/U_kk is pushed onto the not-yet-quantized columns of its block of 128 through U's
  row, and whole blocks are updated lazily at once (the paper's section 4 trick: the O(K²N) update
  becomes matrix-matrix instead of matrix-vector).
Model level: decoder layers one at a time on the outputs of the already quantized previous layers;
inside a layer, true-sequential order: linears fed by the same input (q/k/v, gate/up) form a step,
and each step's Hessians are collected after the previous steps were quantized.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from inference.errors import QuantizeError
from inference.gptq.format import QuantizedLinear, pack_linear
from inference.gptq.options import QuantOptions

log = logging.getLogger(__name__)


@dataclass
class QuantResult:
    intweight: torch.Tensor  # int32 (N, K), values in 0..2^bits-1
    scales: torch.Tensor  # float32 (G, N)
    zeros: torch.Tensor  # int32 (G, N), real zero points
    g_idx: torch.Tensor  # int32 (K,)
    dequant: torch.Tensor  # float32 (N, K) = (intweight - zero[g]) * scale[g]

    def pack(self, bits: int, zero_format: str, bias: torch.Tensor | None = None) -> QuantizedLinear:
        return pack_linear(
            self.intweight,
            self.zeros.t().contiguous().t(),
            self.scales,
            self.g_idx,
            bits=bits,
            zero_format=zero_format,
            bias=bias,
        )


def _check_groups(k: int, opts: QuantOptions, name: str) -> int:
    gs = k if opts.group_size == -1 else opts.group_size
    if k % gs:
        raise QuantizeError(f"{name}: group_size={opts.group_size} does not divide in_features={k}")
    return gs


# Range shrink factors tried by `clip_search`: 1.0 down to 0.7 in steps of 0.025. The GPTQ reference
# code tries 80 factors down to 0.2 under |err|^2.4; that cost 10 s per 1536x576 layer on this
# busy 2-core box (35 min for SmolLM2's 210 layers), and 4-bit optima lie near 0.8-1.0.
CLIP_SHRINKS = tuple(1 - 0.025 * i for i in range(13))


def find_params(w: torch.Tensor, opts: QuantOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and real zero per row of w (N, cols) by min/max, the range always containing 0;
    with `clip_search` the range is shrunk per row (by CLIP_SHRINKS) to the least squared error."""
    xmin = w.min(dim=1).values.clamp(max=0)  # (N,)
    xmax = w.max(dim=1).values.clamp(min=0)
    scale, zero = _range_params(xmin, xmax, opts)
    if not opts.clip_search:
        return scale, zero
    maxq = (1 << opts.bits) - 1
    best = torch.full_like(scale, float("inf"))
    for shrink in CLIP_SHRINKS:
        s1, z1 = _range_params(xmin * shrink, xmax * shrink, opts)
        q = (quantize_values(w, s1, z1, maxq) - z1[:, None]) * s1[:, None]
        err = (q - w).square().sum(dim=1)
        better = err < best
        best = torch.where(better, err, best)
        scale = torch.where(better, s1, scale)
        zero = torch.where(better, z1, zero)
    return scale, zero


def _range_params(
    xmin: torch.Tensor, xmax: torch.Tensor, opts: QuantOptions
) -> tuple[torch.Tensor, torch.Tensor]:
    maxq = (1 << opts.bits) - 1
    if opts.sym:
        xmax = torch.maximum(-xmin, xmax)
        xmin = -xmax
    empty = (xmin == 0) & (xmax == 0)  # an all-zero row: any scale works, avoid 0/0
    xmin = torch.where(empty, -torch.ones_like(xmin), xmin)
    xmax = torch.where(empty, torch.ones_like(xmax), xmax)
    # Rounded to fp16 now because the checkpoint stores fp16 scales: the error feedback then
    # compensates the weights that will actually be served.
    scale = ((xmax - xmin) / maxq).half().float()
    if opts.sym:
        zero = torch.full_like(scale, (maxq + 1) // 2)
    else:
        zero = torch.round(-xmin / scale).clamp(1 if opts.zero_format == "v1" else 0, maxq)
    return scale, zero


def quantize_values(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, maxq: int) -> torch.Tensor:
    """Integer codes of w (N, ...) with per-row scale/zero (N,)."""
    shape = (-1,) + (1,) * (w.dim() - 1)
    return torch.clamp(torch.round(w / scale.view(shape)) + zero.view(shape), 0, maxq)


def rtn_quantize(w: torch.Tensor, opts: QuantOptions, name: str = "weight") -> QuantResult:
    """Round-to-nearest per group: the baseline GPTQ is measured against."""
    w = w.detach().float()
    n, k = w.shape
    gs = _check_groups(k, opts, name)
    maxq = (1 << opts.bits) - 1
    wg = w.view(n, k // gs, gs).transpose(0, 1)  # (G, N, gs)
    scale, zero = find_params(wg.reshape(-1, gs), opts)  # per row: all groups in one call
    scale, zero = scale.view(k // gs, n), zero.view(k // gs, n)  # (G, N)
    q = torch.clamp(torch.round(wg / scale[..., None]) + zero[..., None], 0, maxq)  # (G, N, gs)
    deq = ((q - zero[..., None]) * scale[..., None]).transpose(0, 1).reshape(n, k)
    g_idx = (torch.arange(k) // gs).to(torch.int32)
    return QuantResult(
        q.transpose(0, 1).reshape(n, k).to(torch.int32), scale, zero.to(torch.int32), g_idx, deq
    )


class HessianAccumulator:
    """Running H = 2/n Σ x xᵀ over calibration rows, in float32."""

    def __init__(self, k: int, name: str, device: torch.device | str = "cpu"):
        self.name = name
        self.h = torch.zeros(k, k, dtype=torch.float32, device=device)
        self.n = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().reshape(-1, x.shape[-1]).float()  # (rows, K)
        if not torch.isfinite(x).all():
            raise QuantizeError(f"{self.name}: calibration activations contain NaN or Inf")
        rows = x.shape[0]
        self.h *= self.n / (self.n + rows)
        self.n += rows
        x = x * math.sqrt(2 / self.n)
        self.h += x.t() @ x


def gptq_quantize(w: torch.Tensor, h: torch.Tensor, opts: QuantOptions, name: str = "weight") -> QuantResult:
    """GPTQ for one weight (N, K) given its Hessian (K, K)."""
    w = w.detach().float().clone()
    k = w.shape[1]
    gs = _check_groups(k, opts, name)
    if h.shape != (k, k):
        raise QuantizeError(f"{name}: Hessian shape {tuple(h.shape)} does not match in_features={k}")
    if not torch.isfinite(h).all():
        raise QuantizeError(f"{name}: Hessian contains NaN or Inf")
    maxq = (1 << opts.bits) - 1
    h = h.float().clone()
    dead = torch.diag(h) == 0  # inputs that were always zero: their weights cannot matter
    h[dead, dead] = 1
    w[:, dead] = 0

    perm = column_order(torch.diag(h), opts, gs)
    w = w[:, perm]
    h = h[perm][:, perm]
    hinv = _inverse_cholesky(h, opts.damp_percent, name)

    q_int = torch.zeros_like(w)
    q_deq = torch.zeros_like(w)
    scales: list[torch.Tensor] = []
    zeros: list[torch.Tensor] = []
    if opts.group_size == -1:
        scale, zero = find_params(w, opts)
        scales.append(scale)
        zeros.append(zero)
    for i1 in range(0, k, opts.block_size):
        i2 = min(i1 + opts.block_size, k)
        w1 = w[:, i1:i2].clone()  # (N, B) updated in place with the block's error feedback
        err1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            if opts.group_size != -1 and col % gs == 0:
                # Group params from the already error-corrected weights of this group (in the
                # permuted order with act-order, so groups are contiguous there: g_idx below).
                scale, zero = find_params(torch.cat([w1[:, i:], w[:, i2:]], dim=1)[:, :gs], opts)
                scales.append(scale)
                zeros.append(zero)
            wc = w1[:, i]  # (N,)
            qc = quantize_values(wc, scale, zero, maxq)
            dq = (qc - zero) * scale
            q_int[:, col] = qc
            q_deq[:, col] = dq
            e = (wc - dq) / hinv1[i, i]
            w1[:, i:] -= e[:, None] * hinv1[i, i:][None, :]
            err1[:, i] = e
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]  # the lazy block update

    inv = torch.argsort(perm)
    scale_t, zero_t = torch.stack(scales), torch.stack(zeros)
    if opts.act_order or opts.group_size == -1:
        g_idx = (torch.arange(k, device=inv.device) // gs)[inv]  # column perm[j] is in group j // gs
    else:
        # group-aware order keeps every group's columns together: processed group j is stored
        # group perm[j * gs] // gs, and g_idx stays k // gs (the kernels' fast path)
        stored = perm[::gs] // gs
        scale_t, zero_t = scale_t[torch.argsort(stored)], zero_t[torch.argsort(stored)]
        g_idx = torch.arange(k, device=inv.device) // gs
    return QuantResult(
        q_int[:, inv].to(torch.int32), scale_t, zero_t.to(torch.int32), g_idx.to(torch.int32), q_deq[:, inv]
    )


def _inverse_cholesky(h: torch.Tensor, damp_percent: float, name: str) -> torch.Tensor:
    """Upper Cholesky factor of (H + λI)⁻¹, λ = damp · mean(diag H). When H is too ill-conditioned
    for float32 the dampening grows by 0.01 until it factors (GPTQModel's damp_auto_increment
    does the same), with a warning naming the layer, instead of failing a long run at layer 20."""
    mean_diag = torch.mean(torch.diag(h))
    eye = torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
    damp = damp_percent
    while True:
        try:
            return torch.linalg.cholesky(
                torch.cholesky_inverse(torch.linalg.cholesky(h + damp * mean_diag * eye)), upper=True
            )
        except torch.linalg.LinAlgError as exc:
            if damp + 0.01 >= 1:
                raise QuantizeError(
                    f"{name}: Hessian not positive definite even with damp_percent={damp:.2f}"
                ) from exc
            damp += 0.01
            log.warning("%s: Hessian not positive definite; damp_percent raised to %.2f", name, damp)


def column_order(diag: torch.Tensor, opts: QuantOptions, gs: int) -> torch.Tensor:
    """The order GPTQ quantizes columns in: as stored; by decreasing H_kk (act-order); or group-aware
    (GPTQModel's act_group_aware: groups by decreasing max H_kk, inside each group by decreasing
    H_kk), which lets the important columns absorb less accumulated error while each group's
    columns stay contiguous in storage."""
    k = diag.numel()
    if opts.act_order:
        return torch.argsort(diag, descending=True)
    if not opts.group_aware or opts.group_size == -1:
        return torch.arange(k, device=diag.device)
    per_group = diag.view(k // gs, gs)
    local = torch.argsort(per_group, dim=1, descending=True)
    groups = torch.argsort(per_group.max(dim=1).values, descending=True)
    return (local + torch.arange(0, k, gs, device=diag.device)[:, None])[groups].reshape(k)


# --- model level ---------------------------------------------------------------------------------
def fit_group_size(widths: Sequence[int], requested: int) -> int:
    """The group size to use for layers of these input widths: `requested` when it divides them all,
    else the largest multiple of 32 below it that does (one group size per checkpoint, as the GPTQ
    config holds one; 32 keeps 2/4/8-bit packing whole). SmolLM2's 576-wide layers with 128 give 96.
    -1 (per channel) always fits."""
    if requested == -1 or all(k % requested == 0 for k in widths):
        return requested
    for gs in range(requested - requested % 32, 0, -32):
        if all(k % gs == 0 for k in widths):
            return gs
    return -1


def linear_widths(model: nn.Module) -> list[int]:
    """The input widths of the linears inside the decoder layers (what a group size must divide)."""
    _, blocks = find_decoder_layers(model)
    return sorted({m.in_features for m in blocks.modules() if isinstance(m, nn.Linear)})


class _Stop(Exception):
    """Raised by the capture hook to stop the forward pass after the first decoder layer's inputs."""


def find_decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The ModuleList of decoder layers (HF Llama/Qwen/Mistral: model.model.layers)."""
    n_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for name, module in model.named_modules():
        if (
            isinstance(module, nn.ModuleList)
            and len(module)
            and (n_layers is None or len(module) == n_layers)
            and any(isinstance(m, nn.Linear) for m in module[0].modules())
        ):
            return name, module
    raise QuantizeError("cannot find the decoder layers: no nn.ModuleList of blocks holding nn.Linear layers")


def _linear_steps(
    layer: nn.Module, batches: Sequence[tuple[tuple, dict]], true_sequential: bool
) -> list[list[str]]:
    """Linears grouped into steps by shared input, in call order (q/k/v | o | gate/up | down)."""
    linears = {n: m for n, m in layer.named_modules() if isinstance(m, nn.Linear)}
    calls: list[tuple[str, int]] = []
    hooks = [
        m.register_forward_hook(lambda _m, inp, _out, n=n: calls.append((n, inp[0].data_ptr())))
        for n, m in linears.items()
    ]
    try:
        args, kwargs = batches[0]
        layer(*args, **kwargs)
    finally:
        for hk in hooks:
            hk.remove()
    steps: list[list[str]] = []
    last_ptr = None
    for name, ptr in calls:
        if name in (s for step in steps for s in step):
            continue
        if steps and ptr == last_ptr:
            steps[-1].append(name)
        else:
            steps.append([name])
        last_ptr = ptr
    missing = [n for n in linears if n not in {s for step in steps for s in step}]
    if missing:
        steps.append(missing)  # never called on calibration data: quantized with an identity-like H
    if not true_sequential:
        return [[n for step in steps for n in step]]
    return steps


def _layer_out(out):
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def quantize_model_(
    model: nn.Module,
    calib_ids: torch.Tensor,
    opts: QuantOptions,
    *,
    method: str = "gptq",
    batch_size: int = 8,
    on_layer: Callable[[int, int, str], None] | None = None,
) -> dict[str, QuantizedLinear]:
    """Quantize every nn.Linear inside the decoder layers in place (weights replaced by dequantized
    values), returning their packed tensors keyed by module path. calib_ids: (n, T) token ids."""
    if method not in ("gptq", "rtn"):
        raise QuantizeError(f"method={method!r}: expected 'gptq' or 'rtn'")
    if calib_ids.dim() != 2 or calib_ids.numel() == 0:
        raise QuantizeError(
            f"calibration ids must be a non-empty (samples, tokens) tensor, got {tuple(calib_ids.shape)}"
        )
    model.eval()
    prefix, layers = find_decoder_layers(model)
    device = next(model.parameters()).device
    if method == "rtn":  # no activations needed: skip the calibration passes (5.8 min on SmolLM2 here)
        return _rtn_model_(layers, prefix, opts, on_layer)

    # 1. Inputs of the first decoder layer, with the kwargs the model passes (masks, rotary cos/sin).
    batches: list[tuple[tuple, dict]] = []

    def capture(_m, args, kwargs):
        batches.append((args, kwargs))
        raise _Stop

    handle = layers[0].register_forward_pre_hook(capture, with_kwargs=True)
    try:
        for start in range(0, calib_ids.shape[0], batch_size):
            with contextlib.suppress(_Stop):
                model(calib_ids[start : start + batch_size].to(device), use_cache=False)
    finally:
        handle.remove()

    packed: dict[str, QuantizedLinear] = {}
    for li, layer in enumerate(layers):
        steps = _linear_steps(layer, batches, opts.true_sequential)
        modules = dict(layer.named_modules())
        for step in steps:
            hessians: dict[str, HessianAccumulator] = {}
            hooks = []
            for name in step:
                lin = modules[name]
                acc = HessianAccumulator(lin.in_features, f"{prefix}.{li}.{name}", device)
                hessians[name] = acc
                hooks.append(lin.register_forward_hook(lambda _m, inp, _o, acc=acc: acc.add(inp[0])))
            try:
                for args, kwargs in batches:
                    layer(*args, **kwargs)
            finally:
                for hk in hooks:
                    hk.remove()
            for name in step:
                lin = modules[name]
                full = f"{prefix}.{li}.{name}"
                acc = hessians[name]
                h = acc.h if acc.n else torch.eye(lin.in_features, device=device)
                res = gptq_quantize(lin.weight, h, opts, full)
                lin.weight.data = res.dequant.to(lin.weight.dtype)
                packed[full] = res.pack(opts.bits, opts.zero_format, lin.bias)
        # 2. This layer's outputs (through its quantized weights) feed the next layer.
        batches = [((_layer_out(layer(*args, **kwargs)), *args[1:]), kwargs) for args, kwargs in batches]
        if on_layer is not None:
            on_layer(li + 1, len(layers), f"{prefix}.{li}")
    return packed


def _rtn_model_(
    layers: nn.ModuleList, prefix: str, opts: QuantOptions, on_layer: Callable[[int, int, str], None] | None
) -> dict[str, QuantizedLinear]:
    packed: dict[str, QuantizedLinear] = {}
    for li, layer in enumerate(layers):
        for name, lin in layer.named_modules():
            if isinstance(lin, nn.Linear):
                full = f"{prefix}.{li}.{name}"
                res = rtn_quantize(lin.weight, opts, full)
                lin.weight.data = res.dequant.to(lin.weight.dtype)
                packed[full] = res.pack(opts.bits, opts.zero_format, lin.bias)
        if on_layer is not None:
            on_layer(li + 1, len(layers), f"{prefix}.{li}")
    return packed


# --- folder to folder ----------------------------------------------------------------------------
COPY_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "generation_config.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
)


def calibration_ids(
    tokenizer, texts: Sequence[str], *, samples: int, seq_len: int, seed: int = 0
) -> torch.Tensor:
    """(n, seq_len) windows drawn at random from the concatenated, EOS-separated texts."""
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for text in texts:
        if text and text.strip():
            ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
            if eos is not None:
                ids.append(eos)
    n_windows = len(ids) // seq_len
    if n_windows == 0:
        raise QuantizeError(
            f"calibration text has {len(ids)} tokens, fewer than one window of {seq_len}; ingest more text "
            "or lower --seq-len"
        )
    data = torch.tensor(ids[: n_windows * seq_len], dtype=torch.long).view(n_windows, seq_len)
    pick = torch.randperm(n_windows, generator=torch.Generator().manual_seed(seed))[:samples]
    return data[pick]


def quantize_folder(
    model_dir: Path | str,
    out_dir: Path | str,
    texts: Sequence[str],
    opts: QuantOptions,
    *,
    calib_samples: int = 128,
    seq_len: int = 512,
    method: str = "gptq",
    on_layer: Callable[[int, int, str], None] | None = None,
    fit_groups: bool = True,
) -> dict:
    """Quantize a HF causal-LM folder (Llama/Qwen/Mistral layout) into a GPTQ checkpoint folder."""
    import json

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from inference.errors import CheckpointError
    from inference.gptq.format import QuantConfig, write_checkpoint

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    cfg_path = model_dir / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{model_dir}: no config.json (is this a Hugging Face model folder?)")
    config = json.loads(cfg_path.read_text())
    if "quantization_config" in config:
        raise QuantizeError(
            f"{model_dir}: the model is already quantized ({config['quantization_config'].get('quant_method')})"
        )
    if out_dir.resolve() == model_dir.resolve():
        raise QuantizeError("OUT_DIR must differ from MODEL_DIR")
    seq_len = min(seq_len, int(config.get("max_position_embeddings", seq_len)))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    hf_logging.disable_progress_bar()  # the CLI shows its own per-layer progress
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{model_dir}: cannot load with transformers: {exc}") from exc
    ids = calibration_ids(tokenizer, texts, samples=calib_samples, seq_len=seq_len)
    requested_group = opts.group_size
    if fit_groups:
        opts = dataclasses.replace(opts, group_size=fit_group_size(linear_widths(model), opts.group_size))
    layers = quantize_model_(model, ids, opts, method=method, on_layer=on_layer)
    quantized = {f"{name}.{suffix}" for name in layers for suffix in ("weight", "bias")}
    tensors = {
        k: v.to(torch.float16) if v.is_floating_point() else v
        for k, v in model.state_dict().items()
        if k not in quantized
    }
    if config.get("tie_word_embeddings"):
        tensors.pop("lm_head.weight", None)
    quant = QuantConfig(
        bits=opts.bits,
        group_size=opts.group_size,
        desc_act=opts.act_order,
        sym=opts.sym,
        damp_percent=opts.damp_percent,
        true_sequential=opts.true_sequential,
        checkpoint_format="gptq" if opts.zero_format == "v1" else "gptq_v2",
        # informational, as GPTQModel records them; readers need only g_idx
        extra={"act_group_aware": opts.group_aware, "clip_search": opts.clip_search},
    )
    # transformers 5 reads "dtype" and older versions "torch_dtype": both say what the file holds
    config = {**config, "torch_dtype": "float16", "dtype": "float16"}
    write_checkpoint(
        out_dir,
        config=config,
        quant=quant,
        layers=layers,
        tensors=tensors,
        copy_from=model_dir,
        copy_files=COPY_FILES,
    )
    return {
        "out_dir": str(out_dir),
        "layers": len(layers),
        "calib_samples": int(ids.shape[0]),
        "seq_len": seq_len,
        "bits": opts.bits,
        "group_size": opts.group_size,
        "requested_group_size": requested_group,
        "method": method,
    }
