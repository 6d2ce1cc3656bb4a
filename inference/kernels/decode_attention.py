"""Slot-indexed decode attention (Triton): one new query token per sequence against the KV cache.

Boundary: one layer's cache tensors (S, Hkv, Tmax, D), the batch's cache rows `slots` (B,) and
valid lengths `kv_lens` (B,) in, attention output (B, Hq, 1, D) out. Knows nothing about the
engine or the model; the caller owns the cache and writes the new token's K/V before calling.

CUDA-graph safety, the reason this exists: K/V are read straight from rows `slots[b]` of the cache
(no gather copy), each program reads its own `kv_lens[b]` and bounds its key loop with it, and every
Python-side shape, the grid and the split count depend on tensor *shapes* only. Nothing here reads a
tensor value on the host, so one captured graph replays for any slots/kv_lens contents.
Contract (not checked, since checking would need a host sync): 0 <= slots[b] < S and
1 <= kv_lens[b] <= Tmax. kv_lens is clamped to Tmax in the kernel so a bad value cannot read past a
row; a bad slot reads another tensor's memory.

Math: the prefill kernel's (inference/kernels/quant_attention.py, after SageAttention,
arXiv:2410.02367) with Tq = 1: each query head's row is quantized to int8 with its own scale (the
prefill kernel's per-BLOCK_M scale covers exactly that one row at decode), carrying
sm_scale·log2(e); K is quantized per BLOCK_N block of keys after subtracting the caller's per-slot
smoothing vector `k_mean` (softmax is invariant to it) with keys >= kv_len zeroed, so padding never
enters a scale; INT32 QKᵀ, exp2 online softmax in fp32, P cast to V's dtype, fp32 PV accumulation.

Layout (Dao et al., "Flash-Decoding for long-context inference", 2023): the grid is
(B·Hkv, NUM_SPLITS). One program holds the GROUP = Hq/Hkv query heads of one KV head as the rows of
its tile (padded to >= 16 for tl.dot), so each K/V block is loaded once per KV head (GQA/MQA), and
handles one fixed key range of Tmax. A split starting past kv_len writes an empty partial
(m = -inf, l = 0); a second small kernel merges the partials with their log-sum-exp weights (with
one split the first kernel writes the output itself). A row with kv_lens[b] = 0 comes out as zeros.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from inference.errors import KernelInputError
from inference.kernels.device import require_kernel_device
from inference.kernels.quant_attention import (
    BLOCK_M,
    LOG2E,
    MAX_HEAD_DIM,
    _fake_quant_rows,
)

BLOCK_N = 64  # keys per inner step and per K scale, as in the prefill kernel
MAX_SPLITS = 32  # more splits only add partials to merge; 32 keeps >= 2 blocks per split at Tmax 4096
H100_SMS = 132  # split target off CUDA (the interpreter), where there is no device to ask


@triton.jit
def _decode_split_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    slots_ptr,
    lens_ptr,
    mean_ptr,
    o_ptr,
    m_ptr,
    l_ptr,
    acc_ptr,
    qk_scale,
    Hkv,
    Tmax,
    split_len,
    stride_qb,
    stride_qh,
    stride_qd,
    stride_ks,
    stride_kh,
    stride_kt,
    stride_kd,
    stride_vs,
    stride_vh,
    stride_vt,
    stride_vd,
    stride_ob,
    stride_oh,
    stride_od,
    stride_ms,
    stride_mh,
    stride_md,
    GROUP: tl.constexpr,
    NUM_SPLITS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_G: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HAS_MEAN: tl.constexpr,
):
    pid_bh = tl.program_id(0)
    pid_s = tl.program_id(1)
    b = pid_bh // Hkv
    hk = pid_bh % Hkv
    slot = tl.load(slots_ptr + b).to(tl.int64)
    kv_len = tl.minimum(tl.load(lens_ptr + b).to(tl.int32), Tmax)  # runtime bound, never on the host
    lo = pid_s * split_len  # split_len is a multiple of BLOCK_N: K scale blocks start at 0 mod BLOCK_N
    hi = tl.minimum(kv_len, lo + split_len)

    offs_g = tl.arange(0, BLOCK_G)  # (BG,) query heads hk*GROUP + g of this KV head
    offs_d = tl.arange(0, BLOCK_D)  # (BD,) head_dim padded to a power of two
    mask_g = offs_g < GROUP
    mask_d = offs_d < HEAD_DIM
    heads = hk * GROUP + offs_g
    q = tl.load(
        q_ptr + b.to(tl.int64) * stride_qb + heads[:, None] * stride_qh + offs_d[None, :] * stride_qd,
        mask=mask_g[:, None] & mask_d[None, :],
        other=0.0,
    ).to(tl.float32)  # (BG, BD)
    q_s = tl.maximum(tl.max(tl.abs(q), axis=1), 1e-8) / 127.0  # (BG,) one scale per query head
    qq = q / q_s[:, None]
    q_i8 = (qq + tl.where(qq >= 0, 0.5, -0.5)).to(tl.int8)  # round half away from zero
    q_scale = q_s * qk_scale  # carries sm_scale * log2(e): scores come out in log2 units

    if HAS_MEAN:
        mean = tl.load(
            mean_ptr + slot * stride_ms + hk * stride_mh + offs_d * stride_md, mask=mask_d, other=0.0
        )  # (BD,) fp32
    k_base = k_ptr + slot * stride_ks + hk.to(tl.int64) * stride_kh
    v_base = v_ptr + slot * stride_vs + hk.to(tl.int64) * stride_vh

    m_i = tl.full((BLOCK_G,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_G,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_G, BLOCK_D), dtype=tl.float32)
    for start_n in range(lo, hi, BLOCK_N):  # empty when the split starts past kv_len
        offs_n = start_n + tl.arange(0, BLOCK_N)  # (BN,)
        valid_n = offs_n < kv_len
        kv_mask = valid_n[:, None] & mask_d[None, :]
        k = tl.load(
            k_base + offs_n[:, None] * stride_kt + offs_d[None, :] * stride_kd, mask=kv_mask, other=0.0
        ).to(tl.float32)  # (BN, BD)
        if HAS_MEAN:
            k = tl.where(kv_mask, k - mean[None, :], 0.0)
        k_s = tl.maximum(tl.max(tl.max(tl.abs(k), axis=1), axis=0), 1e-8) / 127.0
        kk = k / k_s
        k_i8 = (kk + tl.where(kk >= 0, 0.5, -0.5)).to(tl.int8)
        s = tl.dot(q_i8, tl.trans(k_i8), out_dtype=tl.int32).to(tl.float32) * (q_scale[:, None] * k_s)
        s = tl.where(valid_n[None, :], s, float("-inf"))  # (BG, BN); every block has a valid key
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        p = tl.math.exp2(s - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(
            v_base + offs_n[:, None] * stride_vt + offs_d[None, :] * stride_vd, mask=kv_mask, other=0.0
        )  # (BN, BD) fp16/bf16; garbage (even NaN) past kv_len is never loaded
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new

    row_mask = mask_g[:, None] & mask_d[None, :]
    if NUM_SPLITS == 1:  # no partials to merge: normalise and write the output directly
        out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
        tl.store(
            o_ptr + b.to(tl.int64) * stride_ob + heads[:, None] * stride_oh + offs_d[None, :] * stride_od,
            out.to(o_ptr.dtype.element_ty),
            mask=row_mask,
        )
    else:  # partials (B, Hq, NUM_SPLITS[, D]) fp32, indexed by (b*Hq + head)*NUM_SPLITS + split
        part = (b * Hkv * GROUP + heads).to(tl.int64) * NUM_SPLITS + pid_s  # (BG,)
        tl.store(m_ptr + part, m_i, mask=mask_g)
        tl.store(l_ptr + part, l_i, mask=mask_g)
        tl.store(acc_ptr + part[:, None] * HEAD_DIM + offs_d[None, :], acc, mask=row_mask)


@triton.jit
def _decode_combine_kernel(
    m_ptr,
    l_ptr,
    acc_ptr,
    o_ptr,
    Hq,
    stride_ob,
    stride_oh,
    stride_od,
    NUM_SPLITS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_S: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """Per (b, query head): out = Σ_s 2^(m_s - M) acc_s / Σ_s 2^(m_s - M) l_s, M = max_s m_s."""
    pid = tl.program_id(0)  # b * Hq + head
    b = pid // Hq
    h = pid % Hq
    offs_s = tl.arange(0, BLOCK_S)
    offs_d = tl.arange(0, BLOCK_D)
    mask_s = offs_s < NUM_SPLITS
    mask_d = offs_d < HEAD_DIM
    base = pid.to(tl.int64) * NUM_SPLITS
    m = tl.load(m_ptr + base + offs_s, mask=mask_s, other=float("-inf"))  # (BS,) -inf: empty split
    l_s = tl.load(l_ptr + base + offs_s, mask=mask_s, other=0.0)
    m_max = tl.max(m, axis=0)
    m_safe = tl.where(m_max == float("-inf"), 0.0, m_max)  # no key at all: output zeros, not NaN
    w = tl.math.exp2(m - m_safe)  # (BS,) empty splits weigh 0
    l_tot = tl.sum(l_s * w, axis=0)
    acc = tl.load(
        acc_ptr + (base + offs_s[:, None]) * HEAD_DIM + offs_d[None, :],
        mask=mask_s[:, None] & mask_d[None, :],
        other=0.0,
    )  # (BS, BD)
    out = tl.sum(acc * w[:, None], axis=0) / tl.where(l_tot == 0.0, 1.0, l_tot)
    tl.store(
        o_ptr + b.to(tl.int64) * stride_ob + h * stride_oh + offs_d * stride_od,
        out.to(o_ptr.dtype.element_ty),
        mask=mask_d,
    )


# --- launcher ------------------------------------------------------------------------------------
def _check_inputs(q, k_cache, v_cache, slots, kv_lens, k_mean) -> tuple[int, int, int, int, int, int]:
    """Shapes, dtypes and devices only: reading slots/kv_lens values here would sync with the GPU."""
    if q.dim() != 4 or q.shape[2] != 1:
        raise KernelInputError(f"q: expected 4-D (batch, heads, 1, head_dim), got {tuple(q.shape)}")
    if q.dtype not in (torch.float16, torch.bfloat16):
        raise KernelInputError(f"q: dtype {q.dtype}, expected float16 (or bfloat16 on CUDA)")
    for name, t in (("k_cache", k_cache), ("v_cache", v_cache)):
        if t.dim() != 4:
            raise KernelInputError(
                f"{name}: expected 4-D (slots, kv_heads, max_tokens, head_dim), got {tuple(t.shape)}"
            )
        if t.dtype != q.dtype:
            raise KernelInputError(f"{name}: dtype {t.dtype} differs from q's {q.dtype}")
        if t.device != q.device:
            raise KernelInputError(f"{name}: on {t.device}, q is on {q.device}")
    if tuple(v_cache.shape) != tuple(k_cache.shape):
        raise KernelInputError(
            f"v_cache: shape {tuple(v_cache.shape)} differs from k_cache's {tuple(k_cache.shape)}"
        )
    b, hq, _, d = q.shape
    s, hkv, tmax, dk = k_cache.shape
    if dk != d:
        raise KernelInputError(f"k_cache: head_dim {dk} differs from q's {d}")
    if hkv == 0 or hq % hkv:
        raise KernelInputError(
            f"k_cache: {hkv} KV heads do not divide {hq} query heads (GQA needs Hq % Hkv == 0)"
        )
    if tmax == 0 or s == 0:
        raise KernelInputError(f"k_cache: shape {tuple(k_cache.shape)} holds no slot or no position")
    for name, t in (("slots", slots), ("kv_lens", kv_lens)):
        if t.dim() != 1 or t.shape[0] != b or t.dtype not in (torch.int32, torch.int64):
            raise KernelInputError(
                f"{name}: expected an int32/int64 tensor of shape ({b},), got {t.dtype} {tuple(t.shape)}"
            )
        if t.device != q.device:
            raise KernelInputError(f"{name}: on {t.device}, q is on {q.device}")
    if k_mean is not None:
        if tuple(k_mean.shape) != (s, hkv, d) or k_mean.dtype != torch.float32:
            raise KernelInputError(
                f"k_mean: expected float32 of shape {(s, hkv, d)}, got {k_mean.dtype} {tuple(k_mean.shape)}"
            )
        if k_mean.device != q.device:
            raise KernelInputError(f"k_mean: on {k_mean.device}, q is on {q.device}")
    return b, hq, hkv, s, tmax, d


def choose_num_splits(batch: int, kv_heads: int, tmax: int, device: torch.device) -> int:
    """Key splits per (sequence, KV head), from shapes only: ~2 programs per SM, at most one per
    BLOCK_N keys of Tmax, at most MAX_SPLITS."""
    if device.type == "cuda":
        sms = torch.cuda.get_device_properties(device).multi_processor_count
    else:
        sms = H100_SMS
    n_blocks = triton.cdiv(tmax, BLOCK_N)
    want = max(1, min(triton.cdiv(2 * sms, max(1, batch * kv_heads)), MAX_SPLITS, n_blocks))
    return triton.cdiv(n_blocks, triton.cdiv(n_blocks, want))  # no split left starting past Tmax


def decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slots: torch.Tensor,
    kv_lens: torch.Tensor,
    k_mean: torch.Tensor | None = None,
    *,
    sm_scale: float | None = None,
    num_splits: int | None = None,
) -> torch.Tensor:
    """q (B, Hq, 1, D) fp16/bf16; k_cache/v_cache (S, Hkv, Tmax, D) one layer's cache, same dtype;
    slots (B,) int32/int64: cache row of each query; kv_lens (B,) int32/int64: valid keys of that row
    (1..Tmax); k_mean (S, Hkv, D) float32 or None: per-slot smoothing vector subtracted from K before
    quantization (softmax is invariant to it). Returns (B, Hq, 1, D) in q's dtype.

    slots/kv_lens values are the caller's contract and are not validated (that needs a host sync);
    num_splits overrides the shape-based split count (tests, tuning). Safe to capture in a CUDA graph.
    """
    b, hq, hkv, _s, tmax, d = _check_inputs(q, k_cache, v_cache, slots, kv_lens, k_mean)
    if d > MAX_HEAD_DIM:
        raise KernelInputError(
            f"head_dim={d}: the decode attention kernel supports head_dim <= {MAX_HEAD_DIM}"
        )
    require_kernel_device(q, "q")
    if num_splits is None:
        num_splits = choose_num_splits(b, hkv, tmax, q.device)
    elif not 1 <= num_splits <= triton.cdiv(tmax, BLOCK_N):
        raise KernelInputError(f"num_splits={num_splits}: expected 1..{triton.cdiv(tmax, BLOCK_N)}")
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    if b == 0:
        return out
    sm_scale = 1.0 / math.sqrt(d) if sm_scale is None else float(sm_scale)
    group = hq // hkv
    # keys per split, a whole number of BLOCK_N blocks so K's scale blocks match the reference's;
    # then drop splits that would start past Tmax (e.g. 5 blocks in 4 splits -> 3 splits of 2 blocks)
    blocks_per_split = triton.cdiv(triton.cdiv(tmax, BLOCK_N), num_splits)
    split_len = blocks_per_split * BLOCK_N
    num_splits = triton.cdiv(tmax, split_len)
    if num_splits > 1:  # partials: (B, Hq, NS) running max / sum, (B, Hq, NS, D) unnormalised output
        m_part = torch.empty(b, hq, num_splits, dtype=torch.float32, device=q.device)
        l_part = torch.empty_like(m_part)
        acc_part = torch.empty(b, hq, num_splits, d, dtype=torch.float32, device=q.device)
    else:
        m_part = l_part = acc_part = out  # unused: the split kernel writes `out` itself
    block_d = max(32, triton.next_power_of_2(d))  # int8 MMA wants a reduction width >= 32
    on_cuda = q.device.type == "cuda"
    _decode_split_kernel[(b * hkv, num_splits)](
        q,
        k_cache,
        v_cache,
        slots,
        kv_lens,
        k_mean if k_mean is not None else q,
        out,
        m_part,
        l_part,
        acc_part,
        sm_scale * LOG2E,
        hkv,
        tmax,
        split_len,
        q.stride(0),
        q.stride(1),
        q.stride(3),
        *k_cache.stride(),
        *v_cache.stride(),
        out.stride(0),
        out.stride(1),
        out.stride(3),
        *(k_mean.stride() if k_mean is not None else (0, 0, 0)),
        GROUP=group,
        NUM_SPLITS=num_splits,
        HEAD_DIM=d,
        BLOCK_D=block_d,
        BLOCK_G=max(16, triton.next_power_of_2(group)),
        BLOCK_N=BLOCK_N,
        HAS_MEAN=k_mean is not None,
        num_warps=4,
        num_stages=2 if on_cuda else 1,
    )
    if num_splits > 1:
        _decode_combine_kernel[(b * hq,)](
            m_part,
            l_part,
            acc_part,
            out,
            hq,
            out.stride(0),
            out.stride(1),
            out.stride(3),
            NUM_SPLITS=num_splits,
            HEAD_DIM=d,
            BLOCK_S=triton.next_power_of_2(num_splits),
            BLOCK_D=block_d,
            num_warps=2 if on_cuda else 1,
        )
    return out


# --- reference -----------------------------------------------------------------------------------
def decode_attention_reference(q, k_cache, v_cache, slots, kv_lens, k_mean=None, *, sm_scale=None):
    """Plain torch, same quantized math as the kernel, on rows gathered from the cache (for tests).

    Unlike the kernel it reads kv_lens/slots values freely (it indexes with them)."""
    _b, hq, hkv, _s, tmax, d = _check_inputs(q, k_cache, v_cache, slots, kv_lens, k_mean)
    sm_scale = 1.0 / math.sqrt(d) if sm_scale is None else float(sm_scale)
    idx = slots.long()
    valid = torch.arange(tmax, device=q.device)[None, :] < kv_lens.long()[:, None]  # (B, Tmax)
    valid4 = valid[:, None, :, None]
    kf = k_cache[idx].float()  # (B, Hkv, Tmax, D)
    if k_mean is not None:
        kf = kf - k_mean[idx][:, :, None, :]
    kf = torch.where(valid4, kf, 0.0)  # where, not a product: garbage past kv_len may be inf/NaN
    vv = torch.where(valid4, v_cache[idx].float(), 0.0)
    q_codes, q_s = _fake_quant_rows(q.float(), BLOCK_M, None)  # Tq = 1: one scale per query head
    k_codes, k_s = _fake_quant_rows(kf, BLOCK_N, None)
    group = hq // hkv
    k_codes = k_codes.repeat_interleave(group, dim=1)
    k_s = k_s.repeat_interleave(group, dim=1)
    vv = vv.repeat_interleave(group, dim=1)
    # integer products are exact in float32: |sum| <= 127² · 128 < 2^24
    s = (q_codes @ k_codes.transpose(-1, -2)) * (q_s[..., :, None] * sm_scale * LOG2E) * k_s[..., None, :]
    s = s.masked_fill(~valid[:, None, None, :], float("-inf"))  # (B, Hq, 1, Tmax)
    m = s.amax(dim=-1, keepdim=True)
    m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
    p = torch.exp2(s - m)
    denom = p.sum(dim=-1, keepdim=True)
    out = (p.to(q.dtype).float() @ vv) / torch.where(denom == 0, torch.ones_like(denom), denom)
    return out.to(q.dtype)
