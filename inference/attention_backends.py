"""The quantized attention backend the model calls: prefill through the SageAttention-style kernel,
decode through the slot-indexed decode kernel that reads the KV cache in place.

Boundary: tensors in, tensors out; the choice between backends is made once at load by
`loader.pick_attention`. The torch backend is `model.torch_attention` (no `.decode`: the model then
gathers the cache rows and calls the prefill function, which is fine on the CPU).
"""

from __future__ import annotations

import torch

from inference.kernels.device import attention_kernels_apply, warn_full_precision_once


class QuantAttention:
    """Callable as the prefill attention; `.decode` attends one new token per row from the cache.

    Both fall back to full-precision attention where the kernels do not apply (head_dim > 128, or
    the CPU without the Triton interpreter, or fp32 under the interpreter), with one warning.
    """

    name = "quant"

    def __init__(self) -> None:
        # imported here so that a broken Triton install fails at load with one message (see the loader)
        from inference.kernels import decode_attention, quant_attention

        self._prefill = quant_attention.attention_auto
        self._decode = decode_attention.decode_attention
        self._max_head_dim = quant_attention.MAX_HEAD_DIM

    def __call__(self, q, k, v, *, causal: bool, kv_lens: torch.Tensor | None = None) -> torch.Tensor:
        return self._prefill(q, k, v, causal=causal, kv_lens=kv_lens)

    def decode(
        self,
        q: torch.Tensor,  # (B, Hq, 1, D)
        k_cache: torch.Tensor,  # (S, Hkv, Tmax, D), one layer
        v_cache: torch.Tensor,
        slots: torch.Tensor,  # (B,)
        kv_lens: torch.Tensor,  # (B,)
        k_mean: torch.Tensor | None,  # (S, Hkv, D) float32
    ) -> torch.Tensor:
        if attention_kernels_apply(q, self._max_head_dim):
            return self._decode(q.contiguous(), k_cache, v_cache, slots, kv_lens, k_mean)
        warn_full_precision_once("decode", q)
        return decode_full_precision(q, k_cache, v_cache, slots, kv_lens)


def decode_full_precision(q, k_cache, v_cache, slots, kv_lens) -> torch.Tensor:
    """Unquantized decode over the whole cache rows with a length mask: O(Tmax) per step, but its
    shapes depend on tensor shapes only, like the kernel's, so a captured graph stays valid."""
    from inference.kernels.quant_attention import attention_full_precision

    k = k_cache.index_select(0, slots)  # (B, Hkv, Tmax, D)
    v = v_cache.index_select(0, slots)
    return attention_full_precision(q, k, v, causal=False, kv_lens=kv_lens, validate=False)
