"""One router per feature; `feature_routers()` gives them in the order the dispatcher tries them.

Each feature module declares its handlers on a module-level `router` (aiogram's decorator style).
A router can belong to one dispatcher only, so `feature_routers()` returns fresh copies holding
the same handlers: a process (or a test) can build more than one dispatcher.
"""

from __future__ import annotations

from aiogram import Router


def _copy(template: Router) -> Router:
    fresh = Router(name=template.name)
    for name, observer in template.observers.items():
        fresh.observers[name].handlers.extend(observer.handlers)
        fresh.observers[name].outer_middleware._middlewares.extend(observer.outer_middleware._middlewares)
        fresh.observers[name].middleware._middlewares.extend(observer.middleware._middlewares)
    return fresh


def feature_routers() -> list[Router]:
    from bot.handlers import admin, ask, channel, crosspost, errors, start

    # admin before ask: an admin's document is an upload, anyone else's gets a polite reply in ask.
    templates = [errors.router, start.router, admin.router, channel.router, crosspost.router, ask.router]
    return [_copy(router) for router in templates]
