"""Triton kernels run under the interpreter on CPU-only machines.

`@triton.jit` decides between the compiled and the interpreted function when the kernel module is
imported, so TRITON_INTERPRET must be set before any `inference.kernels` import: this conftest is
imported before the test modules of this folder. On a CUDA machine the same tests run natively.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"


@pytest.fixture
def kernel_device() -> str:
    """Where kernel tests put their tensors: CUDA when present, else CPU under the interpreter."""
    return "cuda" if torch.cuda.is_available() else "cpu"
