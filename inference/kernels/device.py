"""Where the Triton kernels can run, checked once for every launcher.

Boundary: device and dtype checks only; no kernels here.
"""

from __future__ import annotations

import logging
import os

import torch

from inference.errors import KernelInputError

log = logging.getLogger(__name__)
_warned: set[str] = set()


def kernel_available(device: torch.device) -> bool:
    """The Triton kernels can run: CUDA, or any device when TRITON_INTERPRET=1 (tests on CPU)."""
    return device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"


def require_kernel_device(t: torch.Tensor, name: str) -> None:
    """One clear error when `t` (the launcher's main input) cannot go through a Triton kernel."""
    if not kernel_available(t.device):
        raise KernelInputError(
            f"{name} is on {t.device}: the Triton kernel needs CUDA (or TRITON_INTERPRET=1)"
        )
    if t.dtype == torch.bfloat16 and t.device.type != "cuda":
        raise KernelInputError(f"{name}: bfloat16 needs CUDA (the Triton interpreter has no bfloat16)")


def attention_kernels_apply(q: torch.Tensor, max_head_dim: int) -> bool:
    """The quantized attention kernels can take q: head_dim within reach, on CUDA, or under the
    interpreter in float16 (it has no bfloat16, and fp32 inputs are not what the kernels expect)."""
    return (
        q.shape[-1] <= max_head_dim
        and kernel_available(q.device)
        and (q.device.type == "cuda" or q.dtype == torch.float16)
    )


def warn_full_precision_once(what: str, q: torch.Tensor) -> None:
    """One warning per kind of attention (prefill, decode) that falls back to full precision."""
    if what not in _warned:
        _warned.add(what)
        log.warning(
            "%s attention kernel unavailable for head_dim=%d, %s on %s; using full precision",
            what,
            q.shape[-1],
            q.dtype,
            q.device,
        )
