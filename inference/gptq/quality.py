"""How far a quantized model is from its source: perplexity, KL(fp‖q) and top-1 agreement.

Boundary: two causal LMs (anything whose call returns `.logits`) and a 1-D tensor of token ids;
no files, no tokenizer. Used by the quantizer tests and `benchmarks/gptq_quality.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def windows(ids: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Non-overlapping (n, seq_len) windows of a 1-D id tensor (the tail is dropped)."""
    n = ids.numel() // seq_len
    return ids[: n * seq_len].view(n, seq_len)


@torch.no_grad()
def perplexity(model: torch.nn.Module, ids: torch.Tensor, seq_len: int = 128, batch_size: int = 16) -> float:
    """exp(mean next-token NLL) over non-overlapping windows of `ids`."""
    model.eval()
    data = windows(ids, seq_len)
    total, count = 0.0, 0
    for start in range(0, data.shape[0], batch_size):
        batch = data[start : start + batch_size]
        logits = model(batch).logits[:, :-1].float()  # (B, T-1, V)
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="sum"
        )
        total += float(nll)
        count += batch[:, 1:].numel()
    return math.exp(total / count)


@dataclass
class Closeness:
    ppl_ref: float
    ppl: float
    kl: float  # mean per-token KL(p_ref ‖ p), nats
    top1: float  # share of positions where both models' argmax agree

    def row(self) -> str:
        return f"ppl {self.ppl:.2f} (fp {self.ppl_ref:.2f}) | KL {self.kl:.4f} | top-1 {self.top1:.3f}"


@torch.no_grad()
def closeness(
    ref: torch.nn.Module, model: torch.nn.Module, ids: torch.Tensor, seq_len: int = 128, batch_size: int = 8
) -> Closeness:
    """Perplexity of both, KL(ref‖model) and top-1 agreement over windows of `ids`, in one pass."""
    ref.eval()
    model.eval()
    data = windows(ids, seq_len)
    if data.shape[0] == 0:
        raise ValueError(f"{ids.numel()} ids are fewer than one window of {seq_len}")
    nll_ref = nll = kl = agree = 0.0
    count = 0
    for start in range(0, data.shape[0], batch_size):
        batch = data[start : start + batch_size]
        lp_ref = torch.log_softmax(ref(batch).logits[:, :-1].float(), dim=-1)  # (B, T-1, V)
        lp = torch.log_softmax(model(batch).logits[:, :-1].float(), dim=-1)
        target = batch[:, 1:, None]
        nll_ref -= float(lp_ref.gather(-1, target).sum())
        nll -= float(lp.gather(-1, target).sum())
        kl += float((lp_ref.exp() * (lp_ref - lp)).sum())
        agree += float((lp_ref.argmax(-1) == lp.argmax(-1)).sum())
        count += target.numel()
    return Closeness(math.exp(nll_ref / count), math.exp(nll / count), kl / count, agree / count)
