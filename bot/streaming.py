"""Showing an answer while it is generated: message drafts in private chats, throttled edits elsewhere.

`AnswerStreamer.feed(delta)` buffers text and shows it at sentence ends, at most once per
`interval` seconds (Telegram rate-limits edits to about one per second per chat). In private
chats it first tries `sendMessageDraft` (Bot API 9.3+); if the server does not support it, it
switches (for the rest of the process) to `sendMessage` + `editMessageText`. `finish(parts)`
replaces the preview with the final HTML parts. Streaming previews are plain text (no parse mode),
so half-written markup can never fail to parse.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramNotFound, TelegramRetryAfter, TelegramServerError
from aiogram.methods import SendMessageDraft
from aiogram.types import InlineKeyboardMarkup, LinkPreviewOptions, Message, ReplyParameters

from bot.formatting import plain_preview

log = logging.getLogger(__name__)
_SENTENCE_END = re.compile(r"[.!?…;:](?:[)\]»\"']*)(?=\s)|\n")


class DraftSupport:
    """Whether the Bot API server accepted `sendMessageDraft`; learned once per process."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled


class AnswerStreamer:
    def __init__(
        self,
        bot: Bot,
        chat_id: int,
        *,
        private: bool,
        reply_to: int | None,
        interval: float = 1.0,
        drafts: DraftSupport | None = None,
        thread_id: int | None = None,
    ):
        self.bot = bot
        self.chat_id = chat_id
        self.reply_to = reply_to
        self.interval = interval
        self.thread_id = thread_id
        self.drafts = drafts or DraftSupport(False)
        self.use_draft = private and self.drafts.enabled
        self.draft_id = random.randint(1, 2**31 - 1)
        self.text = ""
        self.shown = ""
        self.message: Message | None = None
        # Monotonic time of the last preview request. Starting the clock now means an answer that is
        # ready within one interval (extractive answers) goes straight to its final message.
        self._last = time.monotonic()

    def _reply(self) -> ReplyParameters | None:
        if self.reply_to is None:
            return None
        return ReplyParameters(message_id=self.reply_to, allow_sending_without_reply=True)

    async def feed(self, delta: str) -> None:
        now = time.monotonic()
        if not self.text:
            # The long-sentence fallback counts from the first delta, not from the question: when
            # retrieval alone takes 3 intervals (a busy machine), the first preview must still
            # wait for a whole sentence rather than show "SageAttention квантует Q".
            self._last = max(self._last, now - self.interval)
        self.text += delta
        if now - self._last < self.interval:
            return
        # Show whole sentences; a very long sentence is shown anyway after 3 intervals.
        cut = 0
        for match in _SENTENCE_END.finditer(self.text):
            cut = match.end()
        if cut <= len(self.shown.rstrip()) and now - self._last < 3 * self.interval:
            return
        visible = self.text[:cut] if cut > len(self.shown) else self.text
        if visible.strip() and visible.strip() != self.shown.strip():
            await self._show(visible)

    async def _show(self, text: str) -> None:
        preview = plain_preview(text)
        self._last = time.monotonic()
        if self.use_draft:
            try:
                await self.bot(
                    SendMessageDraft(
                        chat_id=self.chat_id,
                        draft_id=self.draft_id,
                        text=preview,
                        parse_mode=None,
                        message_thread_id=self.thread_id,
                    )
                )
                self.shown = text
                return
            except (TelegramBadRequest, TelegramNotFound, TelegramServerError) as exc:
                log.info("sendMessageDraft not available (%s): streaming by edits", exc)
                self.drafts.enabled = False
                self.use_draft = False
        try:
            if self.message is None:
                self.message = await self.bot.send_message(
                    self.chat_id,
                    preview,
                    parse_mode=None,
                    reply_parameters=self._reply(),
                    message_thread_id=self.thread_id,
                )
            else:
                await self.bot.edit_message_text(
                    text=preview, chat_id=self.chat_id, message_id=self.message.message_id, parse_mode=None
                )
            self.shown = text
        except TelegramRetryAfter:
            raise
        except TelegramBadRequest as exc:  # "message is not modified" and the like: skip this frame
            log.debug("preview edit skipped: %s", exc)

    async def finish(self, parts: list[str], markup: InlineKeyboardMarkup | None = None) -> list[Message]:
        """Send the final HTML parts; the keyboard goes under the last one."""
        sent: list[Message] = []
        if not parts:
            return sent
        remaining = list(parts)
        if self.message is not None:
            wait = self.interval - (time.monotonic() - self._last)
            if wait > 0:  # the final edit respects the same pace as the preview edits
                await asyncio.sleep(wait)
            first = remaining.pop(0)
            try:
                edited = await self.bot.edit_message_text(
                    text=first,
                    chat_id=self.chat_id,
                    message_id=self.message.message_id,
                    parse_mode="HTML",
                    reply_markup=markup if not remaining else None,
                    link_preview_options=_no_preview(),
                )
                sent.append(edited if isinstance(edited, Message) else self.message)
            except TelegramBadRequest as exc:  # the preview was deleted: send instead
                log.info("final edit failed (%s): sending a new message", exc)
                remaining.insert(0, first)
        for index, part in enumerate(remaining):
            last = index == len(remaining) - 1
            sent.append(
                await self.bot.send_message(
                    self.chat_id,
                    part,
                    parse_mode="HTML",
                    reply_markup=markup if last else None,
                    reply_parameters=self._reply() if not sent else None,
                    message_thread_id=self.thread_id,
                    link_preview_options=_no_preview(),
                )
            )
        return sent


def _no_preview() -> LinkPreviewOptions:
    return LinkPreviewOptions(is_disabled=True)
