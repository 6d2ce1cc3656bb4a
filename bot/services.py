"""Building the services from settings, once per process; commands and handlers receive them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.corpus_ops import CorpusOps
from bot.settings import Settings
from core.errors import CrosspostError
from core.tme import parse_post_link
from rag.store import Store, open_store


def open_corpus(settings: Settings) -> Store:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return open_store(settings.resolved_database_url)


def llm_config(settings: Settings) -> Any:
    """The LLM endpoint settings as the plain `rag.llm.LLMConfig` (None: no LLM configured)."""
    from rag.llm import LLMConfig

    if not settings.llm_base_url:
        return None
    return LLMConfig(
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key.get_secret_value(),
        model=settings.llm_model,
        timeout_s=settings.llm_timeout_s,
    )


def build_rag(settings: Settings, store: Store) -> Any:
    """The retrieval and answer service (rag.service.RagService); the model loads on first use."""
    from rag.service import build_rag as _build

    return _build(settings, store)


# --- the bot's services (bot/handlers receive these by name) -----------------------------------
@dataclass
class Services:
    """Everything the bot's handlers use, built once from the settings."""

    settings: Settings
    store: Store
    rag: Any  # rag.service.RagService: search / ask / stream_answer / forget / sync / reindex
    crosspost: Any  # CrosspostService: convert(source, *, lang, fresh) -> ConversionResult.to_json()
    corpus: CorpusOps

    def workflow_data(self) -> dict[str, Any]:
        """Keyword arguments handlers can ask for by name."""
        return {
            "services": self,
            "settings": self.settings,
            "rag": self.rag,
            "crosspost": self.crosspost,
            "corpus": self.corpus,
        }

    def close(self) -> None:
        close = getattr(self.rag, "close", None)
        if callable(close):
            close()
        self.store.close()


class CrosspostService:
    """Binds the store and the LLM settings for the bot's conversions.

    `source` is a post link (`https://t.me/<channel>/<id>`, read from the store) or a dict with the
    message's `text` and Bot API `entities`. Text is never treated as a file path: a user's message
    must not make the bot read files on the server. Returns `ConversionResult.to_json()`.
    """

    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store

    def _llm(self) -> Any:
        return llm_config(self.settings)

    def convert(
        self, source: str | dict[str, Any], *, lang: str | None = None, fresh: bool = False
    ) -> dict[str, Any]:
        """`fresh=True` translates again instead of reusing the stored translation."""
        from crosspost.model import SourcePost
        from crosspost.service import convert
        from crosspost.sources import load_stored

        if isinstance(source, str):
            ref = parse_post_link(source, short=True)
            if ref is None:
                raise CrosspostError(f"{source!r} is not a post link (expected https://t.me/<channel>/<id>)")
            post = load_stored(ref, store=self.store)
        else:
            post = SourcePost(
                text=str(source.get("text") or ""),
                entities=list(source.get("entities") or []),
                origin="the message",
            )
        store = None if fresh else self.store
        return convert(
            post,
            lang=lang or self.settings.crosspost_lang,
            store=store,
            llm=self._llm(),
            rules_file=self.settings.crosspost_rules,
            glossary_file=self.settings.crosspost_glossary,
        ).to_json()


def build_services(settings: Settings) -> Services:
    """Open the corpus and build retrieval and cross-posting on it (models load here, once)."""
    store = open_corpus(settings)
    rag = build_rag(settings, store)
    corpus = CorpusOps(store, rag, data_dir=settings.data_dir)
    return Services(settings, store, rag, CrosspostService(settings, store), corpus)
