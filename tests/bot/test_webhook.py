"""`--webhook URL`: aiogram's aiohttp webhook server sets the webhook with a secret token and answers
only POSTs that carry it (security finding 1: a forged update with an admin's id ran /stats)."""

from __future__ import annotations

import contextlib

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from bot.app import create_webhook_app
from bot.settings import Settings
from tests.bot.emulator import Emulator
from tests.bot.harness import ADMIN

HEADER = "X-Telegram-Bot-Api-Secret-Token"


def _update(user_id: int, text: str, update_id: int = 1) -> dict:
    command = text.split()[0]
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 0,
            "chat": {"id": user_id, "type": "private", "first_name": "u"},
            "from": {"id": user_id, "is_bot": False, "first_name": "u"},
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}],
        },
    }


@contextlib.asynccontextmanager
async def serving(services, port: int, **overrides):
    emu = Emulator()
    await emu.start()
    settings = services.settings.model_copy(update={"telegram_api_url": emu.base_url, **overrides})
    runner = web.AppRunner(create_webhook_app(settings, services, "https://bot.example.org/tg/hook"))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await emu.wait_for(lambda: emu.sent("setWebhook"))
        yield emu
    finally:
        await runner.cleanup()
        await emu.stop()


async def test_webhook_sets_secret_and_serves_only_telegram(fakes, unused_tcp_port):
    async with serving(fakes, unused_tcp_port) as emu:
        secret = emu.sent("setWebhook")[0].params["secret_token"]
        hook = f"http://127.0.0.1:{unused_tcp_port}/tg/hook"
        async with aiohttp.ClientSession() as client:
            missing = await client.post(f"http://127.0.0.1:{unused_tcp_port}/other", json=_update(9, "/help"))
            response = await client.post(hook, json=_update(9, "/help"), headers={HEADER: secret})
        assert missing.status == 404 and response.status == 200
        await emu.wait_for(lambda: emu.sent("sendMessage", 9))
    assert emu.sent("setWebhook")[0].params["url"] == "https://bot.example.org/tg/hook"
    assert len(secret) >= 32  # generated: nobody can guess it
    assert emu.sent("sendMessage", 9)[0].params["text"].startswith("Hi!")


async def test_forged_admin_updates_without_the_secret_do_nothing(fakes, unused_tcp_port):
    """The attack: POST updates as the admin to the webhook URL, with no or a guessed secret."""
    async with serving(fakes, unused_tcp_port, webhook_secret=SecretStr("configured_Secret-123")) as emu:
        assert emu.sent("setWebhook")[0].params["secret_token"] == "configured_Secret-123"
        hook = f"http://127.0.0.1:{unused_tcp_port}/tg/hook"
        statuses = []
        async with aiohttp.ClientSession() as client:
            for i, headers in enumerate(
                [{}, {HEADER: ""}, {HEADER: "configured_Secret-12"}, {HEADER: "CONFIGURED_SECRET-123"}]
            ):
                for command in ("/stats", "/sources", "/reindex"):
                    reply = await client.post(hook, json=_update(ADMIN, command, 10 * i + 1), headers=headers)
                    statuses.append(reply.status)
            # the real Telegram request, for contrast: it is served
            ok = await client.post(
                hook, json=_update(ADMIN, "/stats", 99), headers={HEADER: "configured_Secret-123"}
            )
        await emu.wait_for(lambda: emu.sent("sendMessage", ADMIN))
    assert statuses == [401] * 12
    assert ok.status == 200
    replies = emu.sent("sendMessage", ADMIN)
    assert len(replies) == 1 and replies[0].params["text"].startswith("Channels")  # only the real one


def test_webhook_listens_on_loopback_by_default(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env
    for name in ("RESEARCH_BOT_WEBHOOK_LISTEN", "RESEARCH_BOT_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert Settings().webhook_listen.startswith("127.0.0.1:")
