"""Building the services from settings, once per process; commands and handlers receive them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.corpus_ops import CorpusOps
from bot.seams import CrossPoster, RagServices
from bot.settings import Settings
from core.errors import CrosspostError
from core.tme import parse_post_link
from crosspost.model import SourcePost
from rag.store import Store, open_store

if TYPE_CHECKING:  # loaded when used: the CLI's start-up stays short
    from crosspost.service import ConversionResult
    from rag.llm import LLMConfig
    from rag.service import RagService


def open_corpus(settings: Settings) -> Store:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return open_store(settings.resolved_database_url)


def llm_config(settings: Settings) -> LLMConfig | None:
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


def build_rag(settings: Settings, store: Store) -> RagService:
    """The retrieval and answer service (rag.service.RagService); the model loads on first use."""
    from rag.service import build_rag as _build

    return _build(settings, store)


# --- the bot's services (bot/handlers receive these by name) -----------------------------------
@dataclass
class Services:
    """Everything the bot's handlers use, built once from the settings."""

    settings: Settings
    store: Store
    rag: RagServices  # rag.service.RagService in the running bot
    crosspost: CrossPoster  # CrosspostService in the running bot
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
        self.rag.close()
        self.store.close()


class CrosspostService:
    """Binds the store and the LLM settings for the bot's conversions.

    `source` is a post link (`https://t.me/<channel>/<id>`, read from the store) or a `SourcePost`
    with the message's text and Bot API entities. Text is never treated as a file path: a user's
    message must not make the bot read files on the server.
    """

    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store

    def convert(
        self, source: str | SourcePost, *, lang: str | None = None, fresh: bool = False
    ) -> ConversionResult:
        """`fresh=True` translates again instead of reusing the stored translation."""
        from crosspost.service import convert
        from crosspost.sources import load_stored

        if isinstance(source, str):
            ref = parse_post_link(source, short=True)
            if ref is None:
                raise CrosspostError(f"{source!r} is not a post link (expected https://t.me/<channel>/<id>)")
            post = load_stored(ref, store=self.store)
        else:
            post = source
        store = None if fresh else self.store
        return convert(
            post,
            lang=lang or self.settings.crosspost_lang,
            store=store,
            llm=llm_config(self.settings),
            rules_file=self.settings.crosspost_rules,
            glossary_file=self.settings.crosspost_glossary,
        )


def build_services(settings: Settings) -> Services:
    """Open the corpus and build retrieval and cross-posting on it (models load here, once)."""
    store = open_corpus(settings)
    rag = build_rag(settings, store)
    corpus = CorpusOps(store, rag, data_dir=settings.data_dir)
    return Services(settings, store, rag, CrosspostService(settings, store), corpus)
