"""Building the services from settings, once per process; commands and handlers receive them."""

from __future__ import annotations

from bot.settings import Settings
from rag.store import Store, open_store


def open_corpus(settings: Settings) -> Store:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return open_store(settings.resolved_database_url)
