"""SageAttention-style quantized attention (Triton): INT8 QKᵀ, fp16 PV, online softmax in fp32.

Boundary: q/k/v tensors in, attention output out; no KV cache, no model. References beside it:
`attention_reference` (the same quantized math in plain torch) and `attention_exact` (fp64 softmax
attention without quantization, the yardstick for accuracy).

Math (Zhang et al., SageAttention, arXiv:2410.02367):
- Smooth K: K' = K - mean_t(K) per (batch, head, channel). Every score of a query row shifts by the
  same q·mean, so softmax is unchanged, but K's per-channel outliers (a large shared bias) vanish
  before quantization; without it the INT8 grid is spent on the bias.
- Q and K are quantized per block of rows (BLOCK_M query rows, BLOCK_N key rows) symmetrically:
  s = max|x| / 127, x_i8 = round(x / s). Q's scale also carries sm_scale · log2(e), so the kernel
  gets base-2 logits straight from the INT32 product and uses exp2.
- S = (Q_i8 K_i8ᵀ) · s_q · s_k with INT32 accumulation; online softmax (running max m, sum l) in
  fp32; P is cast to V's dtype (fp16/bf16) and P·V accumulates in fp32 across key blocks.
Beyond SageAttention's Triton kernel: causal masks aligned bottom-right when Tq < Tk (query i sees
keys ≤ Tk - Tq + i; decode and chunked prefill against a KV cache), GQA/MQA (query head h reads KV
head h // (Hq/Hkv)), head_dim 64/96/128 (96 is padded to 128 in registers with masked loads), and
per-sequence key lengths `kv_lens` for padded batches (keys ≥ kv_lens[b] are masked and excluded
from the smoothing mean and the quantization scales; causal alignment uses kv_lens[b]).
head_dim > 128 has no kernel: `attention` refuses it, `attention_auto` falls back to full precision.
Key loop (as FlashAttention-2 does it): each query tile walks first the key blocks every one of its
rows sees (no length or causal test at all), then the few blocks that cross its diagonal or the end
of the keys, masked; causal tiles stop at their last row's diagonal, so the upper triangle costs
nothing. Tile sizes, warps and stages come from the table in inference/kernels/configs.py.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from inference.errors import KernelInputError
from inference.kernels.configs import attention_config
from inference.kernels.device import attention_kernels_apply, require_kernel_device, warn_full_precision_once

LOG2E = 1.4426950408889634
MAX_HEAD_DIM = 128
BLOCK_M = 128  # query rows per Q scale (SageAttention uses 128 too); tiles: configs.AttnConfig
BLOCK_N = 64  # key rows per K scale


@triton.jit
def _quant_rows_kernel(
    x_ptr,
    mean_ptr,
    lens_ptr,
    out_ptr,
    scale_ptr,
    H,
    T,
    n_blocks,
    extra_scale,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK: tl.constexpr,
    HAS_MEAN: tl.constexpr,
    HAS_LENS: tl.constexpr,
):
    """Per (block of BLOCK rows, batch*head): out = round((x - mean) / s), s = max|x - mean| / 127."""
    pid_t = tl.program_id(0)
    pid_bh = tl.program_id(1)
    offs_t = pid_t * BLOCK + tl.arange(0, BLOCK)  # (BLOCK,)
    offs_d = tl.arange(0, BLOCK_D)  # (BD,) head_dim padded to a power of two
    valid_t = offs_t < T
    if HAS_LENS:
        valid_t = valid_t & (offs_t < tl.load(lens_ptr + pid_bh // H))
    mask = valid_t[:, None] & (offs_d < HEAD_DIM)[None, :]
    base = pid_bh.to(tl.int64) * T * HEAD_DIM
    x = tl.load(x_ptr + base + offs_t[:, None] * HEAD_DIM + offs_d[None, :], mask=mask, other=0.0).to(
        tl.float32
    )
    if HAS_MEAN:
        mean = tl.load(mean_ptr + pid_bh * HEAD_DIM + offs_d, mask=offs_d < HEAD_DIM, other=0.0)
        x = tl.where(mask, x - mean[None, :], 0.0)
    amax = tl.max(tl.max(tl.abs(x), axis=1), axis=0)
    s = tl.maximum(amax, 1e-8) / 127.0
    xq = x / s
    xq = (xq + tl.where(xq >= 0, 0.5, -0.5)).to(tl.int8)  # round half away from zero
    tl.store(out_ptr + base + offs_t[:, None] * HEAD_DIM + offs_d[None, :], xq, mask=mask)
    tl.store(scale_ptr + pid_bh * n_blocks + pid_t, s * extra_scale)


@triton.jit
def _attn_inner(
    acc,
    l_i,
    m_i,
    q,
    q_scale,
    k_ptr,
    ks_ptr,
    v_ptr,
    kv_base,
    ks_base,
    offs_m,
    offs_d,
    kv_len,
    offset,
    lo,
    hi,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    K_QBLOCK: tl.constexpr,
    MASKED: tl.constexpr,
    CAUSAL: tl.constexpr,
):
    """Keys lo..hi (lo a multiple of BLOCK_N) into the online softmax. MASKED=False: every key of
    every block is visible to every row (no length or causal test, no -inf, no guard for empty rows)."""
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)  # (BN,)
        ptrs = kv_base + offs_n[:, None] * HEAD_DIM + offs_d[None, :]  # (BN, BD)
        if MASKED:
            valid_n = offs_n < kv_len
            k = tl.load(k_ptr + ptrs, mask=valid_n[:, None] & (offs_d < HEAD_DIM)[None, :], other=0)
        elif HEAD_DIM == BLOCK_D:
            k = tl.load(k_ptr + ptrs)  # no mask at all: the whole tile is in range
        else:  # head_dim 96 padded to 128 in registers
            k = tl.load(k_ptr + ptrs, mask=(offs_d < HEAD_DIM)[None, :], other=0)
        # k: (BN, BD) int8
        if BLOCK_N > K_QBLOCK:  # the tile spans several K scale blocks: one scale per key row
            k_scale = tl.load(ks_ptr + ks_base + offs_n // K_QBLOCK, mask=offs_n < kv_len, other=0.0)
            s = tl.dot(q, tl.trans(k), out_dtype=tl.int32).to(tl.float32) * (q_scale * k_scale[None, :])
        else:
            k_scale = tl.load(ks_ptr + ks_base + start_n // K_QBLOCK)
            s = tl.dot(q, tl.trans(k), out_dtype=tl.int32).to(tl.float32) * (q_scale * k_scale)
        # s: (BM, BN) logits in log2 units
        if MASKED:
            keep = valid_n[None, :]
            if CAUSAL:
                keep = keep & (offs_n[None, :] <= offset + offs_m[:, None])
            s = tl.where(keep, s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, axis=1))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows with no visible key yet
        else:
            m_new = tl.maximum(m_i, tl.max(s, axis=1))
            m_safe = m_new
        p = tl.math.exp2(s - m_safe[:, None])  # (BM, BN)
        alpha = tl.math.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        if MASKED:
            v = tl.load(v_ptr + ptrs, mask=valid_n[:, None] & (offs_d < HEAD_DIM)[None, :], other=0.0)
        elif HEAD_DIM == BLOCK_D:
            v = tl.load(v_ptr + ptrs)
        else:
            v = tl.load(v_ptr + ptrs, mask=(offs_d < HEAD_DIM)[None, :], other=0.0)
        # v: (BN, BD) fp16/bf16
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _attn_fwd_kernel(
    q_ptr,
    qs_ptr,
    k_ptr,
    ks_ptr,
    v_ptr,
    o_ptr,
    lens_ptr,
    Hq,
    Tq,
    Tk,
    n_qblocks,
    n_kblocks,
    GROUP: tl.constexpr,
    CAUSAL: tl.constexpr,
    HAS_LENS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    Q_QBLOCK: tl.constexpr,
    K_QBLOCK: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // Hq
    h = pid_bh % Hq
    bhk = b * (Hq // GROUP) + h // GROUP  # the KV head this query head reads (GQA)
    kv_len = Tk
    if HAS_LENS:
        kv_len = tl.load(lens_ptr + b)
    offset = kv_len - Tq  # bottom-right causal alignment: row i sees keys <= offset + i

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # (BM,)
    offs_d = tl.arange(0, BLOCK_D)
    mask_d = offs_d < HEAD_DIM
    q_base = pid_bh.to(tl.int64) * Tq * HEAD_DIM
    q = tl.load(
        q_ptr + q_base + offs_m[:, None] * HEAD_DIM + offs_d[None, :],
        mask=(offs_m < Tq)[:, None] & mask_d[None, :],
        other=0,
    )  # (BM, BD) int8
    # Q_QBLOCK is a multiple of BLOCK_M: the tile lies in one Q scale block (scale has sm_scale·log2 e)
    q_scale = tl.load(qs_ptr + pid_bh * n_qblocks + (pid_m * BLOCK_M) // Q_QBLOCK)

    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    # Two ranges of key blocks: [0, full_hi) is visible to every row of the tile (no masking at all),
    # [full_hi, hi) holds the diagonal (causal) and the last partial block (masked). Causal tiles stop
    # at their last row's diagonal, so the blocks above it cost nothing, and only the 2-3 blocks
    # crossing the diagonal pay for the mask.
    if CAUSAL:
        first_row = offset + pid_m * BLOCK_M  # the tile's first row sees keys <= first_row
        last_row = offset + tl.minimum((pid_m + 1) * BLOCK_M, Tq) - 1
        full_hi = (tl.minimum(tl.maximum(first_row + 1, 0), kv_len) // BLOCK_N) * BLOCK_N
        hi = tl.minimum(tl.maximum(last_row + 1, 0), kv_len)
    else:
        full_hi = (kv_len // BLOCK_N) * BLOCK_N
        hi = kv_len
    kv_base = bhk.to(tl.int64) * Tk * HEAD_DIM
    ks_base = bhk * n_kblocks
    acc, l_i, m_i = _attn_inner(
        acc, l_i, m_i, q, q_scale, k_ptr, ks_ptr, v_ptr, kv_base, ks_base, offs_m, offs_d, kv_len, offset,
        0, full_hi, HEAD_DIM, BLOCK_D, BLOCK_N, K_QBLOCK, False, CAUSAL,
    )  # fmt: skip
    acc, l_i, m_i = _attn_inner(
        acc, l_i, m_i, q, q_scale, k_ptr, ks_ptr, v_ptr, kv_base, ks_base, offs_m, offs_d, kv_len, offset,
        full_hi, hi, HEAD_DIM, BLOCK_D, BLOCK_N, K_QBLOCK, True, CAUSAL,
    )  # fmt: skip
    out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]  # rows that see no key output zeros
    tl.store(
        o_ptr + q_base + offs_m[:, None] * HEAD_DIM + offs_d[None, :],
        out.to(o_ptr.dtype.element_ty),
        mask=(offs_m < Tq)[:, None] & mask_d[None, :],
    )


# --- launchers -----------------------------------------------------------------------------------
def _check_inputs(q, k, v, kv_lens, *, kernel: bool, check_values: bool = True):
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise KernelInputError(
                f"{name}: expected 4-D (batch, heads, tokens, head_dim), got {tuple(t.shape)}"
            )
        if t.dtype not in (torch.float16, torch.bfloat16):
            raise KernelInputError(f"{name}: dtype {t.dtype}, expected float16 (or bfloat16 on CUDA)")
        if t.dtype != q.dtype:
            raise KernelInputError(f"{name}: dtype {t.dtype} differs from q's {q.dtype}")
        if t.device != q.device:
            raise KernelInputError(f"{name}: on {t.device}, q is on {q.device}")
        if kernel and not t.is_contiguous():
            raise KernelInputError(f"{name}: tensor is not contiguous; call .contiguous() first")
    bq, hq, _tq, d = q.shape
    bk, hkv, tk, dk = k.shape
    if tuple(v.shape) != tuple(k.shape):
        raise KernelInputError(f"v: shape {tuple(v.shape)} differs from k's {tuple(k.shape)}")
    if bk != bq or dk != d:
        raise KernelInputError(
            f"k: shape {tuple(k.shape)} does not match q {tuple(q.shape)} in batch/head_dim"
        )
    if hkv == 0 or hq % hkv:
        raise KernelInputError(
            f"k/v: {hkv} KV heads do not divide {hq} query heads (GQA needs Hq % Hkv == 0)"
        )
    if kv_lens is not None:
        if kv_lens.dim() != 1 or kv_lens.shape[0] != bq or kv_lens.dtype not in (torch.int32, torch.int64):
            raise KernelInputError(
                f"kv_lens: expected an int tensor of shape ({bq},), got {kv_lens.dtype} "
                f"{tuple(kv_lens.shape)}"
            )
        if kv_lens.device != q.device:
            raise KernelInputError(f"kv_lens: on {kv_lens.device}, q is on {q.device}")
        # one host sync, not two; callers inside a captured decode step skip it (values are their contract)
        if check_values and bool(((kv_lens < 0) | (kv_lens > tk)).any()):
            raise KernelInputError(f"kv_lens: values must lie in 0..{tk} (the key length)")
    return bq, hq, hkv, tk, d


def _key_mean(k: torch.Tensor, kv_lens: torch.Tensor | None) -> torch.Tensor:
    """Per-channel mean of K over its valid keys, float32 (B, Hkv, D)."""
    kf = k.float()
    if kv_lens is None:
        return kf.mean(dim=2)
    valid = (torch.arange(k.shape[2], device=k.device)[None, :] < kv_lens[:, None]).to(kf.dtype)  # (B, Tk)
    total = (kf * valid[:, None, :, None]).sum(dim=2)
    return total / kv_lens.clamp(min=1).to(kf.dtype)[:, None, None]


def quantize_rows(
    x: torch.Tensor,
    block: int,
    *,
    mean: torch.Tensor | None = None,
    kv_lens: torch.Tensor | None = None,
    extra_scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton: x (B, H, T, D) -> int8 (B, H, T, D) and float32 scales (B, H, ceil(T/block))."""
    b, h, t, d = x.shape
    n_blocks = triton.cdiv(t, block)
    out = torch.zeros(b, h, t, d, dtype=torch.int8, device=x.device)
    scales = torch.empty(b, h, n_blocks, dtype=torch.float32, device=x.device)
    if t == 0:
        return out, scales
    _quant_rows_kernel[(n_blocks, b * h)](
        x,
        mean.contiguous() if mean is not None else x,
        kv_lens.to(torch.int32) if kv_lens is not None else x,
        out,
        scales,
        h,
        t,
        n_blocks,
        extra_scale,
        HEAD_DIM=d,
        BLOCK_D=triton.next_power_of_2(d),
        BLOCK=block,
        HAS_MEAN=mean is not None,
        HAS_LENS=kv_lens is not None,
    )
    return out, scales


