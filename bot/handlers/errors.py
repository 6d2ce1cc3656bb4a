"""The bot's one error handler: user errors (AppError) get their message, anything else a polite
apology while the detail goes to the log. Never silent: the user always hears back."""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.types import ErrorEvent

from bot.formatting import escape
from bot.texts import lang_of, t
from core.errors import AppError
from rag.redact import redact

log = logging.getLogger(__name__)


async def on_error(event: ErrorEvent) -> bool:
    exc = event.exception
    update = event.update
    target = (
        update.message or update.edited_message or (update.callback_query and update.callback_query.message)
    )
    if update.message is not None:
        user = update.message.from_user
    else:
        user = update.callback_query.from_user if update.callback_query is not None else None
    language = lang_of(user)
    if isinstance(exc, AppError):
        log.info("user error on update %s: %s", update.update_id, exc)
        text = t(language, "user_error", msg=escape(redact(exc)))  # errors can quote URLs and keys
    else:
        log.error("update %s failed", update.update_id, exc_info=exc)
        text = escape(t(language, "error"))
    try:
        if update.callback_query is not None:
            await update.callback_query.answer()
        if target is not None and getattr(target, "chat", None) is not None and update.channel_post is None:
            await target.answer(text, parse_mode="HTML")
    except Exception:  # the apology itself failed (chat gone, network): the log has the detail
        log.warning("could not report the error to the chat", exc_info=True)
    return True


def create_router() -> Router:
    router = Router(name="errors")
    router.errors.register(on_error)
    return router
