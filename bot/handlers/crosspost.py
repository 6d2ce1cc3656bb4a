"""Converting posts for other networks: `/crosspost LINK|TEXT`, `/crosspost` as a reply, a forwarded
channel post, or the "Convert post" button under an answer.

The reply is one preview message per network at a time: an inline keyboard switches the network,
re-translates, or sends the thread as separate plain messages ready to copy. Counts and limits
are shown as the crosspost service measured them (each network's own counter).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageOriginChannel,
)

from bot.formatting import escape, split_html, utf16_len
from bot.handlers.common import lang
from bot.seams import CrossPoster
from bot.texts import t
from bot.ui import STALE, Conversion, ConvertCb, Owner, UiState, XpostCb, owner_of
from core.errors import CrosspostError
from core.tme import parse_post_link, post_url
from crosspost import NETWORKS
from crosspost.model import SourcePost

if TYPE_CHECKING:
    from crosspost.service import ConversionResult

PREVIEW_BUDGET = 3900  # leave room under 4,096 for the "more parts" line


def render_preview(result: ConversionResult, network: str, language: str) -> str:
    """One network's parts with their counted length and limit, and the service's notices."""
    target = result.targets[network]
    parts = target.parts
    limit = parts[0].limit if parts else None
    mark = t(language, "translated_mark" if target.translated else "not_translated_mark")
    header = t(
        language,
        "crosspost_header",
        network=NETWORKS.get(network, network),
        count=len(parts),
        limit=limit if limit is not None else "—",
        translated=mark,
    )
    blocks = [f"<b>{escape(header)}</b>"]
    blocks += [f"<i>{escape(notice)}</i>" for notice in result.notices]
    blocks += [f"<i>{escape(notice)}</i>" for notice in target.notices]
    if target.error:  # this network could not take the post; the others have their parts
        blocks.append(f"⚠️ {escape(target.error)}")
    used = sum(utf16_len(b) + 2 for b in blocks)
    for index, part in enumerate(parts, start=1):
        counted = f"{part.length}/{part.limit}" if part.limit is not None else f"{part.length}"
        block = f"<i>{index}/{len(parts)} · {counted}</i>\n<blockquote>{escape(part.text)}</blockquote>"
        if used + utf16_len(block) > PREVIEW_BUDGET:
            blocks.append(f"<i>… +{len(parts) - index + 1} → 🧵</i>")
            break
        blocks.append(block)
        used += utf16_len(block) + 2
    return "\n\n".join(blocks)


def preview_keyboard(result: ConversionResult, key: str, network: str, language: str) -> InlineKeyboardMarkup:
    def button(text: str, action: str, net: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(
            text=text, callback_data=XpostCb(key=key, action=action, network=net).pack()
        )

    networks = list(result.targets)
    switch = [button(("• " if n == network else "") + NETWORKS.get(n, n), "show", n) for n in networks]
    rows = [switch[i : i + 3] for i in range(0, len(switch), 3)]
    rows.append(
        [
            button(t(language, "btn_thread"), "thread", network),
            button(t(language, "btn_retranslate"), "retranslate", network),
        ]
    )
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def convert_and_preview(
    message: Message,
    source: str | SourcePost,
    *,
    crosspost: CrossPoster,
    ui: UiState,
    language: str,
    owner: Owner,
    reply_to: int | None = None,
) -> None:
    """`owner`: the (chat, user) whose request this is; only they can use the preview's buttons."""
    result = await asyncio.to_thread(crosspost.convert, source)
    if not result.targets:
        raise RuntimeError("the crosspost service returned no targets")
    key = ui.conversions.put(Conversion(source, result), owner=owner)
    network = next(iter(result.targets))
    await message.answer(
        render_preview(result, network, language),
        parse_mode="HTML",
        reply_markup=preview_keyboard(result, key, network, language),
        reply_to_message_id=reply_to,
    )


def _owner(event: Message | CallbackQuery) -> Owner:
    return owner_of(event) or (0, 0)


async def _reply_preview(
    message: Message, source: str | SourcePost, *, crosspost: CrossPoster, ui: UiState
) -> None:
    """The preview as a reply to the user's message; its buttons are that user's in that chat."""
    await convert_and_preview(
        message,
        source,
        crosspost=crosspost,
        ui=ui,
        language=lang(message),
        owner=_owner(message),
        reply_to=message.message_id,
    )


def _message_source(message: Message) -> SourcePost | None:
    """The text and entities of a message (text or caption), as the crosspost service takes them."""
    text = message.text or message.caption
    if not text:
        return None
    entities = message.entities if message.text else message.caption_entities
    return SourcePost(
        text=text,
        entities=[e.model_dump(mode="json", exclude_none=True) for e in entities or []],
        origin="the message",
    )


