"""Hybrid retrieval over one index generation: BM25 + dense, fused, collapsed per post, diversified.

Fusion is a convex combination of BM25 scaled by the best BM25 score and cosine min-max scaled
over the dense candidates, dense weight 0.2. Chosen by measurement (benchmarks/fusion.py on
tests/data/qa_sample.jsonl, bundled MiniLM; hit@1 ru/en): BM25 alone 0.947/0.909, dense alone
0.211/0.545, reciprocal-rank fusion (k=60) 0.605/0.773 with equal weights and still 0.789/0.864
with dense weight 0.1 (RRF discards BM25's margin, so the weak dense ranking reorders confident
lexical hits); convex 0.974/0.909 for dense weights 0.1-0.2, 0.974/0.864 at 0.3, 0.947/0.864 at
0.5. The set is small (60 questions) and was also used to pick the weight: the middle of the flat
range, not its edge. RRF stays available (`FusionWeights(method="rrf")`) for a strong
multilingual model.

Filters (channel, date) restrict both retrievers to the allowed chunk ids, so a narrow filter
still returns its best matches instead of an empty page. Chunks of one post collapse into the
post's best chunk; near-duplicate posts (one text captured twice, forwards) are dropped by a
cosine threshold on their chunk vectors (a cheap MMR with lambda -> 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

from rag.embedding import Embedder
from rag.lifecycle import Generation
from rag.sentences import SentenceScorer
from rag.store import Store
from rag.store.chunks import chunk_views, filtered_chunk_ids
from rag.text import clean_query, detect_language, expand_terms, tokenize
from rag.types import Hit

RRF_K = 60
CANDIDATES = 60  # per retriever, before fusion
DUPLICATE_COSINE = 0.97
EXPANSION_WEIGHT = 0.6  # glossary translations count less than the user's own words


@dataclass
class FusionWeights:
    method: str = "convex"  # or "rrf"
    lexical: float = 1.0
    dense: float = 0.2
    dense_foreign: float = 0.2  # dense weight for a query the model's language does not cover
    sentence: float = 0.0  # weight of the best sentence's cosine when re-scoring the top posts
    rescore: int = 10  # how many top posts are re-scored at sentence level


def reciprocal_rank_fusion(
    lexical: list[tuple[int, float]], dense: list[tuple[int, float]], w_lex: float, w_dense: float
) -> dict[int, float]:
    fused: dict[int, float] = {}
    for rank, (cid, _score) in enumerate(lexical):
        fused[cid] = fused.get(cid, 0.0) + w_lex / (RRF_K + rank + 1)
    for rank, (cid, _score) in enumerate(dense):
        fused[cid] = fused.get(cid, 0.0) + w_dense / (RRF_K + rank + 1)
    return fused


def convex_fusion(
    lexical: list[tuple[int, float]], dense: list[tuple[int, float]], w_lex: float, w_dense: float
) -> dict[int, float]:
    """w_lex * BM25 / best BM25 + w_dense * cosine min-max scaled over the dense candidates.

    Unlike RRF it keeps BM25's margin: a post that matches every rare term of the query stays
    first unless the dense side strongly prefers another one."""
    fused: dict[int, float] = {}
    top = max((score for _, score in lexical), default=0.0) or 1.0
    for cid, score in lexical:
        fused[cid] = w_lex * score / top
    if dense:
        hi, lo = dense[0][1], dense[-1][1]
        span = (hi - lo) or 1.0
        for cid, score in dense:
            fused[cid] = fused.get(cid, 0.0) + w_dense * (score - lo) / span
    return fused


# Measured defaults (benchmarks/fusion.py). MiniLM (English-only): BM25 leads, dense weight 0.2,
# no sentence re-scoring (its sentence cosines on Russian text carry no signal).
def weights_for(multilingual: bool) -> FusionWeights:
    if multilingual:
        return FusionWeights(
            dense=MULTILINGUAL_DENSE, dense_foreign=MULTILINGUAL_DENSE, sentence=MULTILINGUAL_SENTENCE
        )
    return FusionWeights()


# Chosen on the tune half of tests/data/realistic_qa.jsonl with multilingual-e5-small (62 answerable
# questions; benchmarks/fusion.py): hybrid hit@5 0.935 at dense weight 0.2 (the MiniLM choice), 0.952
# for 0.5-3.0; hit@1 0.823 at 0.5, 0.806 at 1.0-2.0, 0.726 at 3.0. Dense alone 0.935, BM25 alone
# 0.919. Re-scoring the top 10 posts by their best sentence's cosine changed little on this corpus
# (MRR 0.875 with weight 0 or 1, one question lost at 0.5); it is kept at 1.0, the middle of the flat range.
MULTILINGUAL_DENSE = 0.5
MULTILINGUAL_SENTENCE = 1.0


@dataclass
class Query:
    text: str
    language: str
    tokens: list[str]
    expansion: list[str]


def parse_query(text: str) -> Query:
    cleaned = clean_query(text)
    language = detect_language(cleaned)
    tokens = tokenize(cleaned)
    return Query(cleaned, language, tokens, expand_terms(tokens, language))


class Retriever:
    def __init__(
        self,
        generation: Generation,
        embedder: Embedder,
        store: Store,
        *,
        multilingual: bool,
        weights: FusionWeights | None = None,
        sentences: SentenceScorer,
    ):
        self.gen = generation
        self.embedder = embedder
        self.store = store
        self.multilingual = multilingual
        self.weights = weights or FusionWeights()
        self.sentences = sentences
        self._vectors: dict[str, np.ndarray] = {}

    # --- filters ----------------------------------------------------------------------------
    def allowed_ids(
        self, channel: str | None, since: date | datetime | None, until: date | datetime | None = None
    ) -> np.ndarray | None:
        if not channel and since is None and until is None:
            return None
        return np.array(filtered_chunk_ids(self.store, channel, since, until), dtype=np.int64)

    # --- the two retrievers -----------------------------------------------------------------
    def lexical(self, query: Query, allowed: np.ndarray | None, n: int) -> list[tuple[int, float]]:
        lex = self.gen.lexical
        scores = lex.scores(query.tokens)
        if query.expansion:
            scores = scores + EXPANSION_WEIGHT * lex.scores(query.expansion)
        if allowed is not None:
            scores = np.where(np.isin(lex.chunk_ids, allowed), scores, 0.0)
        if not scores.size:
            return []
        n = min(n, scores.size)
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(lex.chunk_ids[i]), float(scores[i])) for i in top if scores[i] > 0]

    def query_vector(self, text: str) -> np.ndarray:
        """The query's vector (dim,), remembered for the answer step that follows the search."""
        vector = self._vectors.get(text)
        if vector is None:
            vector = self.embedder.encode_queries([text])[0]
            if len(self._vectors) >= 512:
                self._vectors.pop(next(iter(self._vectors)))
            self._vectors[text] = vector
        return vector

    def dense(
        self, query: Query, allowed: np.ndarray | None, n: int
    ) -> tuple[list[tuple[int, float]], np.ndarray]:
        vector = self.query_vector(query.text)  # (dim,)
        scores, ids = self.gen.dense.search(vector, n, allowed)
        return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)], vector

    # --- search -----------------------------------------------------------------------------
    def search(
        self,
        text: str | Query,
        *,
        k: int = 5,
        channel: str | None = None,
        since: date | datetime | None = None,
        until: date | datetime | None = None,
        mode: str = "hybrid",
    ) -> list[Hit]:
        query = text if isinstance(text, Query) else parse_query(text)
        k = max(1, min(int(k), 100))
        allowed = self.allowed_ids(channel, since, until)
        n = max(CANDIDATES, 3 * k)
        lexical = self.lexical(query, allowed, n) if mode in ("hybrid", "bm25") else []
        dense, vector = self.dense(query, allowed, n) if mode in ("hybrid", "dense") else ([], None)
        if vector is None and len(self.gen.dense):
            vector = self.query_vector(query.text)

        fused: dict[int, float] = {}
        foreign = not self.multilingual and query.language != "en"
        if mode == "bm25":
            fused = dict(lexical)
        elif mode == "dense":
            fused = dict(dense)
        else:
            w_dense = self.weights.dense_foreign if foreign else self.weights.dense
            if self.weights.method == "rrf":
                fused = reciprocal_rank_fusion(lexical, dense, self.weights.lexical, w_dense)
            else:
                fused = convex_fusion(lexical, dense, self.weights.lexical, w_dense)
        ranked = sorted(fused.items(), key=lambda item: -item[1])
        top_lex = lexical[0][1] if lexical else 0.0
        lex_scores = dict(lexical)
        rescore = self.weights.rescore if mode != "bm25" and self.weights.sentence and not foreign else 0
        hits = self._materialize(ranked, max(k, rescore), query, vector)
        for hit in hits:
            hit.lexical = lex_scores.get(hit.chunk_id, 0.0) / top_lex if top_lex else 0.0
        if rescore and vector is not None and hits:
            self.rescore(hits[:rescore], query, vector)
        return hits[:k]

    def rescore(self, hits: list[Hit], query: Query, vector: np.ndarray) -> None:
        """Sentence-level re-scoring of the top posts, in place: score + w * best sentence cosine
        (the fused score's min-max part is relative, the sentence cosine absolute), then re-ranked."""
        for hit in hits:
            hit.sentence_cosine = self.sentences.best_cosine(vector, hit.post_text or hit.text)
            hit.score = hit.score + self.weights.sentence * hit.sentence_cosine
        hits.sort(key=lambda h: -h.score)
        for rank, hit in enumerate(hits, 1):
            hit.rank = rank

    def _materialize(
        self, ranked: list[tuple[int, float]], k: int, query: Query, vector: np.ndarray | None
    ) -> list[Hit]:
        if not ranked:
            return []
        meta = chunk_views(self.store, [cid for cid, _ in ranked[: 4 * k + 20]])
        hits: list[Hit] = []
        seen_docs: set[tuple[str, int | None]] = set()
        chosen_vectors: list[np.ndarray] = []
        for cid, score in ranked:
            row = meta.get(cid)
            if row is None:  # chunk deleted from the store after this generation was built
                continue
            doc = ("post", row.post_id) if row.post_id is not None else ("paper", row.paper_id)
            if doc in seen_docs:
                continue  # collapse: the post's best chunk already stands for it
            chunk_vector = self._vector(cid)
            if chunk_vector is not None and any(
                float(chunk_vector @ v) > DUPLICATE_COSINE for v in chosen_vectors
            ):
                continue  # near-duplicate of a post already shown
            seen_docs.add(doc)
            if chunk_vector is not None:
                chosen_vectors.append(chunk_vector)
            chunk_terms = set(
                tokenize(row.doc_text or row.text)
            )  # the whole post: terms may sit in another chunk
            coverage = self._coverage(query, chunk_terms)
            cosine = float(chunk_vector @ vector) if chunk_vector is not None and vector is not None else 0.0
            hits.append(
                Hit(
                    rank=len(hits) + 1,
                    score=score,
                    text=row.text,
                    post_id=row.post_id,
                    channel=row.channel,
                    date=row.date,
                    url=row.url,
                    title=row.title,
                    chunk_id=cid,
                    paper_id=row.paper_id,
                    coverage=min(1.0, coverage),
                    cosine=cosine,
                    post_text=row.doc_text if row.post_id is not None else None,
                    lead=_lead(row.doc_text or row.text),
                )
            )
            if len(hits) >= k:
                break
        return hits

    def _coverage(self, query: Query, doc_terms: set[str]) -> float:
        """IDF-weighted share of the query's terms found in the document (a glossary translation
        counts for its source term): rare terms like model names weigh most, words that occur
        everywhere ("model", "train") little, and words the corpus never saw the most."""
        terms = list(dict.fromkeys(query.tokens))
        if not terms:
            return 0.0
        idf = self.gen.lexical.idf
        translated = set(query.expansion) & doc_terms
        found = total = 0.0
        for term in terms:
            weight = idf(term)
            total += weight
            if term in doc_terms or (translated and set(expand_terms([term], query.language)) & translated):
                found += weight
        return found / total if total else 0.0

    def _vector(self, chunk_id: int) -> np.ndarray | None:
        try:
            return np.asarray(self.gen.dense.index.reconstruct(int(chunk_id)))
        except RuntimeError:
            return None


def _lead(text: str, words: int = 8) -> str:
    """The first words of a post, as a reader would search for it in the channel."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    parts = first.split()
    return " ".join(parts[:words]) + ("…" if len(parts) > words else "")
