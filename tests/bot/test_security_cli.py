"""Attacks and failure scenarios through the real CLI entry point (security findings 4, 6, 9, 11 and
12 of issue 12, the upload part of 7 is in test_security.py; issue 15 item 8: help and output polish).

Commands run in-process through `bot.cli.main.main` where the embedding model is needed (one load
per pytest process instead of one per subprocess) and as subprocesses where a separate process
is the point (two concurrent ingests, the bot's start-up checks)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.main import main
from bot.settings import Settings
from bot.writer_lock import writer_lock
from rag.store import open_store
from tests.bot.corpus import POSTS, write_export
from tests.bot.emulator import Emulator

EVIL_TEXT = (
    "Evil post [/x] [bold red]styled[/] [link=http://evil.example]click[/link] "
    "\x1b[31mred\x1b[0m \x1b]8;;http://evil.example\x1b\\hidden link\x1b]8;;\x1b\\ \x9b2J "
    "\u202eEVIL\u202c SageAttention квантует"
)
# A file name cannot hold "/" (so no closing tag): opening markup and an OSC-8 hyperlink instead.
EVIL_NAME = "[bold red]bad[link=https:evil.example]\x1b]8;;https:evil.example\x07x\x1b]8;;\x07.json"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean_env() -> dict[str, str]:
    """The environment of a CLI subprocess: no settings of the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "RESEARCH_BOT_"))}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def run(argv: list[str], capfd) -> tuple[int, str, str]:
    """The CLI in this process: (exit code, stdout, stderr)."""
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capfd.readouterr()
    return code, out, err


