"""W4A16 GEMV for a few rows (decode): the packed GPTQ layout read once, split-K across programs.

Boundary: the same tensors and math as inference/kernels/int4_matmul.py (which dispatches here for
M <= configs.GEMV_MAX_M and holds the plain-torch reference); y = x @ Wᵀ + b with
W[n, k] = (q[k, n] - z[g(k), n]) · s[g(k), n].

Why a second kernel: at batch 1 the tiled kernel pads M to 16 rows for tl.dot and loads each packed
int32 word once per nibble (8 times at 4 bits); decode is bound by reading the weights, so this one
- loads a (BLOCK_KW, BLOCK_N) tile of words once and unpacks all 32/bits codes of each word in
  registers, as a (BLOCK_KW, 32/bits, BLOCK_N) tensor, then reuses it for every row of x;
- needs no tensor cores: per row it is a multiply and a reduction over K, in fp32;
- without act-order, a K step lies inside one group, so dequantization factors out of the sum:
  Σ_k (q_kn - z_n) s_n x_k = s_n (Σ_k q_kn x_k - z_n Σ_k x_k), applied once per step to sums over
  its words instead of to every weight. With act-order, scales and zeros are gathered per K row;
- splits K across SPLIT_K programs per column block so a 4096-wide layer still fills the GPU's
  SMs. Partials go to a (SPLIT_K, M, N) fp32 buffer and one torch sum reduces them: deterministic
  (the same bits on every call, eager or replayed from a CUDA graph), unlike fp32 atomics.
The split count and grid depend on shapes only, never on tensor values (CUDA-graph safe).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from inference.kernels.configs import GEMV_PROGRAMS_PER_SM, GemvConfig, gemv_config, sm_count

GEMV_LIMIT = 16  # rows the kernel accepts at all (it unrolls over rows; past 16 the tiled kernel wins)


@triton.jit
def _int4_gemv_kernel(
    x_ptr,
    qw_ptr,
    qz_ptr,
    s_ptr,
    g_ptr,
    b_ptr,
    y_ptr,
    M,
    N,
    K,
    KW,
    stride_xm,
    words_per_split,
    BITS: tl.constexpr,
    ZERO_OFFSET: tl.constexpr,
    GROUP_SIZE: tl.constexpr,  # 0: gather scales/zeros through g_idx
    HAS_BIAS: tl.constexpr,
    ROWS: tl.constexpr,  # M rounded up to a power of two (the row loop is unrolled)
    BLOCK_N: tl.constexpr,
    BLOCK_KW: tl.constexpr,  # packed words per K step (BLOCK_KW · 32/bits inputs)
    SPLIT_K: tl.constexpr,
):
    PER_WORD: tl.constexpr = 32 // BITS
    MASK: tl.constexpr = (1 << BITS) - 1
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # (BN,)
    mask_n = offs_n < N
    offs_j = tl.arange(0, PER_WORD)  # (PW,) code index inside a word
    zshift = (offs_n % PER_WORD) * BITS  # (BN,) position of each column's zero in its qzeros word
    rows = tl.arange(0, ROWS)  # rows >= M repeat row M - 1 (valid memory, no mask) and are not stored
    # (ROWS, PW, BN) partial sums: each step reduces only over its words (axis 0, within a thread
    # when the layout spreads threads over columns); the code-in-word axis is reduced once, at the end
    acc = tl.zeros((ROWS, PER_WORD, BLOCK_N), dtype=tl.float32)
    w_lo = pid_k * words_per_split
    w_hi = tl.minimum(w_lo + words_per_split, KW)
    for w0 in range(w_lo, w_hi, BLOCK_KW):
        offs_w = w0 + tl.arange(0, BLOCK_KW)  # (BKW,)
        mask_w = offs_w < w_hi
        words = tl.load(
            qw_ptr + offs_w[:, None] * N + offs_n[None, :], mask=mask_w[:, None] & mask_n[None, :], other=0
        )  # (BKW, BN) int32, each loaded once
        codes = ((words[:, None, :] >> (offs_j * BITS)[None, :, None]) & MASK).to(tl.float32)  # (BKW, PW, BN)
        offs_k = offs_w[:, None] * PER_WORD + offs_j[None, :]  # (BKW, PW) input index of each code
        mask_k = mask_w[:, None] & (offs_j < PER_WORD)[None, :]
        if GROUP_SIZE > 0:
            g = (w0 * PER_WORD) // GROUP_SIZE  # the whole step lies in one group
            s = tl.load(s_ptr + g * N + offs_n, mask=mask_n, other=0.0).to(tl.float32)  # (BN,)
            zw = tl.load(qz_ptr + g * (N // PER_WORD) + offs_n // PER_WORD, mask=mask_n, other=0)
            z = (((zw >> zshift) & MASK) + ZERO_OFFSET).to(tl.float32)  # (BN,)
            for r in tl.static_range(ROWS):
                xr = tl.load(x_ptr + tl.minimum(M - 1, r) * stride_xm + offs_k, mask=mask_k, other=0.0).to(
                    tl.float32
                )  # (BKW, PW)
                dot = tl.sum(codes * xr[:, :, None], axis=0)  # (PW, BN) Σ_words q x
                xsum = tl.sum(xr, axis=0)  # (PW,) Σ_words x
                part = s[None, :] * (dot - z[None, :] * xsum[:, None])  # (PW, BN)
                acc = tl.where((rows == r)[:, None, None], acc + part[None, :, :], acc)
        else:
            g = tl.load(g_ptr + offs_k, mask=mask_k, other=0)  # (BKW, PW) act-order groups
            gmask = mask_k[:, :, None] & mask_n[None, None, :]
            s = tl.load(s_ptr + g[:, :, None] * N + offs_n[None, None, :], mask=gmask, other=0.0)
            zw = tl.load(
                qz_ptr + g[:, :, None] * (N // PER_WORD) + (offs_n // PER_WORD)[None, None, :],
                mask=gmask,
                other=0,
            )
            z = ((zw >> zshift[None, None, :]) & MASK) + ZERO_OFFSET
            w = (codes - z.to(tl.float32)) * s.to(tl.float32)  # (BKW, PW, BN) dequantized weights
            for r in tl.static_range(ROWS):
                xr = tl.load(x_ptr + tl.minimum(M - 1, r) * stride_xm + offs_k, mask=mask_k, other=0.0).to(
                    tl.float32
                )
                part = tl.sum(w * xr[:, :, None], axis=0)  # (PW, BN)
                acc = tl.where((rows == r)[:, None, None], acc + part[None, :, :], acc)
    out = tl.sum(acc, axis=1)  # (ROWS, BN)
    if HAS_BIAS:  # noqa: SIM102 (constexpr and runtime conditions stay separate in Triton)
        if pid_k == 0:
            out += tl.load(b_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    y_mask = (rows < M)[:, None] & mask_n[None, :]
    y_ptrs = y_ptr + pid_k * M * N + rows[:, None] * N + offs_n[None, :]  # y is (SPLIT_K, M, N)
    if SPLIT_K == 1:
        tl.store(y_ptrs, out.to(y_ptr.dtype.element_ty), mask=y_mask)
    else:
        tl.store(y_ptrs, out, mask=y_mask)  # fp32 partials, summed by the launcher


def _largest_pow2_divisor(n: int, cap: int) -> int:
    p = 1
    while p * 2 <= cap and n % (p * 2) == 0:
        p *= 2
    return p


def choose_split_k(n: int, k_words: int, block_n: int, block_kw: int, device: torch.device) -> int:
    """Programs per column block: GEMV_PROGRAMS_PER_SM programs per SM in all, each with >= 2 K steps."""
    n_blocks = triton.cdiv(n, block_n)
    steps = triton.cdiv(k_words, block_kw)
    want = triton.cdiv(GEMV_PROGRAMS_PER_SM * sm_count(device), n_blocks)
    return max(1, min(want, steps // 2))


def launch_gemv(
    x2: torch.Tensor,
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    g_idx: torch.Tensor | None,
    bias: torch.Tensor | None,
    *,
    bits: int,
    zero_format: str,
    group_size: int,
    cfg: GemvConfig | None = None,
) -> torch.Tensor:
    """x2 (M <= GEMV_LIMIT, K) -> (M, N) in x2's dtype. g_idx None means groups of `group_size`
    (a multiple of the step is then chosen so each step lies in one group); inputs already checked
    by int4_matmul's checks."""
    m, k = x2.shape
    n = qweight.shape[1]
    if not 1 <= m <= GEMV_LIMIT:
        raise ValueError(f"launch_gemv takes 1..{GEMV_LIMIT} rows, got {m}")
    cfg = cfg or gemv_config(x2.device)
    per_word = 32 // bits
    k_words = qweight.shape[0]
    block_kw = max(1, cfg.block_k // per_word)
    if g_idx is None:
        # a K step must stay inside one group: the step's word count divides the group's
        words_per_group = group_size // per_word if group_size % per_word == 0 else 0
        if words_per_group:
            block_kw = _largest_pow2_divisor(words_per_group, block_kw)
        else:  # a group boundary inside a word: gather through an explicit g_idx
            g_idx = (torch.arange(k, device=x2.device, dtype=torch.int32) // group_size).contiguous()
    split = cfg.split_k or choose_split_k(n, k_words, cfg.block_n, block_kw, x2.device)
    steps = triton.cdiv(k_words, block_kw)
    steps_per_split = triton.cdiv(steps, split)
    split = triton.cdiv(steps, steps_per_split)  # no program without work
    out_dtype = x2.dtype if split == 1 else torch.float32
    y = torch.empty(split, m, n, dtype=out_dtype, device=x2.device)
    _int4_gemv_kernel[(triton.cdiv(n, cfg.block_n), split)](
        x2,
        qweight,
        qzeros,
        scales,
        g_idx if g_idx is not None else qweight,
        bias if bias is not None else scales,
        y,
        m,
        n,
        k,
        k_words,
        x2.stride(0),
        steps_per_split * block_kw,
        BITS=bits,
        ZERO_OFFSET=1 if zero_format == "v1" else 0,
        GROUP_SIZE=group_size if g_idx is None else 0,
        HAS_BIAS=bias is not None,
        ROWS=triton.next_power_of_2(m),
        BLOCK_N=cfg.block_n,
        BLOCK_KW=block_kw,
        SPLIT_K=split,
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )
    return y[0] if split == 1 else y.sum(dim=0).to(x2.dtype)
