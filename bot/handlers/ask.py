"""Asking: a plain message in a private chat, `/ask QUESTION` anywhere, a mention or reply in a group.

Typing is shown at once; the answer streams (drafts or throttled edits) and ends as HTML with
numbered source links and buttons: "Sources" (quotes) and "Convert post [n]" for cited posts.
Bad input (empty, non-text, too long) gets a short reply. Also the catch-all for stale buttons.
"""

from __future__ import annotations

import asyncio
import re

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.chat_action import ChatActionSender

from bot.formatting import render_answer, render_quotes, split_html
from bot.handlers.common import lang, reply_html
from bot.seams import Answers
from bot.settings import Settings
from bot.streaming import AnswerStreamer
from bot.texts import t
from bot.ui import STALE, ConvertCb, SourcesCb, UiState, owner_of
from core.tme import find_post_link
from rag.types import Answer, Citation


def memory_key(message: Message) -> str:
    return f"tg:{message.chat.id}"


def answer_keyboard(citations: list[Citation], key: str, language: str) -> InlineKeyboardMarkup | None:
    if not citations:
        return None
    rows = [[InlineKeyboardButton(text=t(language, "btn_sources"), callback_data=SourcesCb(key=key).pack())]]
    convert: list[InlineKeyboardButton] = []
    for citation in citations:
        ref = find_post_link(citation.url or "")
        if ref is None or len(convert) >= 3:
            continue
        try:
            data = ConvertCb(channel=ref.channel, msg=ref.message_id).pack()
        except ValueError:  # callback data is at most 64 bytes: a very long channel name gets no button
            continue
        convert.append(
            InlineKeyboardButton(text=t(language, "btn_convert", n=citation.n), callback_data=data)
        )
    if convert:
        rows.append(convert)
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def answer_question(
    message: Message, question: str, *, bot: Bot, rag: Answers, settings: Settings, ui: UiState
) -> None:
    language = lang(message)
    question = question.strip()
    if not question:
        await message.reply(t(language, "empty"), parse_mode=None)
        return
    if len(question) > settings.max_question_chars:
        await message.reply(
            t(language, "too_long", n=len(question), limit=settings.max_question_chars), parse_mode=None
        )
        return
    # Typing at once, then every few seconds while the answer is being written.
    await bot.send_chat_action(message.chat.id, "typing", message_thread_id=message.message_thread_id)
    async with (
        ChatActionSender.typing(
            bot=bot, chat_id=message.chat.id, message_thread_id=message.message_thread_id, initial_sleep=4.0
        ),
        ui.answer_slots,
    ):
        streamer = AnswerStreamer(
            bot,
            message.chat.id,
            private=message.chat.type == "private",
            reply_to=message.message_id,
            interval=settings.stream_edit_interval_s,
            drafts=ui.drafts,
            thread_id=message.message_thread_id,
        )
        final: Answer | None = None
        async for item in rag.stream_answer(question, memory_key=memory_key(message)):
            if isinstance(item, str):
                await streamer.feed(item)
            else:
                final = item
        if final is None:
            raise RuntimeError("the answer stream ended without a final Answer")
        citations = list(final.citations)
        key = ui.answers.put(citations, owner=owner_of(message) or (message.chat.id, 0))
        parts = split_html(render_answer(final, language))
        await streamer.finish(parts, answer_keyboard(citations, key, language))


async def on_ask(
    message: Message, command: CommandObject, bot: Bot, rag: Answers, settings: Settings, ui: UiState
) -> None:
    if not (command.args or "").strip():
        await message.reply(t(lang(message), "ask_usage"), parse_mode=None)
        return
    await answer_question(message, command.args or "", bot=bot, rag=rag, settings=settings, ui=ui)


async def on_new(message: Message, rag: Answers) -> None:
    await asyncio.to_thread(rag.forget, memory_key(message))
    await message.reply(t(lang(message), "new_done"), parse_mode=None)


async def on_private_text(message: Message, bot: Bot, rag: Answers, settings: Settings, ui: UiState) -> None:
    if (message.text or "").startswith("/"):
        await message.reply(t(lang(message), "start"), parse_mode=None)  # an unknown command
        return
    await answer_question(message, message.text or "", bot=bot, rag=rag, settings=settings, ui=ui)


async def on_private_caption(
    message: Message, bot: Bot, rag: Answers, settings: Settings, ui: UiState
) -> None:
    await answer_question(message, message.caption or "", bot=bot, rag=rag, settings=settings, ui=ui)


async def on_private_document(message: Message) -> None:
    await message.reply(t(lang(message), "file_not_admin"), parse_mode=None)


async def on_private_other(message: Message) -> None:
    """Stickers, photos without captions, voice, locations…: say what works."""
    await message.reply(t(lang(message), "not_text"), parse_mode=None)


async def addressed_in_group(message: Message, bot: Bot) -> dict[str, str] | bool:
    """Filter: {"question": ...} when a group message mentions the bot or replies to it."""
    text = message.text or message.caption or ""
    me = await bot.me()
    mention = f"@{me.username}" if me.username else None
    if mention and mention.lower() in text.lower():
        return {"question": re.sub(re.escape(mention), " ", text, flags=re.I).strip()}
    reply = message.reply_to_message
    if reply is not None and reply.from_user is not None and reply.from_user.id == me.id:
        return {"question": text}
    return False


async def on_group_message(
    message: Message, question: str, bot: Bot, rag: Answers, settings: Settings, ui: UiState
) -> None:
    await answer_question(message, question, bot=bot, rag=rag, settings=settings, ui=ui)


async def on_sources(query: CallbackQuery, callback_data: SourcesCb, ui: UiState) -> None:
    language = lang(query)
    owner = owner_of(query)
    citations, refused = ui.answers.lookup(callback_data.key, owner) if owner else (None, STALE)
    if citations is None or not isinstance(query.message, Message):
        await query.answer(t(language, refused or STALE), show_alert=True)
        return
    await query.answer()
    await reply_html(query.message, render_quotes(citations, language))


async def on_stale_callback(query: CallbackQuery) -> None:
    """Any button this process does not know (an old keyboard after a restart or an update)."""
    await query.answer(t(lang(query), "stale_button"), show_alert=True)


def create_router() -> Router:
    router = Router(name="ask")
    router.message.register(on_ask, Command("ask"))
    router.message.register(on_new, Command("new"))
    router.message.register(on_private_text, F.chat.type == "private", F.text)
    router.message.register(on_private_caption, F.chat.type == "private", F.caption)
    router.message.register(on_private_document, F.chat.type == "private", F.document)
    router.message.register(on_private_other, F.chat.type == "private")
    router.message.register(
        on_group_message, F.chat.type.in_({"group", "supergroup"}), F.text | F.caption, addressed_in_group
    )
    router.callback_query.register(on_sources, SourcesCb.filter())
    router.callback_query.register(on_stale_callback)
    return router
