"""The Telegram bot's factories: `create_bot(settings)` and `create_dispatcher(settings, services)`.

The Bot API base URL is a setting (a self-hosted Bot API server, or the test emulator); the token
is a SecretStr and is never logged. Services reach handlers through the dispatcher's workflow
data, by name (`rag`, `crosspost`, `corpus`, `settings`, `ui`). `run_polling` / `run_webhook` are
what `research-bot bot` calls.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.handlers import feature_routers
from bot.middlewares import ChatQueueMiddleware, RateLimitMiddleware, RetryAfterMiddleware
from bot.settings import Settings
from bot.ui import UiState
from rag.errors import ConfigError

log = logging.getLogger(__name__)


def create_bot(settings: Settings) -> Bot:
    if settings.telegram_bot_token is None or not settings.telegram_bot_token.get_secret_value().strip():
        raise ConfigError(
            "TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and export "
            "TELEGRAM_BOT_TOKEN=<token> (or put it in .env)"
        )
    server = TelegramAPIServer.from_base(settings.telegram_api_url.rstrip("/"))
    session = AiohttpSession(api=server)
    session.middleware(RetryAfterMiddleware())
    return Bot(
        token=settings.telegram_bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode="HTML"),
    )


def create_dispatcher(settings: Settings, services: Any, ui: UiState | None = None) -> Dispatcher:
    """`services` is a `bot.services.Services` (or any object with the same `workflow_data()`)."""
    ui = ui or UiState(settings.max_concurrent_answers)
    dispatcher = Dispatcher(**services.workflow_data(), ui=ui)
    # Inner middlewares: they run only when a handler matched, so group chatter not meant for
    # the bot is neither rate-limited nor queued. Rate limit first: a flood is refused at once.
    dispatcher.message.middleware(
        RateLimitMiddleware(
            settings.rate_limit_messages, settings.rate_limit_window_s, settings.telegram_admin_ids
        )
    )
    dispatcher.message.middleware(ChatQueueMiddleware())
    dispatcher.include_routers(*feature_routers())
    return dispatcher


async def run_polling(settings: Settings, services: Any) -> None:
    bot = create_bot(settings)
    dispatcher = create_dispatcher(settings, services)
    try:
        await bot.delete_webhook(drop_pending_updates=False)
        await dispatcher.start_polling(bot, allowed_updates=dispatcher.resolve_used_update_types())
    finally:
        await bot.session.close()


def create_webhook_app(settings: Settings, services: Any, url: str) -> Any:
    """aiogram's aiohttp webhook server: updates POSTed to `url`'s path; the webhook is set on startup."""
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
    from aiohttp import web

    bot = create_bot(settings)
    dispatcher = create_dispatcher(settings, services)
    path = urlsplit(url).path or "/"

    async def on_startup(bot: Bot) -> None:
        await bot.set_webhook(url, allowed_updates=dispatcher.resolve_used_update_types())

    dispatcher.startup.register(on_startup)
    application = web.Application()
    SimpleRequestHandler(dispatcher=dispatcher, bot=bot, handle_in_background=True).register(
        application, path=path
    )
    setup_application(application, dispatcher, bot=bot)
    return application


def run_webhook(settings: Settings, services: Any, url: str) -> None:
    from aiohttp import web

    host, _, port = settings.webhook_listen.rpartition(":")
    web.run_app(
        create_webhook_app(settings, services, url),
        host=host or "0.0.0.0",
        port=int(port or 8080),
        print=None,
    )


def run(settings: Settings, services: Any, webhook: str | None = None) -> None:
    if webhook:
        run_webhook(settings, services, webhook)
    else:
        asyncio.run(run_polling(settings, services))
