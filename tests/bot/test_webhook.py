"""`--webhook URL`: aiogram's aiohttp webhook server sets the webhook and answers POSTed updates."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from bot.app import create_webhook_app
from tests.bot.emulator import Emulator


async def test_webhook_server_sets_webhook_and_handles_updates(fakes, unused_tcp_port):
    emu = Emulator()
    await emu.start()
    settings = fakes.settings.model_copy(update={"telegram_api_url": emu.base_url})
    app = create_webhook_app(settings, fakes, "https://bot.example.org/tg/hook")
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    try:
        await emu.wait_for(lambda: emu.sent("setWebhook"))
        update = {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "date": 0,
                "chat": {"id": 9, "type": "private", "first_name": "u"},
                "from": {"id": 9, "is_bot": False, "first_name": "u"},
                "text": "/help",
                "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
            },
        }
        async with aiohttp.ClientSession() as client:
            missing = await client.post(f"http://127.0.0.1:{unused_tcp_port}/other", json=update)
            response = await client.post(f"http://127.0.0.1:{unused_tcp_port}/tg/hook", json=update)
        assert missing.status == 404 and response.status == 200
        await emu.wait_for(lambda: emu.sent("sendMessage", 9))
    finally:
        await runner.cleanup()
        await emu.stop()
    assert emu.sent("setWebhook")[0].params["url"] == "https://bot.example.org/tg/hook"
    assert emu.sent("sendMessage", 9)[0].params["text"].startswith("Hi!")
