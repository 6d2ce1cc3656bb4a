"""`research-bot ingest` options and output: --json counters, exit codes, --tz, --chat."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bot.cli.app import app
from bot.cli.main import COMMAND_MODULES, main
from tests.ingest.exports import message, write_export


def _run_cli(*args: str):
    for module in COMMAND_MODULES:
        __import__(module)
    return CliRunner().invoke(app, ["ingest", *args, "--no-index", "--json"])


def test_cli_exit_code_is_2_only_when_a_source_failed(tmp_path):
    data = str(tmp_path / "d")
    export = write_export(tmp_path / "result.json", [message(1, "пост"), message(2, "")])
    dropped_only = _run_cli(str(export), "--channel", "chan", "--data-dir", data)
    assert dropped_only.exit_code == 0, dropped_only.output
    result = json.loads(dropped_only.output)
    assert (result["new"], result["updated"], result["dropped"], result["failed"]) == (1, 0, 1, 0)

    missing = _run_cli(str(tmp_path / "missing.json"), "--data-dir", data)
    assert missing.exit_code == 2
    result = json.loads(missing.output)
    assert result["failed"] == 1 and "missing.json: no such file or folder" in result["errors"][0]


def test_cli_tz_and_chat_options(tmp_path, capsys):
    data = str(tmp_path / "d")
    old = {"id": 5, "type": "message", "date": "2019-05-01T12:00:00", "text": "старый пост"}
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"name": "КПД", "messages": [old]}), encoding="utf-8")
    plain = _run_cli(str(path), "--data-dir", data)
    assert plain.exit_code == 0 and "no time zone" in json.loads(plain.output)["notes"][0]
    zoned = _run_cli(str(path), "--tz", "Europe/Moscow", "--data-dir", data)
    assert zoned.exit_code == 0 and json.loads(zoned.output)["updated"] == 1
    for args, expected in [
        (["--tz", "Mars/Olympus", str(path)], "unknown time zone"),
        (["--chat", "x", "--all"], "--all reads each source"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(["ingest", *args, "--no-index", "--data-dir", data])
        assert exit_info.value.code == 1
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err
