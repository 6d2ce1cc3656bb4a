"""benchmarks/serving.py measures what it says it measures (its numbers go into closing notes)."""

from __future__ import annotations


def test_shared_prefix_benchmark_times_the_prefix_it_claims(monkeypatch):
    """benchmarks/serving.py ttft_shared_prefix says it times a prompt whose first prompt_len - 16
    tokens are cached; its repeats all use tail 100 (len(engine.running) is always 0 between them),
    so repeats 2 and 3 find the whole prompt but one token cached, and best_of keeps the fastest."""
    from benchmarks import serving
    from inference.engine import KVCache

    seen: list[tuple[int, int]] = []
    take = KVCache.take

    def recording_take(self, prompt, min_reuse):
        slot, reused = take(self, prompt, min_reuse)
        seen.append((len(prompt), reused))
        return slot, reused

    monkeypatch.setattr(KVCache, "take", recording_take)
    serving.ttft_shared_prefix(serving.build("tiny", "cpu", gptq=False), "cpu", 48, reuse=True)
    assert [reused for _, reused in seen[1:]] == [32, 32, 32], seen
