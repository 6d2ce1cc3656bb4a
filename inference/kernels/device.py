"""Where the Triton kernels can run, checked once for every launcher.

Boundary: device and dtype checks only; no kernels here.
"""

from __future__ import annotations

import os

import torch

from inference.errors import KernelInputError


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
