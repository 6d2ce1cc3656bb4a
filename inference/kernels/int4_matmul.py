"""W4A16 matmul on the packed GPTQ layout (Triton), and the plain-torch reference beside it.

Boundary: tensors exactly as a GPTQ checkpoint stores them (see inference/gptq/format.py); no
modules, no files. y = x @ Wᵀ + b with W[n, k] = (q[k, n] - z[g(k), n]) · s[g(k), n].

Design:
- One program computes a (BLOCK_M, BLOCK_N) tile of y, walking K in BLOCK_K steps. Each step loads
  the int32 words holding BLOCK_K × BLOCK_N codes (every word is loaded 32/bits times, once per
  nibble; they sit in L1), shifts the nibbles out, subtracts zeros, multiplies by scales in the
  activation dtype, and feeds tl.dot with fp32 accumulation.
- Act-order: scales/zeros are gathered through g_idx per K row inside the kernel, so a checkpoint is
  used exactly as stored. When g_idx is trivial (k // group_size, i.e. no act-order) the launcher
  drops it and the kernel loads one scale/zero row per K step instead of a (BLOCK_K, BLOCK_N)
  gather: GROUP_SIZE is a multiple of BLOCK_K then. QuantLinear decides this once at load time.
  (Reordering rows at load, as ExLlama does, would also make act-order contiguous but needs a
  permutation of x on every call; the gather keeps the stored layout and one code path.)
- Decode (M <= configs.GEMV_MAX_M rows) goes to the GEMV kernel in int4_gemv.py instead: it loads
  each packed word once and unpacks it in registers, with no tl.dot padding M to 16.
- bits 2, 4 and 8 share the kernel (32/bits codes per word). 3-bit codes straddle words; they have no
  kernel here and go through the reference (QuantLinear does that automatically).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from inference.errors import KernelInputError
from inference.kernels.configs import GEMV_MAX_M
from inference.kernels.device import require_kernel_device
from inference.kernels.int4_gemv import GEMV_LIMIT, launch_gemv

KERNEL_BITS = (2, 4, 8)


@triton.jit
def _int4_matmul_kernel(
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
    stride_xm,
    stride_ym,
    BITS: tl.constexpr,
    ZERO_OFFSET: tl.constexpr,
    GROUP_SIZE: tl.constexpr,  # GROUP_SIZE 0: use g_idx
    HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    SPLIT_K: tl.constexpr,  # > 1: K is shared by SPLIT_K programs that atomically add fp32 partials
):
    PER_WORD: tl.constexpr = 32 // BITS
    MASK: tl.constexpr = (1 << BITS) - 1
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    pid_k = tl.program_id(2)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # (BM,)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # (BN,)
    mask_m = offs_m < M
    mask_n = offs_n < N
    zshift = (offs_n % PER_WORD) * BITS  # (BN,) position of each column's zero inside its qzeros word
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(pid_k * BLOCK_K, K, BLOCK_K * SPLIT_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)  # (BK,)
        mask_k = offs_k < K
        a = tl.load(
            x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :],
            mask=mask_m[:, None] & mask_k[None, :],
            other=0.0,
        )  # (BM, BK)
        words = tl.load(
            qw_ptr + (offs_k // PER_WORD)[:, None] * N + offs_n[None, :],
            mask=mask_k[:, None] & mask_n[None, :],
            other=0,
        )  # (BK, BN) int32
        q = (words >> ((offs_k % PER_WORD) * BITS)[:, None]) & MASK  # (BK, BN) codes
        if GROUP_SIZE > 0:
            g = k0 // GROUP_SIZE  # the whole K step lies in one group
            s = tl.load(s_ptr + g * N + offs_n, mask=mask_n, other=0.0)  # (BN,)
            zw = tl.load(qz_ptr + g * (N // PER_WORD) + offs_n // PER_WORD, mask=mask_n, other=0)
            z = ((zw >> zshift) & MASK) + ZERO_OFFSET  # (BN,)
            w = ((q - z[None, :]).to(tl.float32) * s[None, :].to(tl.float32)).to(a.dtype)  # (BK, BN)
        else:
            g = tl.load(g_ptr + offs_k, mask=mask_k, other=0)  # (BK,) act-order groups
            s = tl.load(
                s_ptr + g[:, None] * N + offs_n[None, :], mask=mask_k[:, None] & mask_n[None, :], other=0.0
            )
            zw = tl.load(
                qz_ptr + g[:, None] * (N // PER_WORD) + (offs_n // PER_WORD)[None, :],
                mask=mask_k[:, None] & mask_n[None, :],
                other=0,
            )
            z = ((zw >> zshift[None, :]) & MASK) + ZERO_OFFSET  # (BK, BN)
            w = ((q - z).to(tl.float32) * s.to(tl.float32)).to(a.dtype)
        acc = tl.dot(a, w, acc)
    if HAS_BIAS:  # noqa: SIM102 (constexpr and runtime conditions stay separate in Triton)
        if pid_k == 0:
            acc += tl.load(b_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    y_ptrs = y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :]
    y_mask = mask_m[:, None] & mask_n[None, :]
    if SPLIT_K == 1:
        tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=y_mask)
    else:
        tl.atomic_add(y_ptrs, acc, mask=y_mask)  # y is a zeroed fp32 buffer here


def _check(x, qweight, qzeros, scales, g_idx, bias, bits, zero_format) -> tuple[int, int, int]:
    if bits not in (2, 3, 4, 8):
        raise KernelInputError(f"bits={bits}: GPTQ weights have 2, 3, 4 or 8 bits")
    if zero_format not in ("v1", "v2"):
        raise KernelInputError(f"zero_format={zero_format!r}: expected 'v1' or 'v2'")
    if x.dtype not in (torch.float16, torch.bfloat16):
        raise KernelInputError(f"x: dtype {x.dtype}, expected float16 or bfloat16")
    for name, t, dtype in (("qweight", qweight, torch.int32), ("qzeros", qzeros, torch.int32)):
        if t.dtype != dtype or t.dim() != 2:
            raise KernelInputError(f"{name}: expected a 2-D {dtype} tensor, got {t.dtype} {tuple(t.shape)}")
    if scales.dtype not in (torch.float16, torch.bfloat16, torch.float32) or scales.dim() != 2:
        raise KernelInputError(
            f"scales: expected a 2-D float16 tensor, got {scales.dtype} {tuple(scales.shape)}"
        )
    k = x.shape[-1]
    n = qweight.shape[1]
    g = scales.shape[0]
    if qweight.shape[0] * 32 != k * bits:
        raise KernelInputError(
            f"qweight: {qweight.shape[0]} rows hold {qweight.shape[0] * 32 // bits} inputs, x has K={k}"
        )
    if scales.shape[1] != n or tuple(qzeros.shape) != (g, n * bits // 32):
        raise KernelInputError(
            f"scales {tuple(scales.shape)} / qzeros {tuple(qzeros.shape)} do not match N={n}, {bits} bits"
        )
    if g_idx is not None and (g_idx.dtype != torch.int32 or tuple(g_idx.shape) != (k,)):
        raise KernelInputError(f"g_idx: expected int32 ({k},), got {g_idx.dtype} {tuple(g_idx.shape)}")
    if bias is not None and tuple(bias.shape) != (n,):
        raise KernelInputError(f"bias: shape {tuple(bias.shape)}, expected ({n},)")
    for name, t in (
        ("x", x),
        ("qweight", qweight),
        ("qzeros", qzeros),
        ("scales", scales),
        ("g_idx", g_idx),
        ("bias", bias),
    ):
        if t is not None and not t.is_contiguous():
            raise KernelInputError(f"{name}: tensor is not contiguous; call .contiguous() first")
        if t is not None and t.device != x.device:
            raise KernelInputError(f"{name}: on {t.device}, x is on {x.device}")
    return k, n, g


def _trivial_group_size(g_idx: torch.Tensor | None, k: int, groups: int) -> int:
    """group_size when g_idx is absent (groups of k // groups), else 0 (gather through g_idx).

    A given g_idx is not inspected: comparing it with k // group_size would read it back from the
    GPU on every call (a host sync, and a step that cannot be captured as a CUDA graph). Callers
    that know it is trivial pass None; QuantLinear decides that once at load.
    """
    if g_idx is not None or k % groups:
        return 0
    return k // groups


@dataclass
class MatmulConfig:
    block_m: int
    block_n: int
    block_k: int
    split_k: int = 1
    num_warps: int = 4
    num_stages: int = 2


def pick_config(m: int, n: int, k: int, device: torch.device) -> MatmulConfig:
    """Tile sizes by shape, from a sweep on an H100 (benchmarks/kernels.py shapes). Small batches
    (m <= 16; m <= GEMV_MAX_M goes to the GEMV kernel unless forced here) are bound by reading the
    packed weights and need many programs in flight: split-K 4."""
    k_steps = triton.cdiv(k, 128)
    if m <= 16:
        cfg = MatmulConfig(16, 64, 128, split_k=4 if k_steps >= 16 else 1, num_warps=4, num_stages=3)
    elif m <= 64:
        cfg = MatmulConfig(
            32 if m <= 32 else 64, 64, 64, split_k=2 if k_steps >= 16 else 1, num_warps=4, num_stages=4
        )
    else:
        cfg = MatmulConfig(64, 128, 64, num_warps=8, num_stages=3)
    if device.type != "cuda":  # the interpreter: pipelining means nothing there
        cfg.num_stages = 1
    return cfg


def launch(
    x2,
    qweight,
    qzeros,
    scales,
    g_idx,
    bias,
    *,
    bits: int,
    zero_format: str,
    group_size: int,
    cfg: MatmulConfig,
) -> torch.Tensor:
    """Run the kernel on x2 (M, K) with a given tiling; g_idx None means groups of `group_size`."""
    m, k = x2.shape
    n = qweight.shape[1]
    if cfg.split_k > 1:
        y = torch.zeros(m, n, dtype=torch.float32, device=x2.device)
    else:
        y = torch.empty(m, n, dtype=x2.dtype, device=x2.device)
    grid = (triton.cdiv(m, cfg.block_m), triton.cdiv(n, cfg.block_n), cfg.split_k)
    _int4_matmul_kernel[grid](
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
        x2.stride(0),
        y.stride(0),
        BITS=bits,
        ZERO_OFFSET=1 if zero_format == "v1" else 0,
        GROUP_SIZE=group_size if g_idx is None else 0,
        HAS_BIAS=bias is not None,
        BLOCK_M=cfg.block_m,
        BLOCK_N=cfg.block_n,
        BLOCK_K=cfg.block_k,
        SPLIT_K=cfg.split_k,
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )
    return y.to(x2.dtype) if cfg.split_k > 1 else y


def int4_matmul(
    x: torch.Tensor,
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    g_idx: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    bits: int = 4,
    zero_format: str = "v1",
    gemv: bool | None = None,
) -> torch.Tensor:
    """y (..., N) = x (..., K) @ dequant(W)ᵀ (+ bias), in x's dtype, via the Triton kernels:
    the GEMV kernel (int4_gemv.py) for M <= GEMV_MAX_M rows, the tiled one above that.
    gemv=True/False forces one (benchmarks compare them; GEMV takes at most GEMV_LIMIT rows)."""
    k, n, groups = _check(x, qweight, qzeros, scales, g_idx, bias, bits, zero_format)
    if bits not in KERNEL_BITS:
        raise KernelInputError(
            f"bits={bits} has no Triton kernel (codes straddle int32 words); use int4_matmul_reference"
        )
    require_kernel_device(x, "x")
    if g_idx is None and k % groups:
        raise KernelInputError(f"scales: {groups} groups do not divide K={k}; pass g_idx")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, k)  # (M, K)
    m = x2.shape[0]
    if m == 0:
        return x2.new_empty(0, n).reshape(*lead, n)
    gs = _trivial_group_size(g_idx, k, groups)
    tensors, kw = (x2, qweight, qzeros, scales), {"bits": bits, "zero_format": zero_format}
    if gemv or (gemv is None and m <= GEMV_MAX_M):
        if m > GEMV_LIMIT:
            raise KernelInputError(f"gemv=True takes at most {GEMV_LIMIT} rows, x has {m}")
        y = launch_gemv(*tensors, None if gs else g_idx, bias, group_size=gs, **kw)
        return y.reshape(*lead, n)
    cfg = pick_config(m, n, k, x.device)
    if gs and gs % cfg.block_k:  # a K step must stay inside one group for the one-row fast path
        cfg.block_k = 32 if gs % 32 == 0 else 64
        if gs % cfg.block_k:
            gs = 0
    if not gs and g_idx is None:
        g_idx = (torch.arange(k, device=x.device, dtype=torch.int32) // (k // groups)).contiguous()
    y = launch(*tensors, None if gs else g_idx, bias, group_size=gs, cfg=cfg, **kw)
    return y.reshape(*lead, n)


def dequantize_weight(qweight, qzeros, scales, g_idx, *, bits: int, zero_format: str) -> torch.Tensor:
    """Dense float32 W (N, K) from the stored tensors."""
    from inference.gptq.format import QuantizedLinear

    k = qweight.shape[0] * 32 // bits
    if g_idx is None:
        g_idx = (torch.arange(k, device=qweight.device) // (k // scales.shape[0])).to(torch.int32)
    layer = QuantizedLinear(qweight, qzeros, scales, g_idx, bits=bits, zero_format=zero_format)
    return layer.dequantize(torch.float32)


def int4_matmul_reference(
    x: torch.Tensor,
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    g_idx: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    bits: int = 4,
    zero_format: str = "v1",
) -> torch.Tensor:
    """Plain torch: dequantize to float32, matmul in float32, cast to x's dtype."""
    _check(x, qweight, qzeros, scales, g_idx, bias, bits, zero_format)
    w = dequantize_weight(qweight, qzeros, scales, g_idx, bits=bits, zero_format=zero_format)  # (N, K)
    y = x.float() @ w.t()
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype)
