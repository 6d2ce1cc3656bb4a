"""In-process UI state of the running bot: answers' sources and conversions behind inline buttons.

Buttons carry a random key (72 bits from `secrets`, not a counter) into these caches, and every
entry remembers its owner: the chat and the user it was made for. Telegram clients can send any
callback data, so a key is only a lookup: a press by anyone but the owner is answered "not yours"
and reveals nothing, an unknown key (an old keyboard after a restart, a guess) is "stale". Caches
are bounded (LRU), so memory stays flat on a busy bot.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, Message

from bot.streaming import DraftSupport
from crosspost.model import SourcePost
from rag.types import Citation

if TYPE_CHECKING:
    from crosspost.service import ConversionResult

T = TypeVar("T")


class SourcesCb(CallbackData, prefix="src"):
    key: str


class ConvertCb(CallbackData, prefix="cv"):
    channel: str
    msg: int


class XpostCb(CallbackData, prefix="xp"):
    key: str
    action: str  # "show" | "thread" | "retranslate"
    network: str


Owner = tuple[int, int]  # (chat id, user id)
STALE, NOT_YOURS = "stale_button", "not_yours"  # also the keys of their texts in bot.texts


@dataclass
class Conversion:
    """A preview's source (kept for "re-translate") and the service's result."""

    source: str | SourcePost
    result: ConversionResult


class Lru(Generic[T]):
    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[str, tuple[Owner, T]] = OrderedDict()

    def put(self, value: T, owner: Owner) -> str:
        key = secrets.token_urlsafe(9)  # 12 characters; callback data stays far below 64 bytes
        self._items[key] = (owner, value)
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return key

    def lookup(self, key: str, owner: Owner) -> tuple[T | None, str | None]:
        """(value, None) for the owner; (None, STALE) for an unknown key; (None, NOT_YOURS) otherwise."""
        item = self._items.get(key)
        if item is None:
            return None, STALE
        if item[0] != owner:
            return None, NOT_YOURS
        self._items.move_to_end(key)
        return item[1], None

    def replace(self, key: str, value: T) -> None:
        owner, _ = self._items[key]
        self._items[key] = (owner, value)


def owner_of(event: Message | CallbackQuery) -> Owner | None:
    """(chat id, user id) of a message or a button press (user 0 when a message has no sender,
    e.g. one sent on behalf of a chat, so no press matches it); None without a chat (a press on
    a message too old for Telegram to send)."""
    user = event.from_user
    message = event.message if isinstance(event, CallbackQuery) else event
    if message is None:
        return None
    return (message.chat.id, user.id if user is not None else 0)


class UiState:
    def __init__(self, max_concurrent_answers: int = 4, cache_size: int = 2000):
        self.answers: Lru[list[Citation]] = Lru(cache_size)  # key -> the answer's citations
        self.conversions: Lru[Conversion] = Lru(cache_size)
        self.drafts = DraftSupport(True)
        self.answer_slots = asyncio.Semaphore(max_concurrent_answers)
