"""`QuantLinear`: a GPTQ linear layer that runs the Triton int4 kernel on CUDA and a torch path elsewhere.

Boundary: one layer's stored tensors (as in the checkpoint) and activations; no files, no model.
The backend is chosen once, when the layer is built, from where its tensors live:
  "triton": `int4_matmul` on the packed weights (CUDA, or any device under TRITON_INTERPRET=1 when
            asked for explicitly), for bits 2/4/8;
  "torch":  dequantize once to a dense weight in the activation dtype (cached), then F.linear.
Tests override it with `backend=` or `layer.backend = ...`.
The buffers are exactly the checkpoint's names (qweight, qzeros, scales, g_idx, bias), so
`state_dict()` round-trips with the checkpoint and `load_state_dict(assign=True)` works.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from inference.errors import InferenceError
from inference.gptq.format import QuantConfig, QuantizedLinear, read_layer
from inference.kernels.int4_matmul import KERNEL_BITS, dequantize_weight, int4_matmul

BACKENDS = ("auto", "triton", "torch")


class QuantLinear(nn.Module):
    def __init__(self, layer: QuantizedLinear, *, backend: str = "auto", name: str = "layer"):
        super().__init__()
        layer.validate(name)
        self.name = name
        self.in_features = layer.in_features
        self.out_features = layer.out_features
        self.bits = layer.bits
        self.zero_format = layer.zero_format
        self.register_buffer("qweight", layer.qweight)
        self.register_buffer("qzeros", layer.qzeros)
        self.register_buffer("scales", layer.scales)
        self.register_buffer("g_idx", layer.g_idx)
        if layer.bias is not None:
            self.register_buffer("bias", layer.bias)
        else:
            self.bias = None
        # Without act-order g_idx is k // group_size: the kernel then skips the per-row gather.
        k, groups = self.in_features, layer.num_groups
        trivial = k % groups == 0 and torch.equal(
            layer.g_idx.cpu(), (torch.arange(k, dtype=torch.int32) // (k // groups))
        )
        self.act_order = not trivial
        self._dense: tuple[Any, torch.Tensor] | None = None
        self.backend = self._resolve(backend)

    def _resolve(self, backend: str) -> str:
        if backend not in BACKENDS:
            raise InferenceError(f"{self.name}: backend {backend!r}, expected one of {', '.join(BACKENDS)}")
        if backend == "auto":
            return "triton" if self.qweight.is_cuda and self.bits in KERNEL_BITS else "torch"
        if backend == "triton" and self.bits not in KERNEL_BITS:
            raise InferenceError(
                f"{self.name}: {self.bits}-bit weights have no Triton kernel; use backend='torch'"
            )
        return backend

    @classmethod
    def from_checkpoint_tensors(
        cls,
        tensors: Mapping[str, torch.Tensor],
        *,
        in_features: int,
        out_features: int,
        quant_config: Mapping[str, Any] | QuantConfig,
        name: str = "layer",
        backend: str = "auto",
    ) -> QuantLinear:
        """From `{qweight, qzeros, scales[, g_idx][, bias]}` of one layer and the quantization config,
        read by `inference.gptq.format.read_layer` (the checkpoint reader the loader uses too)."""
        qc = quant_config if isinstance(quant_config, QuantConfig) else QuantConfig.from_json(quant_config)
        layer = read_layer(tensors, qc, name, in_features=in_features, out_features=out_features)
        return cls(layer, backend=backend, name=name)

    def to_quantized(self) -> QuantizedLinear:
        return QuantizedLinear(
            self.qweight,
            self.qzeros,
            self.scales,
            self.g_idx,
            bits=self.bits,
            zero_format=self.zero_format,
            bias=self.bias,
        )

    def dense_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(N, K) dequantized weight, cached per (storage, dtype) for the torch path."""
        key = (self.qweight.data_ptr(), self.qweight.device, dtype)
        if self._dense is None or self._dense[0] != key:
            w = dequantize_weight(
                self.qweight,
                self.qzeros,
                self.scales,
                self.g_idx,
                bits=self.bits,
                zero_format=self.zero_format,
            )
            self._dense = (key, w.to(dtype))
        return self._dense[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (..., K) -> (..., N)
        if x.shape[-1] != self.in_features:
            raise InferenceError(
                f"{self.name}: input has {x.shape[-1]} features, expected {self.in_features}"
            )
        if self.backend == "torch":
            bias = None if self.bias is None else self.bias.to(x.dtype)
            return F.linear(x, self.dense_weight(x.dtype), bias)
        xin = x if x.dtype in (torch.float16, torch.bfloat16) else x.to(torch.float16)
        y = int4_matmul(
            xin.contiguous(),
            self.qweight,
            self.qzeros,
            self.scales,
            self.g_idx if self.act_order else None,
            None if self.bias is None else self.bias.to(xin.dtype).contiguous(),
            bits=self.bits,
            zero_format=self.zero_format,
        )
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}, "
            f"groups={self.scales.shape[0]}, act_order={self.act_order}, backend={self.backend}"
        )
