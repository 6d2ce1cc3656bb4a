"""Token sampling for a batch of rows where the logits are (GPU or CPU): temperature, top-k, top-p,
greedy rows, per-request seeds, and log-probabilities.

Boundary: logits and per-row settings in, token ids (and log-probabilities) out; no model, no cache.

Why batched and on the logits' device: with a 150k vocabulary, copying (B, V) fp32 logits to the host
and sampling row by row there took about as long as a CUDA-graph decode step of a small model. Here
the filtering and the draw run on the device for all rows at once and only B token ids (plus the
asked-for log-probabilities) come back, in one transfer.

Reproducibility: each request keeps its own CPU `torch.Generator`; a sampled row draws exactly one
uniform number from it, so a seeded request draws the same numbers whatever else shares its batch
(and the same tokens wherever its logits are the same: on CUDA the int4 matmul's tiling and split-K
order can change the last bits with the batch size).
The draw is by inverse CDF: the token whose probability interval contains u (masked tokens have zero
width and are never picked).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SamplingParams:
    max_tokens: int | None = None  # None: until a stop or the context limit
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 means off
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    logprobs: int | None = None  # None: off; k: each token's log-probability and the k most likely
    # None: off; k: the prompt's tokens too (legacy completions `echo` with `logprobs`, which
    # evaluation harnesses use to score text); such a prompt is always computed, never reused
    prompt_logprobs: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 1e-5


@dataclass
class TokenLogprob:
    """Log-probabilities from the model's raw distribution (before temperature/top-k/top-p, as vLLM
    reports them): the chosen token's and the `top` most likely tokens', best first."""

    token_id: int
    logprob: float | None  # None only for a prompt's first token, which nothing predicts
    top: list[tuple[int, float]]


def sample_batch(
    logits: torch.Tensor, params: list[SamplingParams], generators: list[torch.Generator]
) -> tuple[list[int], list[TokenLogprob | None]]:
    """logits (B, V) float32 on any device -> B token ids and, per row, its TokenLogprob when the
    row's params ask for log-probabilities (else None)."""
    b, vocab = logits.shape
    dev = logits.device
    tokens = logits.argmax(dim=-1)  # (B,) greedy rows keep this
    sampled = [i for i, p in enumerate(params) if not p.greedy]
    if sampled:
        rows = torch.tensor(sampled, device=dev)
        x = logits.index_select(0, rows)  # (S, V)
        x = x / torch.tensor([params[i].temperature for i in sampled], device=dev, dtype=x.dtype)[:, None]
        ks = [params[i].top_k if 0 < params[i].top_k < vocab else 0 for i in sampled]
        if any(ks):
            top = torch.topk(x, max(ks), dim=-1).values  # (S, kmax) best first
            kth = top.gather(1, (torch.tensor(ks, device=dev).clamp(min=1) - 1)[:, None])  # (S, 1)
            limited = torch.tensor([k > 0 for k in ks], device=dev)[:, None]
            x = x.masked_fill(limited & (x < kth), float("-inf"))
        top_p = [params[i].top_p for i in sampled]
        if any(p < 1.0 for p in top_p):
            sorted_x, order = torch.sort(x, dim=-1, descending=True)
            probs = sorted_x.softmax(-1)
            # drop a token when the tokens ranked above it already hold top_p of the mass
            drop = probs.cumsum(-1) - probs > torch.tensor(top_p, device=dev)[:, None]
            x = x.scatter(1, order, sorted_x.masked_fill(drop, float("-inf")))
        cdf = x.softmax(-1).double().cumsum(-1)  # (S, V); float64: exact enough at 150k tokens
        u = torch.cat([torch.rand((1,), generator=generators[i], dtype=torch.float64) for i in sampled])
        u = u.to(dev)[:, None] * cdf[:, -1:]
        drawn = torch.searchsorted(cdf, u, right=True).clamp(max=vocab - 1)[:, 0]
        tokens = tokens.index_copy(0, rows, drawn)
    asked = [i for i, p in enumerate(params) if p.logprobs is not None]
    host_tokens = tokens.tolist()
    out: list[TokenLogprob | None] = [None] * b
    if asked:
        rows = torch.tensor(asked, device=dev)
        found = logprobs_of(
            logits.index_select(0, rows),
            [host_tokens[i] for i in asked],
            [params[i].logprobs or 0 for i in asked],
        )
        for i, lp in zip(asked, found, strict=True):
            out[i] = lp
    return host_tokens, out


def logprobs_of(logits: torch.Tensor, tokens: list[int], ks: list[int]) -> list[TokenLogprob]:
    """logits (N, V) -> for row i the log-probability of tokens[i] and the ks[i] most likely tokens,
    from the raw distribution; one device->host copy."""
    logp = torch.log_softmax(logits.float(), dim=-1)  # (N, V)
    chosen = logp.gather(1, torch.tensor(tokens, device=logp.device)[:, None])[:, 0]  # (N,)
    kmax = min(max(ks, default=0), logp.shape[-1])
    top_v, top_i = torch.topk(logp, kmax, dim=-1) if kmax else (logp[:, :0], logp[:, :0].long())
    host_chosen, host_v, host_i = chosen.tolist(), top_v.tolist(), top_i.tolist()
    return [
        TokenLogprob(t, c, list(zip(i[:k], v[:k], strict=True)))
        for t, c, i, v, k in zip(tokens, host_chosen, host_i, host_v, ks, strict=True)
    ]


def sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> int:
    """One row: logits (V,) -> a token id (see sample_batch)."""
    return sample_batch(logits[None], [params], [generator])[0][0]