def attention(q, k, v, *, causal=False, sm_scale=None, smooth_k=True, kv_lens=None, config=None):
    """Quantized attention via the Triton kernels; q (B, Hq, Tq, D), k/v (B, Hkv, Tk, D) -> (B, Hq, Tq, D).
    `config` (an AttnConfig) overrides the tile table in inference/kernels/configs.py (sweeps)."""
    b, hq, hkv, tk, d = _check_inputs(q, k, v, kv_lens, kernel=True)
    if d > MAX_HEAD_DIM:
        raise KernelInputError(
            f"head_dim={d}: the quantized attention kernel supports head_dim <= {MAX_HEAD_DIM}; "
            "use attention_auto (falls back to full precision)"
        )
    require_kernel_device(q, "q")
    tq = q.shape[2]
    sm_scale = 1.0 / math.sqrt(d) if sm_scale is None else float(sm_scale)
    lens = kv_lens.to(torch.int32).contiguous() if kv_lens is not None else None
    out = torch.zeros_like(q)
    if tq == 0 or b == 0:
        return out
    mean = _key_mean(k, lens) if smooth_k else None
    q_i8, q_scale = quantize_rows(q, BLOCK_M, extra_scale=sm_scale * LOG2E)
    k_i8, k_scale = quantize_rows(k, BLOCK_N, mean=mean, kv_lens=lens)
    cfg = config or attention_config(d, q.device)
    cfg.check()
    grid = (triton.cdiv(tq, cfg.block_m), b * hq)
    _attn_fwd_kernel[grid](
        q_i8,
        q_scale,
        k_i8,
        k_scale,
        v,
        out,
        lens if lens is not None else q_scale,
        hq,
        tq,
        tk,
        q_scale.shape[2],
        k_scale.shape[2],
        GROUP=hq // hkv,
        CAUSAL=causal,
        HAS_LENS=lens is not None,
        HEAD_DIM=d,
        BLOCK_D=triton.next_power_of_2(d),
        BLOCK_M=cfg.block_m,
        BLOCK_N=cfg.block_n,
        Q_QBLOCK=BLOCK_M,
        K_QBLOCK=BLOCK_N,
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages if q.device.type == "cuda" else 1,
    )
    return out


