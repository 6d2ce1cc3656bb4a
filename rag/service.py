"""`RagService`: the one object front ends (CLI, bot) use for search, answers and index upkeep.

Built once per process with `RagService(RagConfig(...), store)`; it loads the embedding model
lazily (first search/sync), picks up a new index generation when another process swapped one in,
and keeps per-chat memory. Never imports `bot/`; settings arrive as the plain `RagConfig`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from core.errors import LLMError, RetrievalError
from rag import answer as compose
from rag import calibration
from rag.embedding import DEFAULT_MODEL, Embedder, ModelSpec, embed_with_cache
from rag.lifecycle import Generation, IndexManager, SyncReport
from rag.llm import LLMClient, LLMConfig
from rag.memory import ChatMemory, Turn, heuristic_rewrite, looks_like_follow_up, rewrite_messages
from rag.retrieve import FusionWeights, Query, Retriever, parse_query, weights_for
from rag.sentences import SentenceScorer
from rag.store import Store
from rag.text import clean_query, tokenize
from rag.types import Answer, Hit, JSONValue

log = logging.getLogger(__name__)
EMPTY_STORE = "nothing ingested yet: run research-bot ingest"


@dataclass
class RagConfig:
    data_dir: Path
    embedding_model: str = DEFAULT_MODEL  # the bundled multilingual e5, as the settings' default
    llm_base_url: str | None = None
    llm_api_key: str = "not-needed"
    llm_model: str = "default"
    llm_timeout_s: float = 60.0
    ann_threshold: int = 200_000  # exact FAISS index below, HNSW above
    context_sources: int = 5  # hits given to the LLM
    # Fusion weights; None: the measured default for the model's kind (rag.retrieve.weights_for).
    dense_weight: float | None = None
    dense_weight_foreign: float | None = None
    sentence_weight: float | None = None
    llm_context_tokens: int | None = None  # the served model's context; None: ask the endpoint
    translate_queries: bool = True  # ask the LLM (when configured) to translate en questions for BM25
    memory_turns: int = 3

    @property
    def index_dir(self) -> Path:
        return Path(self.data_dir) / "index"


@dataclass
class _LLMRequest:
    """The prompt fitted to the model's context, the hits it carries (cited as [1]..[n])."""

    messages: list[dict[str, str]]
    sources: list[Hit]
    max_tokens: int


@dataclass
class _Plan:
    """One question's answer up to the LLM call (see `RagService._plan`)."""

    question: str  # cleaned
    standalone: str  # after follow-up rewriting: what was searched
    hits: list[Hit]  # everything retrieved (the answer carries them for evaluation)
    quotes: Answer  # abstention or extractive quotes: the answer when the LLM does not speak
    request: _LLMRequest | None = None  # None: abstained, or no LLM configured
    failure: LLMError | None = None  # building the request failed: answer with quotes and say why


