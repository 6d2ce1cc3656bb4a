"""Small helpers the feature routers share: who is an admin (`IsAdmin`, the admin router's filter),
the user's language, sending HTML."""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter
from aiogram.types import CallbackQuery, LinkPreviewOptions, Message, User

from bot.formatting import split_html
from bot.settings import Settings
from bot.texts import lang_of


def is_admin(user: User | None, settings: Settings) -> bool:
    return user is not None and user.id in set(settings.telegram_admin_ids)


class IsAdmin(Filter):
    """Passes for the user ids in TELEGRAM_ADMIN_IDS (`settings` comes from the workflow data)."""

    async def __call__(self, event: Message | CallbackQuery, settings: Settings) -> bool:
        return is_admin(event.from_user, settings)


def lang(event: Message | CallbackQuery) -> str:
    return lang_of(event.from_user)


async def reply_html(message: Message, html_text: str, **kwargs: Any) -> list[Message]:
    """Reply with HTML, split below the message limit; extra kwargs go to the last part."""
    parts = split_html(html_text) or [""]
    sent = []
    for index, part in enumerate(parts):
        extra = kwargs if index == len(parts) - 1 else {}
        sent.append(
            await message.answer(
                part,
                parse_mode="HTML",
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                reply_to_message_id=message.message_id if index == 0 else None,
                **extra,
            )
        )
    return sent
