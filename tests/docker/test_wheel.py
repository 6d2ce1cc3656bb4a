"""The Docker image's path through the wheel: build it, install it into a fresh venv outside the
source tree, and run what the image runs (entrypoint commands, `demo` on the packaged sample corpus)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from bot.cli.ingest_cmds import DEMO_QUESTIONS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """research-bot installed from its wheel alone; the dependencies come from this environment (a .pth
    file), so nothing is downloaded and torch is not installed twice."""
    tmp = tmp_path_factory.mktemp("wheel")
    # Built from a copy of the checkout's files: setuptools reuses build/ in the source folder, and a
    # stale build/lib would put files into the wheel that the sources no longer have.
    src = tmp / "src"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    build = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp / "dist")]
    subprocess.run([*build, str(src)], check=True, capture_output=True)
    wheel = next((tmp / "dist").glob("research_bot-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    return venv


def run(venv: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The installed CLI, run from a folder that is not the repository, on its own data dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESEARCH_BOT_", "TELEGRAM_"))}
    env.update(RESEARCH_BOT_DATA_DIR=str(tmp_path / "data"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("PYTHONPATH", None)
    outside = tmp_path / "elsewhere"
    outside.mkdir(exist_ok=True)
    return subprocess.run(
        [str(venv / "bin" / "research-bot"), *args], cwd=outside, env=env, capture_output=True, text=True
    )


@pytest.mark.slow
def test_the_wheel_runs_the_entrypoint_commands(installed, tmp_path):
    for args, expect in (
        (["--help"], "ingest"),
        (["migrate"], "newest schema"),
        (["stats", "--json"], '"posts": 0'),
    ):
        result = run(installed, tmp_path, *args)
        assert result.returncode == 0, result.stderr
        assert expect in result.stdout


@pytest.mark.slow
def test_demo_from_the_wheel_ingests_the_packaged_corpus_and_answers(installed, tmp_path):
    data = tmp_path / "demo-data"
    result = run(installed, tmp_path, "demo", "--data-dir", str(data))
    assert result.returncode == 0, result.stdout + result.stderr
    # every demo question is asked and answered with citations of corpus posts ("[1] ...");
    # whitespace is normalized because the console wraps long lines
    out = " ".join(result.stdout.split())
    assert all(f"Q: {question}" in out for question in DEMO_QUESTIONS), result.stdout
    assert "[1]" in out.split(f"Q: {DEMO_QUESTIONS[0]}", 1)[1], result.stdout
    stats = json.loads(run(installed, tmp_path, "stats", "--json", "--data-dir", str(data)).stdout)
    assert stats["posts"] > 50 and stats["chunks"] > 0
    # the corpus came from the installed package, not from this checkout
    locations = {Path(source["location"]) for source in stats["sources"]}
    assert locations and all(installed in location.parents for location in locations), locations
