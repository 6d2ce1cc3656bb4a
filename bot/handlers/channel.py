"""Live channel posts and the admin's `/watch`.

`channel_post` / `edited_channel_post` of an admitted channel (bot.channels: TELEGRAM_CHANNELS, or
channels an admin enabled with /watch) are stored and indexed at once through the same ingest path
as exports, so the next question can cite them; every other channel's post is ignored with one
log line. Channels are told apart by chat id, never by title.

`/watch @channel` (or a numeric chat id, or as a reply to a post forwarded from the channel) in a
private chat, by an admin: admit that channel; `/unwatch` the same way; `/watch` alone lists them.
Those two are registered on the admin router (bot.handlers.admin), behind its `IsAdmin` filter.
"""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import CommandObject
from aiogram.types import Chat, ChatFullInfo, Message, MessageOriginChannel

from bot.channels import LiveChannels
from bot.corpus_ops import CorpusOps
from bot.handlers.common import lang
from bot.texts import t

log = logging.getLogger(__name__)


async def on_channel_post(message: Message, corpus: CorpusOps, channels: LiveChannels) -> None:
    admission = channels.admit(message.chat.id, message.chat.username)
    if admission.key is None:
        log.info("ignored a post of channel %s: %s", message.chat.id, admission.reason)
        return
    if not (message.text or message.caption):
        return
    summary = await corpus.ingest_live(message, admission.key)
    log.info("channel post %s/%s: %s", admission.key, message.message_id, summary.line())


async def _target_chat(message: Message, args: str, bot: Bot) -> Chat | ChatFullInfo | None:
    """The channel an admin means: a forwarded post replied to, else @username or id via getChat."""
    reply = message.reply_to_message
    origin = reply.forward_origin if reply is not None else None
    if isinstance(origin, MessageOriginChannel):
        return origin.chat
    if not args:
        return None
    ref: int | str = int(args) if args.lstrip("-").isdigit() else "@" + args.lstrip("@")
    try:
        chat = await bot.get_chat(ref)
    except TelegramAPIError:
        return None
    return chat if chat.type == "channel" else None


async def on_watch(message: Message, command: CommandObject, bot: Bot, channels: LiveChannels) -> None:
    language = lang(message)
    args = (command.args or "").strip()
    if command.command == "watch" and not args and message.reply_to_message is None:
        listed = "\n".join(
            f"• {entry.get('title') or entry['key']} ({chat_id})" for chat_id, entry in channels.watched()
        )
        await message.reply(t(language, "watch_list", lines=listed or "—"), parse_mode=None)
        return
    chat = await _target_chat(message, args, bot)
    if chat is None:
        await message.reply(t(language, "watch_usage"), parse_mode=None)
        return
    name = chat.title or chat.username or str(chat.id)
    if command.command == "unwatch":
        done = channels.unwatch(chat.id)
        await message.reply(
            t(language, "unwatch_done" if done else "unwatch_none", name=name), parse_mode=None
        )
        return
    assert message.from_user is not None  # the admin router's IsAdmin checked it
    channels.watch(chat.id, chat.username, chat.title, by=message.from_user.id)
    log.info("admin %s watches channel %s (%s)", message.from_user.id, chat.id, name)
    await message.reply(t(language, "watch_done", name=name, id=chat.id), parse_mode=None)


def create_router() -> Router:
    router = Router(name="channel")
    router.edited_channel_post.register(on_channel_post)
    router.channel_post.register(on_channel_post)
    return router
