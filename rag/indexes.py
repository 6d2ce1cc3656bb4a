"""The two indexes over chunks, each saved to and loaded from one folder.

`LexicalIndex`: BM25 (bm25s, Lucene variant) over `rag.text.tokenize` tokens (ru+en stemming).
It keeps every chunk's token ids (flat int32 array + offsets) so an incremental update re-scores
the corpus without re-tokenizing old chunks (BM25's idf and average length are global anyway).

`DenseIndex`: FAISS inner product over L2-normalized vectors (= cosine), ids are chunk ids.
Exact (`IndexFlatIP`) up to `ann_threshold` vectors, HNSW above it (no training step, good
recall at efSearch 64; IVF would need a training pass on every rebuild).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import bm25s
import faiss
import numpy as np

from rag.text import TOKENIZER_VERSION

logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every build at DEBUG to the root handler

ANN_THRESHOLD = 200_000
HNSW_M = 32
HNSW_EF_SEARCH = 64


class LexicalIndex:
    def __init__(
        self,
        chunk_ids: np.ndarray,
        vocab: dict[str, int],
        flat: np.ndarray,
        offsets: np.ndarray,
        hashes: np.ndarray | None = None,
    ):
        self.chunk_ids = chunk_ids  # (n,) int64, doc order
        # (n,) uint64 content fingerprints: the store may reuse a deleted chunk's id for new text
        self.hashes = hashes if hashes is not None else np.zeros(len(chunk_ids), np.uint64)
        self.vocab = vocab  # token -> id
        self.flat = flat  # (total tokens,) int32 token ids of all docs
        self.offsets = offsets  # (n + 1,) int64: doc i is flat[offsets[i]:offsets[i + 1]]
        self._bm25: bm25s.BM25 | None = None
        self._df: np.ndarray | None = None  # document frequency per token id, computed on first use

    @classmethod
    def empty(cls) -> LexicalIndex:
        return cls(
            np.zeros(0, np.int64), {}, np.zeros(0, np.int32), np.zeros(1, np.int64), np.zeros(0, np.uint64)
        )

    def __len__(self) -> int:
        return len(self.chunk_ids)

    def updated(
        self, remove: set[int], add_ids: list[int], add_tokens: list[list[str]], add_hashes: list[int]
    ) -> LexicalIndex:
        """A new index without `remove` chunk ids and with the new chunks appended."""
        vocab = dict(self.vocab)
        docs: list[np.ndarray] = []
        keep_ids: list[int] = []
        hashes: list[int] = []
        for i, cid in enumerate(self.chunk_ids.tolist()):
            if cid not in remove:
                keep_ids.append(cid)
                hashes.append(int(self.hashes[i]))
                docs.append(self.flat[self.offsets[i] : self.offsets[i + 1]])
        for cid, tokens, digest in zip(add_ids, add_tokens, add_hashes, strict=True):
            keep_ids.append(cid)
            hashes.append(digest)
            docs.append(np.array([vocab.setdefault(t, len(vocab)) for t in tokens], dtype=np.int32))
        lengths = np.array([len(d) for d in docs], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.concatenate(docs).astype(np.int32) if docs else np.zeros(0, np.int32)
        out = LexicalIndex(
            np.array(keep_ids, dtype=np.int64), vocab, flat, offsets, np.array(hashes, dtype=np.uint64)
        )
        out._build()
        return out

    def _build(self) -> None:
        if not len(self) or not self.vocab:  # no docs, or docs of stopwords only ("пост", "и")
            self._bm25 = None
            return
        docs = [self.flat[self.offsets[i] : self.offsets[i + 1]].tolist() for i in range(len(self))]
        bm25 = bm25s.BM25(method="lucene")
        bm25.index((docs, dict(self.vocab)), show_progress=False)
        self._bm25 = bm25

    def idf(self, token: str) -> float:
        """BM25 idf of a token (documents = chunks); a token the corpus never saw gets the maximum."""
        if self._df is None:
            n_vocab = max(self.vocab.values(), default=-1) + 1
            df = np.zeros(n_vocab, dtype=np.int64)
            for i in range(len(self)):
                df[np.unique(self.flat[self.offsets[i] : self.offsets[i + 1]])] += 1
            self._df = df
        token_id = self.vocab.get(token)
        df = int(self._df[token_id]) if token_id is not None and token_id < len(self._df) else 0
        return float(np.log(1 + (len(self) - df + 0.5) / (df + 0.5)))

    def scores(self, tokens: list[str]) -> np.ndarray:
        """BM25 score of every doc for the query tokens, (n,) float32; zeros for unknown tokens."""
        known = [t for t in tokens if t in self.vocab]
        if self._bm25 is None or not known:
            return np.zeros(len(self), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(known), dtype=np.float32)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "chunk_ids.npy", self.chunk_ids)
        np.save(folder / "tokens.npy", self.flat)
        np.save(folder / "offsets.npy", self.offsets)
        np.save(folder / "hashes.npy", self.hashes)
        (folder / "vocab.json").write_text(
            json.dumps({"tokenizer": TOKENIZER_VERSION, "vocab": self.vocab}, ensure_ascii=False),
            encoding="utf-8",
        )
        if self._bm25 is not None:
            self._bm25.save(str(folder / "bm25"), show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        meta = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        index = cls(
            np.load(folder / "chunk_ids.npy"),
            meta["vocab"],
            np.load(folder / "tokens.npy"),
            np.load(folder / "offsets.npy"),
            np.load(folder / "hashes.npy"),
        )
        if (
            len(index.hashes) != len(index.chunk_ids)
            or len(index.offsets) != len(index.chunk_ids) + 1
            or int(index.offsets[-1]) != len(index.flat)
        ):
            raise ValueError("token arrays do not match the chunk ids")
        if len(index) and index.vocab:
            index._bm25 = bm25s.BM25.load(str(folder / "bm25"), mmap=False, show_progress=False)
            if index._bm25.scores["num_docs"] != len(index):
                raise ValueError("BM25 matrix does not match the chunk ids")
        return index


class DenseIndex:
    def __init__(self, index: faiss.Index, dim: int):
        self.index = index
        self.dim = dim

    @classmethod
    def create(cls, dim: int, expected: int, ann_threshold: int = ANN_THRESHOLD) -> DenseIndex:
        if expected >= ann_threshold:
            inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = 80
            inner.hnsw.efSearch = HNSW_EF_SEARCH
        else:
            inner = faiss.IndexFlatIP(dim)
        return cls(faiss.IndexIDMap2(inner), dim)

    @property
    def kind(self) -> str:
        inner = faiss.downcast_index(self.index.index) if hasattr(self.index, "index") else self.index
        return "hnsw" if isinstance(inner, faiss.IndexHNSW) else "flat"

    @property
    def can_remove(self) -> bool:
        return self.kind == "flat"

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))

    def remove(self, ids: np.ndarray) -> None:
        if len(ids):
            self.index.remove_ids(faiss.IDSelectorBatch(ids.astype(np.int64)))

    def copy(self) -> DenseIndex:
        return DenseIndex(faiss.clone_index(self.index), self.dim)

    def search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, chunk ids) for one query vector (dim,); `allowed` restricts to those ids."""
        if not len(self) or k <= 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        k = min(k, len(self))
        params = None
        if allowed is not None:
            if not len(allowed):
                return np.zeros(0, np.float32), np.zeros(0, np.int64)
            selector = faiss.IDSelectorBatch(allowed.astype(np.int64))
            params = (
                faiss.SearchParametersHNSW(sel=selector, efSearch=max(HNSW_EF_SEARCH, k))
                if self.kind == "hnsw"
                else faiss.SearchParameters(sel=selector)
            )
        # One OpenMP thread for one query: measured on this 2-core machine under load, a 100k exact
        # search took 5 ms with one thread and 49 ms with two (threads spin waiting for a core).
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            scores, ids = self.index.search(query.reshape(1, -1).astype(np.float32), k, params=params)
        finally:
            faiss.omp_set_num_threads(threads)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]

    def save(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path) -> DenseIndex:
        index = faiss.read_index(str(path))
        return cls(index, index.d)
