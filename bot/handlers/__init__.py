"""One router per feature; `feature_routers()` gives them in the order the dispatcher tries them."""

from __future__ import annotations

from aiogram import Router


def feature_routers() -> list[Router]:
    from bot.handlers import admin, ask, channel, crosspost, errors, start

    # admin before ask: an admin's document is an upload, anyone else's gets a polite reply in ask.
    return [errors.router, start.router, admin.router, channel.router, crosspost.router, ask.router]
