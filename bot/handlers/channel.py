"""Live channel posts: `channel_post` / `edited_channel_post` from configured channels are stored and
indexed at once through the same ingest path as exports, so the next question can cite them."""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.types import Message

from bot.corpus_ops import CorpusOps
from bot.settings import Settings

router = Router(name="channel")
log = logging.getLogger(__name__)


def _configured(message: Message, settings: Settings) -> bool:
    """No configured channels means every channel the bot administers (it only gets those)."""
    if not settings.telegram_channels:
        return True
    wanted = {c.lower().lstrip("@") for c in settings.telegram_channels}
    username = (message.chat.username or "").lower()
    return username in wanted or str(message.chat.id) in wanted


@router.channel_post()
@router.edited_channel_post()
async def on_channel_post(message: Message, settings: Settings, corpus: CorpusOps) -> None:
    if not _configured(message, settings) or not (message.text or message.caption):
        return
    summary = await corpus.ingest_live(message)
    log.info("channel post %s/%s: %s", message.chat.username, message.message_id, summary.line())
