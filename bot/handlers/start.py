"""/start and /help: what the bot does, in the user's language (admins also see their commands)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from bot.handlers.common import is_admin, lang
from bot.settings import Settings
from bot.texts import t


async def on_start(message: Message, settings: Settings) -> None:
    text = t(lang(message), "start")
    if is_admin(message.from_user, settings):
        text += "\n\n" + t(lang(message), "admin_help")
    await message.answer(text, parse_mode=None)


def create_router() -> Router:
    router = Router(name="start")
    router.message.register(on_start, Command("help"))
    router.message.register(on_start, CommandStart())
    return router
