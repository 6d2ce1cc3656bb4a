"""Building the services from settings, once per process; commands and handlers receive them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.corpus_ops import CorpusOps
from bot.settings import Settings
from rag.store import Store, open_store


def open_corpus(settings: Settings) -> Store:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return open_store(settings.resolved_database_url)


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
    crosspost: Any  # object with convert(source, *, targets, lang, restyle) -> ConversionResult
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
    """Binds the store and the LLM settings, so handlers call `convert(source, targets=..., lang=...)`."""

    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store

    def convert(
        self, source: Any, *, targets: list[str] | None = None, lang: str | None = None, restyle: bool = False
    ) -> Any:
        from crosspost.service import convert, llm_from_settings

        return convert(
            source,
            targets=targets,
            lang=lang,
            store=self.store,
            llm=llm_from_settings(self.settings),
            restyle=restyle,
        )


def build_services(settings: Settings) -> Services:
    """Open the corpus and build retrieval and cross-posting on it (models load here, once)."""
    store = open_corpus(settings)
    from rag.service import build_rag

    rag = build_rag(settings, store)
    return Services(settings, store, rag, CrosspostService(settings, store), CorpusOps(store, rag))