# --- references ----------------------------------------------------------------------------------
def _mask(b, tq, tk, causal, kv_lens, device) -> torch.Tensor:
    """Boolean (B, 1, Tq, Tk): True where query i may attend key j."""
    j = torch.arange(tk, device=device)
    lens = kv_lens.to(device).long() if kv_lens is not None else torch.full((b,), tk, device=device)
    keep = j[None, None, :] < lens[:, None, None]  # (B, 1, Tk)
    keep = keep.expand(b, tq, tk)
    if causal:
        i = torch.arange(tq, device=device)
        keep = keep & (j[None, None, :] <= (lens[:, None, None] - tq + i[None, :, None]))
    return keep[:, None]


def _fake_quant_rows(
    x: torch.Tensor, block: int, valid: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Torch twin of quantize_rows: int-valued float32 codes and per-row scales (B, H, T)."""
    b, h, t, d = x.shape
    if valid is not None:
        x = x * valid[:, None, :, None]
    pad = (-t) % block
    xp = torch.nn.functional.pad(x, (0, 0, 0, pad)).view(b, h, -1, block, d)
    s = xp.abs().amax(dim=(3, 4)).clamp(min=1e-8) / 127.0  # (B, H, nblocks)
    codes = torch.clamp(torch.sign(xp) * torch.floor(xp.abs() / s[..., None, None] + 0.5), -127, 127)
    codes = codes.view(b, h, -1, d)[:, :, :t]
    return codes, s.repeat_interleave(block, dim=2)[:, :, :t]


def attention_reference(q, k, v, *, causal=False, sm_scale=None, smooth_k=True, kv_lens=None):
    """Plain torch, same quantized math as the kernel (INT8 codes, exp2, P rounded to q's dtype)."""
    b, hq, hkv, tk, d = _check_inputs(q, k, v, kv_lens, kernel=False)
    tq = q.shape[2]
    sm_scale = 1.0 / math.sqrt(d) if sm_scale is None else float(sm_scale)
    valid = None
    if kv_lens is not None:
        valid = (torch.arange(tk, device=q.device)[None, :] < kv_lens[:, None]).float()  # (B, Tk)
    kf = k.float()
    if smooth_k:
        kf = kf - _key_mean(k, kv_lens)[:, :, None, :]
    q_codes, q_s = _fake_quant_rows(q.float(), BLOCK_M, None)
    k_codes, k_s = _fake_quant_rows(kf, BLOCK_N, valid)
    group = hq // hkv
    k_codes = k_codes.repeat_interleave(group, dim=1)
    k_s = k_s.repeat_interleave(group, dim=1)
    vv = v.repeat_interleave(group, dim=1).float()
    # Integer products are exact in float32 here: |sum| <= 127² · 128 < 2^24.
    s = (q_codes @ k_codes.transpose(-1, -2)) * (q_s[..., :, None] * sm_scale * LOG2E) * k_s[..., None, :]
    keep = _mask(b, tq, tk, causal, kv_lens, q.device)
    s = s.masked_fill(~keep, float("-inf"))
    m = s.amax(dim=-1, keepdim=True)
    m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
    p = torch.exp2(s - m)
    denom = p.sum(dim=-1, keepdim=True)
    out = (p.to(q.dtype).float() @ vv) / torch.where(denom == 0, torch.ones_like(denom), denom)
    return out.to(q.dtype)


def attention_exact(q, k, v, *, causal=False, sm_scale=None, kv_lens=None, dtype=torch.float64):
    """Unquantized softmax attention in float64 (the accuracy yardstick), returned in `dtype`."""
    b, hq, hkv, tk, d = _check_inputs(q, k, v, kv_lens, kernel=False)
    sm_scale = 1.0 / math.sqrt(d) if sm_scale is None else float(sm_scale)
    group = hq // hkv
    kk = k.double().repeat_interleave(group, dim=1)
    vv = v.double().repeat_interleave(group, dim=1)
    s = (q.double() @ kk.transpose(-1, -2)) * sm_scale
    keep = _mask(b, q.shape[2], tk, causal, kv_lens, q.device)
    s = s.masked_fill(~keep, float("-inf"))
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)  # rows without keys: zeros
    return (p @ vv).to(dtype)


def attention_full_precision(q, k, v, *, causal=False, sm_scale=None, kv_lens=None, validate=True):
    """Unquantized attention in q's dtype (SDPA with an explicit mask): the fallback path.
    validate=False skips the kv_lens value check, the one host sync here."""
    b, hq, hkv, tk, _d = _check_inputs(q, k, v, kv_lens, kernel=False, check_values=validate)
    group = hq // hkv
    keep = _mask(b, q.shape[2], tk, causal, kv_lens, q.device)
    kk = k.repeat_interleave(group, dim=1)
    vv = v.repeat_interleave(group, dim=1)
    if q.device.type != "cuda":  # CPU SDPA in fp16 is slow and lossy; compute in float32
        out = torch.nn.functional.scaled_dot_product_attention(
            q.float(), kk.float(), vv.float(), attn_mask=keep, scale=sm_scale
        )
    else:
        out = torch.nn.functional.scaled_dot_product_attention(q, kk, vv, attn_mask=keep, scale=sm_scale)
    return torch.where(keep.any(dim=-1, keepdim=True), out, torch.zeros_like(out)).to(q.dtype)


def attention_auto(q, k, v, *, causal=False, sm_scale=None, smooth_k=True, kv_lens=None):
    """The kernel when it applies (head_dim <= 128, CUDA or interpreter), full precision otherwise."""
    if attention_kernels_apply(q, MAX_HEAD_DIM):
        return attention(
            q.contiguous(),
            k.contiguous(),
            v.contiguous(),
            causal=causal,
            sm_scale=sm_scale,
            smooth_k=smooth_k,
            kv_lens=kv_lens,
        )
    warn_full_precision_once("quantized", q)
    return attention_full_precision(q, k, v, causal=causal, sm_scale=sm_scale, kv_lens=kv_lens)