def assert_one_clean_line(err: str, *secrets: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for secret in secrets:
        assert secret not in err
    return lines[0]


# --- findings 6 and 12: markup and terminal escapes in posts and file names -----------------------
def test_markup_and_escape_sequences_are_printed_inert(tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("RESEARCH_BOT_")]:
        monkeypatch.delenv(name)
    data = ["--data-dir", str(tmp_path / "d")]
    corpus = tmp_path / "corpus"
    write_export(corpus / "a_result.json", {1: EVIL_TEXT, 2: POSTS[12]})
    (corpus / EVIL_NAME).write_text("not an export", encoding="utf-8")
    write_export(corpus / "z_later.json", {3: POSTS[13]})  # after the bad file: must still be read

    code, out, err = run(["ingest", str(corpus), "--channel", "evil_chan", *data], capfd)
    assert code == 2  # one source failed, named in one line; the others were ingested
    assert "new 3" in out and "[bold red]bad[link=https:evil.example]x.json" in err
    code, out, err = run(["search", "SageAttention квантует", *data], capfd)
    assert code == 0 and "Evil post" in out
    code, ask_out, ask_err = run(["ask", "Что квантует SageAttention?", *data], capfd)
    assert code == 0 and "Evil post" in ask_out
    code, json_out, _ = run(["search", "SageAttention", "--json", *data], capfd)
    assert json.loads(json_out)["hits"][0]["text"] == EVIL_TEXT  # --json keeps the text exactly
    for output in (out, err, ask_out, ask_err, json_out):
        assert "\x1b" not in output and not CONTROL.search(output.replace("\n", ""))
        assert "Traceback" not in output
    assert "[/x]" in out and "[bold red]styled[/]" in out  # shown as text, not read as markup


# --- finding 4: secrets in failure output ---------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "mysql+mysqldb://reader:Db-Pw-4417@127.0.0.1/corpus",  # driver not installed
        "postgresql+psycopg://reader:Db-Pw-4417@127.0.0.1:1/corpus",  # nothing listens on the port
    ],
)
def test_database_url_password_is_never_printed(url, tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("RESEARCH_BOT_DATABASE_URL", url)
    for argv in (["stats"], ["ingest", str(tmp_path)]):
        code, out, err = run([*argv, "--data-dir", str(tmp_path / "d")], capfd)
        assert code == 1 and out == ""
        line = assert_one_clean_line(err, "Db-Pw-4417")
        assert "127.0.0.1" in line  # still says where it tried


def test_llm_notice_and_logs_show_no_llm_credentials(real, capfd, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)  # httpx and openai log request URLs at INFO/DEBUG
    monkeypatch.setenv("RESEARCH_BOT_LLM_BASE_URL", "http://bot:Llm-Pw-9@127.0.0.1:1/v1?api-key=sk-Key-77")
    monkeypatch.setenv("RESEARCH_BOT_LLM_API_KEY", "sk-Header-Key-55")
    # The CLI must use the model `real` indexed with: the session fixture may have been built while
    # tests/rag/conftest.py's MiniLM pin was in the environment (a whole-suite run), and this test's
    # environment is cleared to the defaults.
    monkeypatch.setenv("RESEARCH_BOT_EMBEDDING_MODEL", real.settings.embedding_model)
    data = ["--data-dir", str(real.settings.data_dir)]
    code, out, err = run(["ask", "Во сколько раз SageAttention быстрее?", *data], capfd)
    code_json, out_json, err_json = run(["ask", "Что такое GPTQ?", "--json", *data], capfd)
    assert code == 0 and code_json == 0, (err, err_json)
    assert "unreachable" in err and json.loads(out_json)["mode"] == "extractive"
    assert "127.0.0.1:1" in caplog.text or "127.0.0.1:1" in err  # the endpoint is still named
    for output in (out, err, out_json, err_json, caplog.text):
        for secret in ("Llm-Pw-9", "sk-Key-77", "sk-Header-Key-55"):
            assert secret not in output


@pytest.mark.parametrize(
    "url",
    [
        "http://bot:Llm-Pw-9@127.0.0.1:abc/v1",
        "http://bot:Llm-Pw-9/x@127.0.0.1:8000/v1",  # unencoded "/" in the password: parsed as the host
        "http://127.0.0.1:99999/v1",
        "127.0.0.1:8000/v1",
    ],
)
def test_a_malformed_llm_url_is_one_line_naming_the_setting(url, tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("RESEARCH_BOT_LLM_BASE_URL", url)
    code, out, err = run(["ask", "Что такое GPTQ?", "--data-dir", str(tmp_path)], capfd)
    assert code != 0 and out == ""
    assert "RESEARCH_BOT_LLM_BASE_URL" in assert_one_clean_line(err, "Llm-Pw-9")


# --- finding 9: a bad token or an unreachable Bot API --------------------------------------------
@pytest.mark.parametrize(
    ("token", "api", "expect"),
    [
        ("not-a-token", "http://127.0.0.1:1", "malformed"),
        ("123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawX", "http://127.0.0.1:1", "cannot reach"),
    ],
)
def test_bot_with_bad_token_or_unreachable_api_says_one_line(
    tmp_path, capfd, monkeypatch, token, api, expect
):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", token)
    monkeypatch.setenv("TELEGRAM_API_URL", api)
    code, out, err = run(["bot", "--data-dir", str(tmp_path / "data")], capfd)
    assert code == 1
    line = assert_one_clean_line(err, "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawX")
    assert expect in line and "running" not in err + out
    assert not (tmp_path / "data").exists()  # nothing was opened


async def test_bot_with_revoked_token_says_one_line(tmp_path, capfd, monkeypatch):
    emu = Emulator(token="123456:the-real-token-of-this-bot")
    await emu.start()
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:an-old-revoked-token-xx")
    monkeypatch.setenv("TELEGRAM_API_URL", emu.base_url)
    try:  # the CLI runs its own event loop: in a thread, while the emulator serves on this one
        code, out, err = await asyncio.to_thread(run, ["bot", "--data-dir", str(tmp_path / "data")], capfd)
    finally:
        await emu.stop()
    assert code == 1
    line = assert_one_clean_line(err, "an-old-revoked-token-xx")
    assert "rejected TELEGRAM_BOT_TOKEN" in line and "running" not in err + out


# --- finding 11: two writers on one data dir ------------------------------------------------------
def _ingest(tmp_path: Path, export: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.cli.main",
            "ingest",
            str(export),
            "--channel",
            "quant_chan",
            "--no-index",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        cwd=tmp_path,
    )


def test_concurrent_ingests_of_one_data_dir_take_turns(tmp_path):
    export = write_export(tmp_path / "result.json")
    runs = [_ingest(tmp_path, export), _ingest(tmp_path, export)]  # started together
    outputs = [p.communicate(timeout=300) for p in runs]
    assert [p.returncode for p in runs] == [0, 0], outputs
    for _out, err in outputs:
        assert "UNIQUE" not in err and "Traceback" not in err
    firsts = sorted(out.strip().splitlines()[-1].split(",")[0] for out, _ in outputs)
    assert firsts == ["new 0", f"new {len(POSTS)}"]  # one stored the posts, the other found them
    store = open_store(f"sqlite:///{tmp_path / 'data' / 'research-bot.sqlite3'}")
    try:
        assert store.stats()["posts"] == len(POSTS)
    finally:
        store.close()


def test_a_waiting_ingest_says_what_it_waits_for(tmp_path):
    export = write_export(tmp_path / "result.json")
    with writer_lock(tmp_path / "data", "reindex"):  # as if another command were writing
        process = _ingest(tmp_path, export)
        assert process.stderr is not None
        first = process.stderr.readline()  # blocks until the waiting line (or the end)
        assert first.startswith("waiting for research-bot reindex (pid ") and str(tmp_path) in first
        assert process.poll() is None  # it waits, it does not fail
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0 and err.strip() == ""
    assert out.strip().splitlines()[-1].startswith(f"new {len(POSTS)}")


# --- issue 15 item 8: help and output polish ------------------------------------------------------
def test_help_texts_show_brackets_and_no_type_labels():
    import bot.cli.main as cli
    from bot.cli.app import app

    for module in cli.COMMAND_MODULES:
        __import__(module)
    runner = CliRunner()
    for command in ("ingest", "search", "ask", "eval", "reindex", "bot", "crosspost", "quantize"):
        result = runner.invoke(app, [command, "--help"], prog_name="research-bot")
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output
        assert "[env: RESEARCH_BOT_DATA_DIR]" in " ".join(result.output.split())  # brackets survive


def test_reindex_json_names_the_model_and_ingest_starts_without_a_blank_line(tmp_path, capfd):
    data = ["--data-dir", str(tmp_path / "d")]
    export = write_export(tmp_path / "result.json", {1: POSTS[11]})
    code, out, err = run(["ingest", str(export), "--channel", "quant_chan", *data], capfd)
    assert code == 0 and out.startswith("new 1") and not err.startswith("\n")
    code, out, _ = run(["reindex", "--json", *data], capfd)
    model = json.loads(out)["model"]
    assert code == 0 and model.startswith(Settings().embedding_model.split("|")[0]) and "|" not in model
