"""`research-bot serve-llm` flags: a value that cannot work is one line naming the flag, before any
model is read (an explicit 0 is not "unset")."""

from __future__ import annotations

import subprocess
import sys


def test_max_batch_zero_is_refused_not_replaced_by_the_default(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "serve-llm", "--model", str(tmp_path), "--max-batch", "0"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--max-batch must be >= 1" in lines[0] and "got 0" in lines[0], result.stderr
