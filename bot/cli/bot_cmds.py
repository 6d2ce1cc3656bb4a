"""`research-bot bot`: run the Telegram bot (long polling, or a webhook server with --webhook).

Before anything is opened or "bot running" is printed, the token is checked with one getMe, so a
malformed or revoked token and an unreachable Bot API server are one line and exit 1.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.app import DataDir, app, err_console, settings_for
from bot.cli.output import safe


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
    settings.bot_token()  # before anything opens: a missing token is one line
    import asyncio

    from bot.app import check_bot_api, run
    from bot.services import build_services

    username = asyncio.run(check_bot_api(settings))
    services = build_services(settings)
    try:
        # The indexes in step with the store before anyone asks: after an upgrade that changed the
        # default embedding model, every answer would otherwise be "run research-bot reindex".
        services.rag.sync()
        where = f"webhook {webhook}" if webhook else f"long polling via {settings.telegram_api_url}"
        err_console.print(
            f"research-bot: @{username} running ({safe(where)}); Ctrl-C stops it", highlight=False
        )
        run(settings, services, webhook)
    finally:
        services.close()
