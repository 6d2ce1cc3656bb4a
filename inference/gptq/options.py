"""What a GPTQ run is asked to do (`QuantOptions`) and which widths the format packs.

Boundary: plain settings, no torch, so the CLI can read the defaults without loading torch.
The defaults are the measured best on a real model (SmolLM2-135M, benchmarks/gptq_real_model.py;
numbers in the comments).
"""

from __future__ import annotations

from dataclasses import dataclass

from inference.errors import InferenceError, QuantizeError

SUPPORTED_BITS = (2, 3, 4, 8)


def check_bits(bits: int, what: str = "bits") -> int:
    if bits not in SUPPORTED_BITS:
        raise InferenceError(f"{what}={bits} is not supported: GPTQ packing here handles bits 2, 3, 4 or 8")
    return bits


@dataclass
class QuantOptions:
    bits: int = 4
    group_size: int = 128  # -1: per output channel (one group spanning K)
    # asymmetric grid (a zero point per group): SmolLM2 4-bit, 32x256 mixed windows, held-out text,
    # KL / ppl at g32 0.175 / 51.7 vs 0.231 / 56.6 symmetric, g64 0.232 / 54.4 vs 0.297 / 59.6, g96
    # 0.267 / 56.9 vs 0.351 / 61.0 (fp 44.5). Our kernels read a zero per group either way; `sym=True`
    # is what vLLM's Marlin GPTQ kernels require (asymmetric GPTQ goes to its slower GPTQ kernel).
    sym: bool = False
    act_order: bool = False  # desc_act: columns by decreasing H_kk; groups scatter (non-trivial g_idx)
    # groups by decreasing max H_kk, columns inside a group likewise; g_idx stays k // gs. With damp
    # 0.05, on SmolLM2 4-bit g64: KL 0.238 / ppl 81.5 vs 0.340 / 88.4 for stored order and damp 0.01
    group_aware: bool = True
    # per-group range shrunk to the least squared error (GPTQ's `mse`): SmolLM2 4-bit g64, same 16x128
    # windows: KL 0.179 vs 0.238 without, ppl 77.5 vs 81.5 (GPTQModel 0.242 / 80.2)
    clip_search: bool = True
    damp_percent: float = 0.05
    block_size: int = 128
    true_sequential: bool = True
    zero_format: str = "v1"  # v1 cannot store real zero 0, so asymmetric zeros are kept >= 1

    def __post_init__(self) -> None:
        check_bits(self.bits)
        if self.group_size != -1 and self.group_size <= 0:
            raise QuantizeError(f"group_size={self.group_size} must be positive or -1 (per channel)")
        if not 0 < self.damp_percent < 1:
            raise QuantizeError(f"damp_percent={self.damp_percent} must lie strictly between 0 and 1")
