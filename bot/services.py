"""Building the services from settings, once per process; commands and handlers receive them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

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
    from rag.service import RagConfig, RagService


def open_corpus(settings: Settings) -> Store:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return open_store(settings.resolved_database_url)


def llm_config(settings: Settings) -> LLMConfig | None:
    """The LLM endpoint settings as the plain `rag.llm.LLMConfig` (None: no LLM configured); the one
    place they are read, for answers and for translation."""
    from rag.llm import LLMConfig

    if not settings.llm_base_url:
        return None
    return LLMConfig(
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key.get_secret_value(),
        model=settings.llm_model,
        timeout_s=settings.llm_timeout_s,
    )


def rag_config(settings: Settings) -> RagConfig:
    """The retrieval service's plain config from the settings (their defaults are the only ones)."""
    from rag.service import RagConfig

    config = RagConfig(
        data_dir=settings.data_dir,
        embedding_model=settings.embedding_model,
        llm_context_tokens=settings.llm_context_tokens,
    )
    llm = llm_config(settings)
    if llm is not None:
        config.llm_base_url, config.llm_api_key = llm.base_url, llm.api_key
        config.llm_model, config.llm_timeout_s = llm.model, llm.timeout_s
    return config


def build_rag(settings: Settings, store: Store) -> RagService:
    """The retrieval and answer service; the embedding model loads on first use."""
    from rag.service import RagService

    return RagService(rag_config(settings), store)


def convert_post(
    settings: Settings,
    store: Store | None,
    source: str | SourcePost,
    *,
    lang: str | None = None,
    rules_file: Path | None = None,
    glossary_file: Path | None = None,
    targets: list[str] | None = None,
    restyle: bool = False,
    fmt: str = "auto",
    stdin: TextIO | None = None,
) -> ConversionResult:
    """`crosspost.service.convert` with the settings' language, LLM, rules and glossary (the
    arguments given here win); the one place the CLI and the bot pass them."""
    from crosspost.service import convert

    return convert(
        source,
        targets=targets,
        lang=lang or settings.crosspost_lang,
        store=store,
        llm=llm_config(settings),
        restyle=restyle,
        rules_file=rules_file or settings.crosspost_rules,
        glossary_file=glossary_file or settings.crosspost_glossary,
        fmt=fmt,
        stdin=stdin,
    )


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
        from crosspost.sources import load_stored

        if isinstance(source, str):
            ref = parse_post_link(source, short=True)
            if ref is None:
                raise CrosspostError(f"{source!r} is not a post link (expected https://t.me/<channel>/<id>)")
            source = load_stored(ref, store=self.store)
        return convert_post(self.settings, None if fresh else self.store, source, lang=lang)


def build_services(settings: Settings) -> Services:
    """Open the corpus and build retrieval and cross-posting on it (models load here, once)."""
    store = open_corpus(settings)
    rag = build_rag(settings, store)
    corpus = CorpusOps(store, rag, data_dir=settings.data_dir)
    return Services(settings, store, rag, CrosspostService(settings, store), corpus)
