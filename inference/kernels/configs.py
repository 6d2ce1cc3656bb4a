"""Launch parameters of the Triton kernels, by GPU architecture and shape, in one table each.

Boundary: plain data and lookups (tile sizes, warps, pipeline stages, split counts); no kernels, no
tensors beyond reading a device's properties. The kernels' numerics never depend on these values:
quantization blocks are fixed in the kernel modules, tiles only change the order of the work.

Where the numbers come from: the Hopper (sm90) attention entries for head_dim 64 and 128 are the
fastest of 16 configurations in a sweep on an H100 before the causal loop was split into unmasked
and diagonal blocks; every other entry (Hopper head_dim 96, the int4 GEMV tiles, the split targets)
is unmeasured, a starting point until a GPU run. `python benchmarks/gpu_all.py` sweeps candidates
(its "sweep" rows) and prints the fastest per head dim and per GEMV shape: copy those here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

H100_SMS = 132  # split targets off CUDA (the interpreter), where there is no device to ask


@functools.lru_cache(maxsize=8)
def _cuda_props(index: int) -> tuple[str, int]:
    major, minor = torch.cuda.get_device_capability(index)
    arch = "sm90" if major == 9 else "sm80" if major == 8 else f"sm{major}{minor}"
    return arch, torch.cuda.get_device_properties(index).multi_processor_count


def arch_of(device: torch.device) -> str:
    """'sm90' (Hopper), 'sm80' (Ampere, Ada), other 'smXY', or 'cpu' (the interpreter)."""
    if device.type != "cuda":
        return "cpu"
    return _cuda_props(device.index if device.index is not None else torch.cuda.current_device())[0]


def sm_count(device: torch.device) -> int:
    if device.type != "cuda":
        return H100_SMS
    return _cuda_props(device.index if device.index is not None else torch.cuda.current_device())[1]


# --- quantized attention (inference/kernels/quant_attention.py) -----------------------------------
@dataclass(frozen=True)
class AttnConfig:
    block_m: int = 128  # query rows per program: 16..128, a divisor of the Q scale block (128)
    block_n: int = 64  # keys per inner step: 16, 32, 64 or 128
    num_warps: int = 4
    num_stages: int = 3

    def check(self) -> None:
        from inference.errors import KernelInputError

        if self.block_m not in (16, 32, 64, 128) or self.block_n not in (16, 32, 64, 128):
            raise KernelInputError(
                f"attention config {self}: block_m must be 16/32/64/128, block_n 16/32/64/128"
            )


# (arch, head_dim) -> config; head_dim is the padded power of two (96 pads to 128 in registers)
ATTN_CONFIGS: dict[tuple[str, int], AttnConfig] = {
    ("sm90", 64): AttnConfig(128, 64, 4, 3),  # measured, H100 sweep (see the module docstring)
    ("sm90", 128): AttnConfig(128, 64, 4, 3),  # measured, same sweep
    ("sm80", 64): AttnConfig(128, 64, 4, 3),  # unmeasured
    ("sm80", 128): AttnConfig(128, 64, 4, 2),  # unmeasured: fewer stages for Ampere's shared memory
}
ATTN_DEFAULT = AttnConfig(128, 64, 4, 3)
ATTN_INTERPRETER = AttnConfig(128, 64, 4, 1)  # pipelining means nothing in the interpreter

# candidates gpu_all.py times per head dim (the table above should hold the fastest)
ATTN_CANDIDATES = (
    AttnConfig(128, 64, 4, 3),
    AttnConfig(128, 64, 8, 3),
    AttnConfig(128, 128, 8, 3),
    AttnConfig(128, 32, 4, 4),
    AttnConfig(64, 64, 4, 3),
    AttnConfig(64, 128, 4, 3),
)


def attention_config(head_dim: int, device: torch.device) -> AttnConfig:
    arch = arch_of(device)
    if arch == "cpu":
        return ATTN_INTERPRETER
    padded = 64 if head_dim <= 64 else 128
    return ATTN_CONFIGS.get((arch, padded), ATTN_DEFAULT)


# --- int4 GEMV (inference/kernels/int4_gemv.py) --------------------------------------------------
GEMV_MAX_M = 4  # int4_matmul sends M <= this many rows to the GEMV kernel (unmeasured threshold)


@dataclass(frozen=True)
class GemvConfig:
    block_n: int = 128  # output columns per program
    block_k: int = 64  # inputs per K step (a multiple of the codes per word); capped by the group size
    split_k: int = 0  # programs sharing one column block's K range; 0: pick from the shape
    num_warps: int = 4
    num_stages: int = 2


GEMV_DEFAULT = GemvConfig()  # unmeasured
GEMV_CANDIDATES = (
    GemvConfig(128, 64),
    GemvConfig(64, 128),
    GemvConfig(256, 32),
    GemvConfig(128, 128, num_warps=8),
    GemvConfig(64, 64, num_stages=3),
)
GEMV_PROGRAMS_PER_SM = 4  # split-K target: enough programs in flight to stream the weights


def gemv_config(device: torch.device) -> GemvConfig:
    if device.type != "cuda":
        return GemvConfig(num_stages=1)
    return GEMV_DEFAULT
