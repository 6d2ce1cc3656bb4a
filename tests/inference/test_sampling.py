"""Sampling: filters, seeds, the drawn distribution, and batches that sample like single rows."""

from __future__ import annotations

import torch

from inference.sampling import SamplingParams, sample, sample_batch


def test_sampling_filters_and_seed():
    logits = torch.tensor([0.0, 3.0, 2.9, -1.0, 1.0])
    gen = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    assert {sample(logits, SamplingParams(top_k=1), gen(i)) for i in range(20)} == {1}
    # top_p=0.5: token 1 alone holds < 0.5 of the mass, so tokens 1 and 2 remain
    assert {sample(logits, SamplingParams(top_p=0.5), gen(i)) for i in range(50)} == {1, 2}
    assert {sample(logits, SamplingParams(temperature=0), gen(i)) for i in range(5)} == {1}
    draws = [sample(logits, SamplingParams(temperature=1.5), gen(11)) for _ in range(3)]
    assert len(set(draws)) == 1
    assert len({sample(logits, SamplingParams(temperature=2.0), gen(i)) for i in range(60)}) >= 4


def test_sampled_frequencies_follow_the_softmax():
    logits = torch.tensor([0.0, 3.0, 2.9, -1.0, 1.0, float("-inf")])
    gen = torch.Generator().manual_seed(5)
    params = SamplingParams(temperature=1.3)
    counts = torch.bincount(torch.tensor([sample(logits, params, gen) for _ in range(4000)]), minlength=6)
    expected = (logits / 1.3).softmax(-1)
    assert (counts / 4000 - expected).abs().max() < 0.03, (counts, expected)
    assert counts[5] == 0  # a masked token is never drawn


def test_a_batch_samples_each_row_as_if_it_were_alone():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 50, generator=gen) * 3
    params = [
        SamplingParams(temperature=0),
        SamplingParams(temperature=0.7, seed=1),
        SamplingParams(temperature=1.0, top_k=3, logprobs=2),
        SamplingParams(temperature=1.2, top_p=0.6),
        SamplingParams(temperature=0.9, top_k=10, top_p=0.9, logprobs=0),
    ]
    seeds = [11, 12, 13, 14, 15]
    for _ in range(10):
        seeds = [s + 100 for s in seeds]
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        tokens, logprobs = sample_batch(logits, params, gens)
        alone = [sample(logits[i], params[i], torch.Generator().manual_seed(seeds[i])) for i in range(5)]
        assert tokens == alone
        assert tokens[0] == int(logits[0].argmax())
        assert tokens[2] in logits[2].topk(3).indices.tolist()
        assert logprobs[0] is None and logprobs[1] is None and logprobs[3] is None
        assert len(logprobs[2].top) == 2 and logprobs[4].top == []
        expected = torch.log_softmax(logits[2], -1)
        assert abs(logprobs[2].logprob - float(expected[tokens[2]])) < 1e-5
