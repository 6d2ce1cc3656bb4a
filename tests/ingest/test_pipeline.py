"""Ingest orchestration: bad input is one line per source, the rest still ingests, nothing is lost."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from typer.testing import CliRunner

from bot.cli.app import app
from bot.cli.main import COMMAND_MODULES, main
from core.errors import IngestError
from ingest.pipeline import ingest_locations, reingest_all
from ingest.registry import RawSource, parser_by_name
from rag.store.models import Post
from tests.conftest import SAMPLE_CORPUS
from tests.ingest.exports import message, write_export


def _count(store) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(Post))


def test_bad_sources_are_reported_and_the_rest_ingests(store, tmp_path, sample_corpus):
    good = write_export(tmp_path / "good.json", [message(1, "хороший пост")])
    (tmp_path / "broken.json").write_text('{"messages": [ {"id": 1, "text": "обрыв', encoding="utf-8")
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "notes.txt").write_text("просто заметка без признаков канала", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    report = ingest_locations(
        store,
        [
            str(good),
            str(tmp_path / "broken.json"),
            str(tmp_path / "blob.bin"),
            str(tmp_path / "notes.txt"),
            str(tmp_path / "empty"),
            str(tmp_path / "missing.json"),
        ],
        channel_hint="chan",
    )
    assert report.summary.new == 1
    assert len(report.errors) == 5
    joined = "\n".join(report.errors)
    assert "broken.json: malformed JSON export" in joined
    assert "blob.bin: binary file" in joined
    assert "notes.txt: unknown format" in joined
    assert "empty: folder has no files" in joined
    assert "missing.json: no such file" in joined
    assert all("\n" not in e for e in report.errors)


def test_cli_prints_one_line_per_problem_and_exits_nonzero(tmp_path):
    (tmp_path / "broken.json").write_text('{"messages": 5}', encoding="utf-8")
    write_export(tmp_path / "ok.json", [message(1, "пост")])
    for module in COMMAND_MODULES:
        __import__(module)
    result = CliRunner().invoke(
        app,
        [
            "ingest",
            str(tmp_path / "broken.json"),
            str(tmp_path / "ok.json"),
            "--data-dir",
            str(tmp_path / "d"),
            "--no-index",
        ],
    )
    assert result.exit_code == 2
    assert "not a Telegram export" in result.output
    assert "new 1, updated 0, unchanged 0, failed 1 source" in result.output
    assert "Traceback" not in result.output


def test_cli_user_error_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["ingest", "--data-dir", str(tmp_path / "d")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "nothing to ingest" in err and "Traceback" not in err


def test_a_crash_mid_source_leaves_the_store_as_it_was(store, tmp_path, monkeypatch):
    path = write_export(tmp_path / "result.json", [message(i, f"пост {i}") for i in range(1, 6)])
    ingest_locations(store, [str(path)], channel_hint="chan")
    write_export(path, [message(i, f"пост {i} (правка)") for i in range(1, 8)])

    import rag.store.upsert as upsert

    real = upsert.upsert_papers

    def crash(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt  # Ctrl-C in the middle of the transaction

    monkeypatch.setattr(upsert, "upsert_papers", crash)
    with pytest.raises(KeyboardInterrupt):
        ingest_locations(store, [str(path)], channel_hint="chan")
    monkeypatch.setattr(upsert, "upsert_papers", real)
    with store.session() as s:
        texts = sorted(s.scalars(select(Post.text)))
    assert texts == [f"пост {i}" for i in range(1, 6)]
    assert store.get_source(str(path.resolve())).content_hash is not None
    # and the next run applies the edit in full
    report = ingest_locations(store, [str(path)], channel_hint="chan")
    assert (report.summary.new, report.summary.updated) == (2, 5)


def test_ingest_all_reruns_known_sources(store, tmp_path, sample_corpus):
    path = write_export(tmp_path / "result.json", [message(1, "раз")])
    ingest_locations(store, [str(path), str(sample_corpus / "002_9ef5c5e4c5b9423a.txt")], channel_hint=None)
    write_export(path, [message(1, "раз"), message(2, "два")])
    report = reingest_all(store)
    assert report.summary.new == 1 and report.summary.unchanged == 2
    assert _count(store) == 3


def test_ingest_all_on_empty_store_says_what_to_do(store):
    with pytest.raises(IngestError, match="no sources ingested yet"):
        reingest_all(store)


def test_stats_json(tmp_path, sample_corpus):
    data = tmp_path / "d"
    runner = CliRunner()
    for module in COMMAND_MODULES:
        __import__(module)
    assert (
        runner.invoke(app, ["ingest", str(sample_corpus), "--data-dir", str(data), "--no-index"]).exit_code
        == 0
    )
    result = runner.invoke(app, ["stats", "--json", "--data-dir", str(data)])
    stats = json.loads(result.output)
    assert stats["posts"] == 56 and stats["channels"] == 3
    assert len(stats["sources"]) == 5 and all(s["last_ingest"] for s in stats["sources"])


# --- property tests: random and truncated input never escapes as anything but IngestError ------------


def _parse_or_ingest_error(name: str, data: bytes) -> None:
    try:
        parser_by_name(name).parse(RawSource(location="fuzz", data=data))
    except IngestError as exc:
        assert str(exc).startswith("fuzz: ")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_parsers_survive_random_bytes(data):
    for name in ("telegram-json", "page-dump"):
        _parse_or_ingest_error(name, data)


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_parsers_survive_truncated_real_input(cut):
    page = (SAMPLE_CORPUS / "004_9e7214d00f268d4b.txt").read_bytes()
    _parse_or_ingest_error("page-dump", page[: cut * 8])
    export = json.dumps(
        {"name": "x", "messages": [message(i, f"пост {i}") for i in range(30)]}, ensure_ascii=False
    ).encode()
    _parse_or_ingest_error("telegram-json", export[: cut % len(export)])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(st.text(max_size=30), st.dictionaries(st.text(max_size=8), st.text(max_size=8))), max_size=6
    )
)
def test_json_parser_survives_odd_message_shapes(parts):
    export = json.dumps(
        {"name": "x", "messages": [{"id": 1, "type": "message", "text": parts, "text_entities": parts}]}
    ).encode()
    _parse_or_ingest_error("telegram-json", export)


# --- the counters say distinct things; exit 2 iff a source failed ------------------------------------


def test_counters_keep_dropped_messages_apart_from_failed_sources(store, tmp_path):
    service = {"id": 2, "type": "service", "action": "pin_message", "date": "2025-01-01T00:00:00"}
    export = write_export(tmp_path / "result.json", [message(1, "пост"), service, message(3, "")])
    report = ingest_locations(store, [str(export)], channel_hint="chan")
    assert report.ok
    summary = report.summary
    assert (summary.new, summary.dropped, summary.failed) == (1, 2, 0)
    assert (
        summary.line() == "new 1, updated 0, unchanged 0, dropped 2 (service, empty or unreadable messages)"
    )

    missing = ingest_locations(store, [str(export), str(tmp_path / "missing.json")], channel_hint="chan")
    assert not missing.ok
    assert (missing.summary.unchanged, missing.summary.dropped, missing.summary.failed) == (1, 0, 1)
    assert missing.summary.line() == "new 0, updated 0, unchanged 1, failed 1 source"


def test_markup_like_text_in_posts_and_file_names_does_not_stop_ingest(store, tmp_path):
    folder = tmp_path / "[bold]exports"
    folder.mkdir()
    write_export(folder / "[red]first.json", [message(1, "[/x] пост с [red]разметкой[/red] [link=x]")])
    (folder / "[link=x]broken.json").write_text('{"messages": 5}', encoding="utf-8")
    write_export(folder / "z later.json", [message(2, "следующий файл")])
    report = ingest_locations(store, [str(folder)], channel_hint="chan")
    assert report.summary.new == 2 and report.summary.failed == 1
    assert "[link=x]broken.json: JSON has no messages[] list" in report.errors[0]
    with store.session() as s:
        assert (
            s.scalar(select(Post.text).where(Post.message_id == 1))
            == "[/x] пост с [red]разметкой[/red] [link=x]"
        )


def test_broken_characters_from_any_parser_are_repaired_not_fatal(store, tmp_path, monkeypatch):
    # pypdf and other readers can hand back lone surrogates, which SQLite refuses to store.
    import ingest.pipeline as pipeline
    from rag.store.records import PaperRecord, PostRecord, SourceBatch

    def parse(raw):
        return SourceBatch(
            location=raw.location,
            format="test",
            posts=[PostRecord(channel="chan", text="пост \udc00 с обломком", message_id=1)],
            papers=[PaperRecord(title="Title \ud800", authors=["A \udfff B"], full_text="x")],
        )

    monkeypatch.setattr(pipeline, "_parse", parse)
    path = tmp_path / "any.txt"
    path.write_text("whatever", encoding="utf-8")
    report = ingest_locations(store, [str(path)])
    assert report.ok and report.summary.new == 2
    assert "3 text fields with broken characters" in report.notes[0]
    with store.session() as s:
        assert s.scalar(select(Post.text)) == "пост \ufffd с обломком"