class RagService:
    def __init__(self, config: RagConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.spec = ModelSpec.parse(config.embedding_model)
        self._embedder: Embedder | None = None
        self._lock = threading.RLock()
        self.indexes = IndexManager(config.index_dir, self.spec, self.embedder, config.ann_threshold)
        self._generation: Generation | None = None
        self._retriever: Retriever | None = None
        self.memory = ChatMemory(max_turns=config.memory_turns)
        self.calibration: calibration.Calibration = calibration.DEFAULT  # replaced on first retriever()
        self.llm: LLMClient | None = None
        if config.llm_base_url:
            self.llm = LLMClient(
                LLMConfig(config.llm_base_url, config.llm_api_key, config.llm_model, config.llm_timeout_s)
            )

    # --- components ---------------------------------------------------------------------------
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = Embedder(self.spec)
            return self._embedder

    def retriever(self) -> Retriever:
        """The retriever over the serving generation; reloads after another process swapped it."""
        with self._lock:
            name = self.indexes.current_name()
            if (
                self._retriever is not None
                and self._generation is not None
                and name == self._generation.folder.name
            ):
                return self._retriever
            if name is None:
                if not self.store.has_posts():
                    raise RetrievalError(EMPTY_STORE)
                self.indexes.sync(self.store)  # posts stored but never indexed (e.g. an older ingest)
            generation = self.indexes.load()
            if generation is None or not len(generation.lexical):
                if not self.store.has_posts():
                    raise RetrievalError(EMPTY_STORE)
                if generation is None:
                    raise RetrievalError("no search index yet: run research-bot reindex")
            self.indexes.check_model(generation)
            self._generation = generation
            self._retriever = Retriever(
                generation,
                self.embedder(),
                self.store,
                multilingual=self.spec.multilingual,
                weights=self.weights(),
                sentences=SentenceScorer(self._embed_sentences),
            )
            self.calibration = calibration.load(self.config.index_dir, self.spec.identity)
            if self.calibration.note:
                log.warning("%s", self.calibration.note)
            return self._retriever

    def weights(self) -> FusionWeights:
        weights = weights_for(self.spec.multilingual)
        if self.config.dense_weight is not None:
            weights.dense = self.config.dense_weight
        if self.config.dense_weight_foreign is not None:
            weights.dense_foreign = self.config.dense_weight_foreign
        if self.config.sentence_weight is not None:
            weights.sentence = self.config.sentence_weight
        return weights

    def _embed_sentences(self, texts: list[str]) -> np.ndarray:
        """Sentence vectors through the same cache as chunk vectors (each sentence embedded once)."""
        return embed_with_cache(self.embedder(), self.indexes.cache(), texts)[0]

    # --- index upkeep -------------------------------------------------------------------------
    def sync(self) -> int:
        """Index new/changed chunks from the store; returns how many chunks were added or removed."""
        report = self.sync_report()
        return report.added + report.removed

    def sync_report(self, *, rebuild: bool = False) -> SyncReport:
        report = self.indexes.sync(self.store, rebuild=rebuild)
        if report.message:
            log.warning("%s", report.message)
        return report

    def reindex(self) -> dict[str, JSONValue]:
        """Rebuild both indexes from the store into a new folder and swap it in; the report's
        JSON (`SyncReport.to_json`) with the chunk count, the model identity and the dense index kind."""
        report = self.sync_report(rebuild=True)
        generation = self.indexes.load()
        out = report.to_json()
        out.update(
            {
                "chunks": len(generation.lexical) if generation else 0,
                "model": self.spec.identity,
                "dense": generation.manifest.get("dense") if generation else None,
            }
        )
        return out

    # --- search -------------------------------------------------------------------------------
    def search(
        self,
        query: str,
        *,
        k: int = 5,
        channel: str | None = None,
        since: date | None = None,
        until: date | None = None,
        mode: str = "hybrid",
    ) -> list[Hit]:
        parsed = parse_query(query)  # bad input fails before any model loads
        return self.retriever().search(parsed, k=k, channel=channel, since=since, until=until, mode=mode)

    def _search_for_answer(
        self, question: str, memory_key: str | None, mode: str = "hybrid", k: int | None = None
    ) -> tuple[str, list[Hit]]:
        history = self.memory.history(memory_key)
        standalone = compose_query = question
        if history and looks_like_follow_up(question):
            standalone = self._rewrite(question, history)
        compose_query = standalone
        parsed = parse_query(compose_query)
        if self.llm is not None and self.config.translate_queries and parsed.language != "ru":
            parsed = self._with_translation(parsed)
        hits = self.retriever().search(parsed, k=max(k or 0, self.config.context_sources), mode=mode)
        return standalone, hits

    def _rewrite(self, question: str, history: list[Turn]) -> str:
        if self.llm is not None:
            try:
                text = (
                    self.llm.complete(rewrite_messages(question, history), max_tokens=80).strip().strip('"«»')
                )
                if text and len(text) < 500:
                    return text
            except LLMError as exc:
                log.info("follow-up rewrite by LLM failed (%s); using the heuristic", exc)
        return heuristic_rewrite(question, history)

    def _with_translation(self, query: Query) -> Query:
        """LLM query translation into Russian, added to the lexical expansion (cross-lingual BM25)."""
        assert self.llm is not None  # called only when an LLM is configured
        try:
            text = self.llm.complete(
                [
                    {
                        "role": "system",
                        "content": "Translate the search query into Russian. Keep technical terms and "
                        "names as they are. Output only the translation.",
                    },
                    {"role": "user", "content": query.text},
                ],
                max_tokens=120,
            )
        except LLMError:
            return query
        extra = [t for t in tokenize(text[:500]) if t not in query.tokens and t not in query.expansion]
        return Query(query.text, query.language, query.tokens, query.expansion + extra)

    # --- answers ------------------------------------------------------------------------------
    def _evidence(self, standalone: str, hits: list[Hit]) -> np.ndarray:
        """The query vector and each top hit's best sentence cosine (computed here when the
        retrieval mode did not re-score, e.g. BM25-only), for abstention and quote selection."""
        retriever = self.retriever()
        vector = retriever.query_vector(standalone)
        for hit in hits[: calibration.EVIDENCE_HITS]:
            if not hit.sentence_cosine:
                hit.sentence_cosine = retriever.sentences.best_cosine(vector, hit.post_text or hit.text)
        return vector

    def _compose_offline(
        self, question: str, standalone: str, hits: list[Hit], notice: str | None = None
    ) -> tuple[Answer, bool]:
        """Abstention or quotes, without the LLM."""
        vector = self._evidence(standalone, hits)
        if self.calibration.decide(standalone, hits, self.retriever().gen.lexical.vocab):
            return compose.abstain(
                question, hits, mode="llm" if self.llm else "extractive", notice=notice
            ), True
        scorer = self.retriever().sentences
        return compose.extractive_answer(question, hits, notice=notice, scorer=scorer, vector=vector), False

    def _plan(
        self, question: str, memory_key: str | None, mode: str = "hybrid", k: int | None = None
    ) -> _Plan:
        """Everything an answer needs before the LLM speaks: the standalone query, the hits, the
        answer without the LLM (abstention or quotes) and, when the LLM should answer, its request.
        `ask` and `stream_answer` differ only in how they run the request."""
        question = clean_query(question)  # no control characters or 100k pastes in the prompt either
        standalone, all_hits = self._search_for_answer(question, memory_key, mode, k)
        hits = all_hits[: self.config.context_sources]
        quotes, abstained = self._compose_offline(question, standalone, hits)
        plan = _Plan(question, standalone, all_hits, quotes)
        if self.llm is not None and not abstained:
            history = [(t.question, t.answer) for t in self.memory.history(memory_key)]
            try:
                plan.request = self._llm_messages(question, standalone, hits, history)
            except LLMError as exc:
                plan.failure = exc
        return plan

    def _fallback(self, plan: _Plan, exc: LLMError) -> Answer:
        """The quotes, with a notice saying why the LLM did not answer."""
        log.warning("%s; answering with quotes", exc)
        plan.quotes.notice = _notice(plan.question, exc)
        return plan.quotes

    def _finish(self, plan: _Plan, result: Answer, memory_key: str | None) -> Answer:
        result.query = plan.standalone
        result.hits = plan.hits
        self.memory.remember(memory_key, plan.question, plan.standalone, result.answer)
        return result

    def ask(
        self, question: str, *, memory_key: str | None = None, mode: str = "hybrid", k: int | None = None
    ) -> Answer:
        """Answer from the corpus; `mode` and `k` (hits retrieved) exist for evaluation."""
        plan = self._plan(question, memory_key, mode, k)
        result = plan.quotes
        if plan.failure is not None:
            result = self._fallback(plan, plan.failure)
        elif plan.request is not None:
            assert self.llm is not None
            try:
                text = self.llm.complete(plan.request.messages, max_tokens=plan.request.max_tokens)
                result = compose.llm_answer(plan.question, text, plan.request.sources)
            except LLMError as exc:
                result = self._fallback(plan, exc)
        return self._finish(plan, result, memory_key)

    async def stream_answer(
        self, question: str, *, memory_key: str | None = None
    ) -> AsyncIterator[str | Answer]:
        """Text deltas as they are produced, then exactly one final `Answer` (the authoritative,
        citation-checked text; a front end replaces the streamed draft with it)."""
        plan = await asyncio.to_thread(self._plan, question, memory_key)
        result = plan.quotes
        if plan.failure is not None:
            result = self._fallback(plan, plan.failure)
            yield result.answer
        elif plan.request is None:
            yield result.answer
        else:
            assert self.llm is not None
            parts: list[str] = []
            try:
                async for delta in self.llm.stream(plan.request.messages, max_tokens=plan.request.max_tokens):
                    parts.append(delta)
                    yield delta
                result = compose.llm_answer(plan.question, "".join(parts), plan.request.sources)
            except LLMError as exc:
                result = self._fallback(plan, exc)
                yield ("\n\n" if parts else "") + result.answer
        yield self._finish(plan, result, memory_key)

    def _llm_messages(
        self, question: str, standalone: str, hits: list[Hit], history: list[tuple[str, str]]
    ) -> _LLMRequest:
        """The prompt fitted to the served model's context (setting, else the endpoint's
        /v1/models, else unbudgeted), the hits it carries, and the answer's token limit."""
        assert self.llm is not None
        context = self.config.llm_context_tokens or self.llm.context_window()
        max_tokens = self.llm.config.max_tokens
        budget = None
        if context:
            max_tokens = min(max_tokens, max(64, context // 4))
            budget = context - max_tokens
        retriever = self.retriever()
        messages, count = compose.budgeted_messages(
            question,
            hits,
            history,
            budget_tokens=budget,
            scorer=retriever.sentences,
            vector=retriever.query_vector(standalone),
        )
        return _LLMRequest(messages, hits[:count], max_tokens)

    def forget(self, memory_key: str | None) -> None:
        self.memory.forget(memory_key)

    def close(self) -> None:
        if self.llm is not None:
            self.llm.close()
        self.indexes.close()


def _notice(question: str, exc: Exception) -> str:
    lang = compose.language_of(question)
    return f"{compose.TEXTS[lang]['notice_down']} ({exc})"
