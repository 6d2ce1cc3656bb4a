"""The engine's decode step on static buffers, replayed as CUDA graphs (one per batch-size bucket).

Boundary: a model, its KV cache and the static input/output tensors of one decode step; the engine
passes token ids, positions and slots and gets logits back. No scheduling, no sampling.

Why: at 8B shapes one decode step launches ~1,500 kernels (32 layers of norms, RoPE, seven int4
matmuls, attention). Launched one by one from Python they took ~55 ms per token on an H100, more
than the ~5 ms the kernels need, so the KV cache barely beat recomputation. A CUDA graph replays the
whole step with one launch (the technique vLLM and TensorRT-LLM use for decode).

A graph freezes shapes and addresses, so the step must not depend on host values: the attention
backend reads the cache in place through tensor `slots`/`kv_lens` (`attn_fn.decode`), and inputs are
copied into fixed buffers. A batch of n rows runs in the smallest captured bucket >= n; the padding
rows write into the cache's scratch slot, which no request owns. Capture is checked once against the
eager step on fresh inputs; if capture fails or disagrees, the engine decodes eagerly (one warning).
With `capture=False` the same static-buffer step runs eagerly: that is how the CPU tests exercise
everything here except the two CUDA calls.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from inference.model import KVView, Transformer

log = logging.getLogger(__name__)


def bucket_sizes(max_batch: int) -> list[int]:
    """1, 2, 4, 8, ... below max_batch, and max_batch itself."""
    sizes, b = [], 1
    while b < max_batch:
        sizes.append(b)
        b *= 2
    return [*sizes, max_batch]


@dataclass
class _Bucket:
    size: int
    inputs: torch.Tensor  # (3, size) long: token ids, positions, slots
    logits: torch.Tensor | None = None  # (size, V) float32, written by the step
    graph: torch.cuda.CUDAGraph | None = None


class DecodeGraphs:
    def __init__(self, model: Transformer, cache, max_batch: int, *, capture: bool = True):
        if cache.scratch_slot is None:
            raise ValueError("the KV cache needs a scratch slot for padding rows")
        if getattr(model.attn_fn, "decode", None) is None:
            raise ValueError("the attention backend has no in-place decode; the step depends on host ints")
        self.model, self.cache, self.capture = model, cache, capture
        self.buckets = [
            _Bucket(b, torch.zeros(3, b, dtype=torch.long, device=cache.device))
            for b in bucket_sizes(max_batch)
        ]
        for bucket in self.buckets:
            bucket.inputs[2].fill_(cache.scratch_slot)
        if capture:
            self._capture_all()

    @classmethod
    def capture_or_none(cls, model: Transformer, cache, max_batch: int) -> DecodeGraphs | None:
        try:
            graphs = cls(model, cache, max_batch)
            graphs.verify()
        except Exception as exc:  # capture is an optimisation: never refuse to serve over it
            log.warning("CUDA graphs unavailable (%s); decoding eagerly", exc)
            # a capture that failed half-way can leave its side stream current: serve on the default
            torch.cuda.set_stream(torch.cuda.default_stream())
            return None
        log.info("captured decode CUDA graphs for batch sizes %s", [b.size for b in graphs.buckets])
        return graphs

    # ---- the step ---------------------------------------------------------------------------------
    def _step(self, bucket: _Bucket) -> torch.Tensor:
        """The decode forward on the bucket's buffers; every shape depends on bucket.size alone."""
        ids, pos, slots = bucket.inputs[0], bucket.inputs[1], bucket.inputs[2]
        kv = KVView(self.cache.k, self.cache.v, slots, pos, pos + 1, k_mean=self.cache.k_mean)
        return self.model(ids[:, None], pos[:, None], kv)[:, -1]  # (size, V)

    @torch.inference_mode()
    def _capture_all(self) -> None:
        pool = torch.cuda.graph_pool_handle()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm up (Triton compiles, allocator settles) off the capture
            for bucket in self.buckets:
                for _ in range(2):
                    self._step(bucket)
        torch.cuda.current_stream().wait_stream(side)
        for bucket in reversed(self.buckets):  # largest first: smaller graphs reuse its pool memory
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                bucket.logits = self._step(bucket)
            bucket.graph = graph
        torch.cuda.synchronize()

    def bucket_for(self, n: int) -> _Bucket:
        for bucket in self.buckets:
            if bucket.size >= n:
                return bucket
        raise ValueError(f"{n} rows exceed the largest captured batch {self.buckets[-1].size}")

    @torch.inference_mode()
    def run(self, ids: list[int], positions: list[int], slots: list[int]) -> torch.Tensor:
        """Logits (n, V) for one new token per row; valid until the next call."""
        n = len(ids)
        bucket = self.bucket_for(n)
        pad = bucket.size - n
        scratch = self.cache.scratch_slot
        host = torch.tensor(
            [ids + [0] * pad, positions + [0] * pad, slots + [scratch] * pad], dtype=torch.long
        )
        bucket.inputs.copy_(host)  # one host->device copy per step
        if bucket.graph is not None:
            bucket.graph.replay()
            logits = bucket.logits
        else:
            logits = self._step(bucket)
        return logits[:n]

    @torch.inference_mode()
    def verify(self, atol: float = 2e-2) -> None:
        """Replay each bucket on inputs unlike the capture's and compare with the eager step.

        Rows go to the scratch slot at positions 0..size-1, so row i attends keys the rows before it
        wrote in the same step: a graph that kept stale inputs or addresses gives other logits.
        """
        for bucket in self.buckets:
            size = bucket.size
            ids = [(7 * i + 3) % self.model.cfg.vocab_size for i in range(size)]
            positions = list(range(size))
            bucket.inputs.copy_(torch.tensor([ids, positions, [self.cache.scratch_slot] * size]))
            expected = self._step(bucket).clone()
            got = self.run(ids, positions, [self.cache.scratch_slot] * size).clone()
            diff = (got - expected).abs().max().item()
            if not diff <= atol * max(1.0, expected.abs().max().item()):
                raise RuntimeError(f"graph for batch {size} differs from the eager step by {diff:.3g}")
