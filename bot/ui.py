"""In-process UI state of the running bot: answers' sources and conversions behind inline buttons.

Buttons carry a short key into these caches plus this process's `session` id; after a restart the
session id differs, so an old button is recognised as stale and answered politely instead of
showing someone else's data. Caches are bounded (LRU), so memory stays flat on a busy bot.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections import OrderedDict
from typing import Any

from aiogram.filters.callback_data import CallbackData

from bot.streaming import DraftSupport


class SourcesCb(CallbackData, prefix="src"):
    session: str
    key: int


class ConvertCb(CallbackData, prefix="cv"):
    channel: str
    msg: int


class XpostCb(CallbackData, prefix="xp"):
    session: str
    key: int
    action: str  # "show" | "thread" | "retranslate"
    network: str


class Lru:
    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[int, Any] = OrderedDict()
        self._ids = itertools.count(1)

    def put(self, value: Any) -> int:
        key = next(self._ids)
        self._items[key] = value
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return key

    def get(self, key: int) -> Any | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def replace(self, key: int, value: Any) -> None:
        self._items[key] = value


class UiState:
    def __init__(self, max_concurrent_answers: int = 4, cache_size: int = 2000):
        self.session = secrets.token_hex(3)
        self.answers = Lru(cache_size)  # key -> list of citations
        self.conversions = Lru(cache_size)  # key -> {"source": str, "result": dict, "lang": str}
        self.drafts = DraftSupport(True)
        self.answer_slots = asyncio.Semaphore(max_concurrent_answers)
