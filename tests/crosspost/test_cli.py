"""`research-bot crosspost`: the JSON shape of the issue, text output, and one-line errors."""

from __future__ import annotations

import io
import json

import pytest

from bot.cli import main as cli_main

POST = "Квантизация attention в INT8 ускоряет модели в 2.1 раза: https://arxiv.org/abs/2410.02367 #sage"


def run(monkeypatch, capsys, *args: str, stdin: str = "") -> tuple[int, str, str]:
    # ingest_cmds too: with a single command Typer would make it the default and "crosspost" an argument
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ["bot.cli.ingest_cmds", "bot.cli.crosspost_cmds"])
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = 0
    try:
        cli_main.main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_json_shape(monkeypatch, capsys):
    code, out, _ = run(
        monkeypatch,
        capsys,
        "crosspost",
        "-",
        "--to",
        "x,bluesky,mastodon,threads,linkedin,markdown",
        "--json",
        stdin=POST * 8,
    )
    assert code == 0
    data = json.loads(out)
    assert data["source"] == "stdin"
    assert list(data["targets"]) == ["x", "bluesky", "mastodon", "threads", "linkedin", "markdown"]
    limits = {"x": 280, "bluesky": 300, "mastodon": 500, "threads": 500, "linkedin": 3000, "markdown": None}
    for name, target in data["targets"].items():
        assert target["translated"] is False
        assert target["parts"]
        for part in target["parts"]:
            assert {"text", "length", "limit"} <= set(part)
            assert part["limit"] == limits[name]
            assert part["limit"] is None or part["length"] <= part["limit"]
    assert len(data["targets"]["x"]["parts"]) > 1
    assert data["targets"]["x"]["parts"][0]["text"].endswith(f"1/{len(data['targets']['x']['parts'])}")
    assert data["source_lang"] == "ru" and any("translation skipped" in n for n in data["notices"])


def test_text_output(monkeypatch, capsys):
    code, out, err = run(monkeypatch, capsys, "crosspost", "-", "--to", "x", stdin=POST)
    assert code == 0
    assert "x · 1 part(s)" in out and "/280" in out and "https://arxiv.org/abs/2410.02367" in out
    assert "translation skipped" in err


def test_permalink_from_the_store(monkeypatch, capsys, tmp_path, sample_corpus):
    from ingest.pipeline import ingest_locations
    from rag.store import open_store

    data_dir = tmp_path / "data"
    store = open_store(f"sqlite:///{(data_dir / 'research-bot.sqlite3').resolve()}")
    ingest_locations(store, [str(sample_corpus / "002_9ef5c5e4c5b9423a.txt")])
    store.close()
    code, out, _ = run(
        monkeypatch,
        capsys,
        "crosspost",
        "https://t.me/quant_prune_distill/520",
        "--to",
        "x,markdown",
        "--json",
        "--data-dir",
        str(data_dir),
    )
    assert code == 0
    data = json.loads(out)
    assert data["source"] == "https://t.me/quant_prune_distill/520"
    assert data["targets"]["markdown"]["parts"][0]["text"].startswith("🔬 Метод") or "Qwen-2.5VL" in out
    # the conversion was stored for the bot's history
    from rag.store.conversions import list_conversions

    store = open_store(f"sqlite:///{(data_dir / 'research-bot.sqlite3').resolve()}")
    rows = list_conversions(store)
    assert {r.target for r in rows} == {"x", "markdown"} and all(r.post_id for r in rows)
    store.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["crosspost", "-", "--to", "x,orkut"], "unknown network 'orkut'"),
        (["crosspost", "-"], "the post is empty"),
        (["crosspost", "somechannel/5"], "https://t.me/somechannel/5 is not in the store"),
    ],
)
def test_user_errors_are_one_line(monkeypatch, capsys, args, message):
    code, _out, err = run(monkeypatch, capsys, *args, stdin="" if "orkut" not in args[-1] else "text")
    assert code == 1
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_text_output_keeps_urls_that_look_like_secrets(monkeypatch, capsys):
    """The parts are to be pasted into a network: a post's own `?key=` or `&sig=` URL is content,
    not one of our secrets, and must be printed exactly (rag.redact is for errors and logs)."""
    url = "https://maps.example.com/embed?key=AIzaDemoKey123&sig=abc123"
    code, out, _ = run(monkeypatch, capsys, "crosspost", "-", "--to", "mastodon", stdin=f"Карта: {url}")
    assert code == 0 and url in out