def _forward_source(message: Message) -> str | SourcePost | None:
    """A forwarded channel post: its link when the channel is public (the stored copy), else its text."""
    origin = message.forward_origin
    if not isinstance(origin, MessageOriginChannel):
        return None
    username = getattr(origin.chat, "username", None)
    if username:
        return post_url(username, origin.message_id)
    return _message_source(message)


def _command_source(message: Message, args: str) -> str | SourcePost | None:
    if parse_post_link(args):
        return args
    if args:
        # The text after the command, with the entities shifted to start at the text.
        assert message.text is not None
        shift = utf16_len(message.text) - utf16_len(args)
        entities = [
            {**e.model_dump(mode="json", exclude_none=True), "offset": e.offset - shift}
            for e in message.entities or []
            if e.offset >= shift
        ]
        return SourcePost(text=args, entities=entities, origin="the message")
    reply = message.reply_to_message
    if reply is not None:
        return _forward_source(reply) or _message_source(reply)
    return None


async def on_crosspost(message: Message, command: CommandObject, crosspost: CrossPoster, ui: UiState) -> None:
    language = lang(message)
    source = _command_source(message, (command.args or "").strip())
    if not source:
        await message.reply(t(language, "crosspost_usage"), parse_mode=None)
        return
    await _reply_preview(message, source, crosspost=crosspost, ui=ui)


async def on_forward(message: Message, crosspost: CrossPoster, ui: UiState) -> None:
    language = lang(message)
    source = _forward_source(message)
    if source is None:
        await message.reply(t(language, "forward_private"), parse_mode=None)
        return
    if isinstance(source, str):
        try:  # a public channel's post that the corpus does not hold: convert the forwarded text
            await _reply_preview(message, source, crosspost=crosspost, ui=ui)
            return
        except CrosspostError:
            fallback = _message_source(message)
            if fallback is None:
                raise
            source = fallback
    await _reply_preview(message, source, crosspost=crosspost, ui=ui)


async def on_post_link(message: Message, crosspost: CrossPoster, ui: UiState) -> None:
    """A bare post link in a private chat: the user wants that post converted."""
    await _reply_preview(message, (message.text or "").strip(), crosspost=crosspost, ui=ui)


async def on_convert_button(
    query: CallbackQuery, callback_data: ConvertCb, crosspost: CrossPoster, ui: UiState
) -> None:
    language = lang(query)
    if not isinstance(query.message, Message):
        await query.answer(t(language, "stale_button"), show_alert=True)
        return
    await query.answer(t(language, "crosspost_working"))
    source = post_url(callback_data.channel, callback_data.msg)
    await convert_and_preview(
        query.message, source, crosspost=crosspost, ui=ui, language=language, owner=_owner(query)
    )


async def on_preview_button(
    query: CallbackQuery, callback_data: XpostCb, bot: Bot, crosspost: CrossPoster, ui: UiState
) -> None:
    language = lang(query)
    owner = owner_of(query)
    entry, refused = ui.conversions.lookup(callback_data.key, owner) if owner else (None, STALE)
    network = callback_data.network
    if entry is None or not isinstance(query.message, Message) or network not in entry.result.targets:
        await query.answer(t(language, refused or STALE), show_alert=True)
        return
    if callback_data.action == "thread":
        await query.answer()
        for part in entry.result.targets[network].parts:
            # Plain text, exactly as counted: ready to copy into the network.
            for chunk in split_html(escape(part.text)) or [""]:
                await query.message.answer(chunk, parse_mode="HTML")
        return
    if callback_data.action == "retranslate":
        await query.answer(t(language, "crosspost_working"))
        result = await asyncio.to_thread(crosspost.convert, entry.source, fresh=True)
        entry = Conversion(entry.source, result)
        ui.conversions.replace(callback_data.key, entry)
    else:
        await query.answer()
    try:
        await query.message.edit_text(
            render_preview(entry.result, network, language),
            parse_mode="HTML",
            reply_markup=preview_keyboard(entry.result, callback_data.key, network, language),
        )
    except TelegramBadRequest as exc:  # the network already shown: nothing to change
        if "not modified" not in str(exc):
            raise


def create_router() -> Router:
    router = Router(name="crosspost")
    router.message.register(on_crosspost, Command("crosspost"))
    router.message.register(on_forward, F.chat.type == "private", F.forward_origin)
    router.message.register(on_post_link, F.chat.type == "private", F.text, F.text.func(parse_post_link))
    router.callback_query.register(on_convert_button, ConvertCb.filter())
    router.callback_query.register(on_preview_button, XpostCb.filter())
    return router
