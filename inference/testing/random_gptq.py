"""Random GPTQ layers for benchmarks and tests: speed and graph-safety do not depend on the weights.

Boundary: swaps a model's decoder linears for `QuantLinear`s with random 4-bit codes; nothing else.
"""

from __future__ import annotations

import torch

from inference.gptq.format import QuantizedLinear, pack
from inference.model import Transformer
from inference.quant_linear import QuantLinear


def to_random_gptq_(model: Transformer, group: int = 128, *, backend: str = "auto") -> Transformer:
    """Every decoder linear becomes a QuantLinear with random 4-bit codes (zero point 8, v1 zeros)."""
    gen = torch.Generator().manual_seed(0)
    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name, lin in list(parent.named_children()):
                if not isinstance(lin, torch.nn.Linear):
                    continue
                k, n, dev = lin.in_features, lin.out_features, lin.weight.device
                groups = -(-k // group)
                codes = torch.randint(0, 16, (k, n), dtype=torch.int32, generator=gen).to(dev)
                zeros = torch.full((groups, n), 7, dtype=torch.int32, device=dev)
                ql = QuantizedLinear(
                    qweight=pack(codes, 4, dim=0),
                    qzeros=pack(zeros, 4, dim=1),
                    scales=torch.full((groups, n), 0.002, dtype=torch.float16, device=dev),
                    g_idx=(torch.arange(k, device=dev) // group).to(torch.int32),
                    bits=4,
                    bias=None if lin.bias is None else lin.bias.detach().half(),
                )
                setattr(parent, name, QuantLinear(ql, backend=backend, name=name))
    return model
