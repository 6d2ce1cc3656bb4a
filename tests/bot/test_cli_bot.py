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
