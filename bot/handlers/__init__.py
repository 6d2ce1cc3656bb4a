"""One router per feature, each built by its module's `create_router()`; `feature_routers()` gives
fresh ones in the order the dispatcher tries them.

A router can belong to one dispatcher only, so each call builds new routers (a process, or a test,
can build more than one dispatcher); router-level filters such as the admin router's `IsAdmin`
come with them.
"""

from __future__ import annotations

from aiogram import Router


def feature_routers() -> list[Router]:
    from bot.handlers import admin, ask, channel, crosspost, errors, start

    # admin before ask: an admin's document is an upload, anyone else's gets a polite reply in ask.
    modules = (errors, start, admin, channel, crosspost, ask)
    return [module.create_router() for module in modules]
