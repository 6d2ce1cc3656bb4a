"""Fairness: per-user rate limit, per-chat queue, and honouring the Bot API's 429 `retry_after`.

- `RateLimitMiddleware` (inner, on messages and button presses, one budget per user): a sliding
  window; over the limit the handler does not run and the user hears "wait N s" once per blocked
  stretch (the first refused message or press), not once per message: a flood of 10,000 messages
  costs one reply. Admins are exempt.
- `ChatQueueMiddleware` (inner, on messages): one handler at a time per chat, in arrival order.
  aiogram handles every update in its own task, so a slow answer in one chat only queues that
  chat's later messages; other chats proceed.
- `RetryAfterMiddleware` (on the bot's HTTP session): on 429 it sleeps `retry_after` seconds and
  sends the same request again, a few times, instead of dropping the message.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import CallbackQuery, Message, TelegramObject

from bot.texts import lang_of, t

log = logging.getLogger(__name__)
Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class RateLimitMiddleware(BaseMiddleware):
    def __init__(self, limit: int, window_s: float, admin_ids: list[int] | None = None):
        self.limit = limit
        self.window_s = window_s
        self.admin_ids = set(admin_ids or [])
        self._hits: dict[int, deque[float]] = defaultdict(deque)
        self._warned_until: dict[int, float] = {}

    def retry_in(self, user_id: int, now: float | None = None) -> float:
        """Seconds until this user may send again; 0 when allowed (and then the hit is counted)."""
        now = time.monotonic() if now is None else now
        hits = self._hits[user_id]
        while hits and now - hits[0] >= self.window_s:
            hits.popleft()
        if len(hits) >= self.limit:
            return self.window_s - (now - hits[0])
        hits.append(now)
        self._warned_until.pop(user_id, None)
        if len(self._hits) > 10_000:  # many one-off users: forget the idle ones so memory stays flat
            for uid in [u for u, h in self._hits.items() if not h or now - h[-1] >= self.window_s]:
                self._hits.pop(uid, None)
            for uid in [u for u, until in self._warned_until.items() if until <= now]:
                self._warned_until.pop(uid, None)
        return 0.0

    def should_warn(self, user_id: int, wait: float, now: float | None = None) -> bool:
        """True for the first refusal of a blocked stretch; later refusals until it ends stay silent."""
        now = time.monotonic() if now is None else now
        if now < self._warned_until.get(user_id, 0.0):
            return False
        self._warned_until[user_id] = now + wait
        return True

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user = getattr(event, "from_user", None)
        if not isinstance(event, Message | CallbackQuery) or user is None or user.id in self.admin_ids:
            return await handler(event, data)
        wait = self.retry_in(user.id)
        if wait <= 0:
            return await handler(event, data)
        if self.should_warn(user.id, wait):
            text = t(lang_of(user), "rate_limited", s=max(1, math.ceil(wait)))
            if isinstance(event, CallbackQuery):
                await event.answer(text, show_alert=True)
            else:
                await event.reply(text, parse_mode=None)
        return None


class ChatQueueMiddleware(BaseMiddleware):
    def __init__(self) -> None:
        self._locks: dict[int, asyncio.Lock] = {}
        self._waiting: dict[int, int] = defaultdict(int)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        chat = getattr(event, "chat", None)
        if chat is None:
            return await handler(event, data)
        lock = self._locks.setdefault(chat.id, asyncio.Lock())
        self._waiting[chat.id] += 1
        try:
            async with lock:
                return await handler(event, data)
        finally:
            self._waiting[chat.id] -= 1
            if not self._waiting[chat.id]:  # forget idle chats so the dicts stay small
                self._waiting.pop(chat.id, None)
                self._locks.pop(chat.id, None)


class RetryAfterMiddleware(BaseRequestMiddleware):
    def __init__(self, max_retries: int = 3, max_wait_s: float = 60.0):
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        for attempt in range(self.max_retries + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if attempt == self.max_retries or exc.retry_after > self.max_wait_s:
                    raise
                log.info("429 on %s: waiting %s s", method.__api_method__, exc.retry_after)
                await asyncio.sleep(exc.retry_after)
        raise AssertionError("unreachable")
