"""The Telegram bot's factories: `create_bot(settings)` and `create_dispatcher(settings, services)`.

The Bot API base URL is a setting (a self-hosted Bot API server, or the test emulator); the token
is a SecretStr, registered with `rag.redact` so no log line or error shows it. Services reach
handlers through the dispatcher's workflow data, by name (`rag`, `crosspost`, `corpus`,
`settings`, `ui`). `check_bot_api` (getMe) runs before the bot says it is running, so a bad token
or an unreachable server is one line. `run_polling` / `run_webhook` are what `research-bot bot`
calls; the webhook server checks Telegram's secret header on every POST (see SECURITY.md).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramUnauthorizedError
from aiogram.utils.token import TokenValidationError

from bot.channels import LiveChannels
from bot.handlers import feature_routers
from bot.middlewares import ChatQueueMiddleware, RateLimitMiddleware, RetryAfterMiddleware
from bot.settings import Settings
from bot.ui import UiState
from core.errors import ConfigError
from rag.redact import install_log_redaction, redact, register_secret

if TYPE_CHECKING:  # aiohttp's server and the services load only when the bot runs
    from aiohttp import web

    from bot.services import Services

log = logging.getLogger(__name__)


def create_bot(settings: Settings) -> Bot:
    token = settings.bot_token()
    register_secret(token)
    install_log_redaction()  # aiogram/aiohttp errors quote request URLs, and those hold the token
    server = TelegramAPIServer.from_base(settings.telegram_api_url.rstrip("/"))
    session = AiohttpSession(api=server)
    session.middleware(RetryAfterMiddleware())
    try:
        return Bot(token=token, session=session, default=DefaultBotProperties(parse_mode="HTML"))
    except TokenValidationError:
        raise ConfigError(
            "TELEGRAM_BOT_TOKEN is malformed: expected <bot id>:<secret> as @BotFather gives it"
        ) from None


async def check_bot_api(settings: Settings, timeout_s: float = 20.0) -> str:
    """getMe once: the bot's @username, or ConfigError in one line (token rejected, server down)."""
    bot = create_bot(settings)
    where = redact(settings.telegram_api_url)
    try:
        me = await bot.get_me(request_timeout=int(timeout_s))
    except TelegramUnauthorizedError:
        raise ConfigError(f"the Bot API at {where} rejected TELEGRAM_BOT_TOKEN (401 Unauthorized)") from None
    except (TelegramNetworkError, TimeoutError, OSError) as exc:
        reason = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise ConfigError(f"cannot reach the Bot API at {where}: {reason}") from None
    except TelegramAPIError as exc:
        raise ConfigError(f"the Bot API at {where} refused getMe: {redact(exc.message)}") from None
    finally:
        await bot.session.close()
    return me.username or str(me.id)


def create_dispatcher(settings: Settings, services: Services, ui: UiState | None = None) -> Dispatcher:
    ui = ui or UiState(settings.max_concurrent_answers)
    channels = LiveChannels(settings.data_dir, settings.telegram_channels)
    dispatcher = Dispatcher(**services.workflow_data(), ui=ui, channels=channels)
    # Inner middlewares: they run only when a handler matched, so group chatter not meant for
    # the bot is neither rate-limited nor queued. Rate limit first: a flood is refused at once.
    limiter = RateLimitMiddleware(
        settings.rate_limit_messages, settings.rate_limit_window_s, settings.telegram_admin_ids
    )
    dispatcher.message.middleware(limiter)
    dispatcher.callback_query.middleware(limiter)  # one budget: presses cost like messages
    dispatcher.message.middleware(ChatQueueMiddleware())
    dispatcher.include_routers(*feature_routers())
    return dispatcher


async def run_polling(settings: Settings, services: Services) -> None:
    bot = create_bot(settings)
    dispatcher = create_dispatcher(settings, services)
    try:
        await bot.delete_webhook(drop_pending_updates=False)
        await dispatcher.start_polling(bot, allowed_updates=dispatcher.resolve_used_update_types())
    finally:
        await bot.session.close()


def webhook_secret(settings: Settings) -> str:
    """The configured secret, or a fresh random one (setWebhook is called at every start with it)."""
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value()
    return secrets.token_urlsafe(32)  # 43 characters from the Bot API's allowed alphabet


def create_webhook_app(settings: Settings, services: Services, url: str) -> web.Application:
    """aiogram's aiohttp webhook server: updates POSTed to `url`'s path; the webhook is set on startup.

    Telegram sends the secret given to setWebhook in `X-Telegram-Bot-Api-Secret-Token` with every
    update; a POST without it (anyone who found the URL) gets 401 and reaches no handler. aiogram's
    handler compares it with `secrets.compare_digest` (constant time).
    """
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
    from aiohttp import web

    bot = create_bot(settings)
    dispatcher = create_dispatcher(settings, services)
    path = urlsplit(url).path or "/"
    secret = webhook_secret(settings)
    register_secret(secret)

    async def on_startup(bot: Bot) -> None:
        await bot.set_webhook(
            url, secret_token=secret, allowed_updates=dispatcher.resolve_used_update_types()
        )

    dispatcher.startup.register(on_startup)
    application = web.Application(client_max_size=1024 * 1024)  # updates are a few KB
    SimpleRequestHandler(
        dispatcher=dispatcher, bot=bot, handle_in_background=True, secret_token=secret
    ).register(application, path=path)
    setup_application(application, dispatcher, bot=bot)
    return application


def run_webhook(settings: Settings, services: Services, url: str) -> None:
    from aiohttp import web

    host, _, port = settings.webhook_listen.rpartition(":")
    web.run_app(
        create_webhook_app(settings, services, url),
        host=host or "127.0.0.1",
        port=int(port or 8080),
        print=None,
    )


def run(settings: Settings, services: Services, webhook: str | None = None) -> None:
    if webhook:
        run_webhook(settings, services, webhook)
    else:
        asyncio.run(run_polling(settings, services))
