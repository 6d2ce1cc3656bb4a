"""`research-bot bot`: run the Telegram bot (long polling, or a webhook server with --webhook)."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.app import DataDir, app, err_console, settings_for
from rag.errors import ConfigError


@app.command("bot")
def bot_command(
    webhook: Annotated[
        str | None,
        typer.Option("--webhook", help="Public HTTPS URL: run aiogram's webhook server instead of polling"),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Run the Telegram bot on the corpus in the data dir (TELEGRAM_BOT_TOKEN required)."""
    settings = settings_for(data_dir)
    token = settings.telegram_bot_token.get_secret_value().strip() if settings.telegram_bot_token else ""
    if not token:
        raise ConfigError(
            "TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and run "
            "TELEGRAM_BOT_TOKEN=<token> research-bot bot (or put it in .env)"
        )
    from bot.app import run
    from bot.services import build_services

    services = build_services(settings)
    where = f"webhook {webhook}" if webhook else f"long polling via {settings.telegram_api_url}"
    err_console.print(f"research-bot: bot running ({where}); Ctrl-C stops it", highlight=False)
    try:
        run(settings, services, webhook)
    finally:
        services.close()
