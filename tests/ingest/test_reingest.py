"""Re-ingest (`ingest --all`, the bot's /reingest): one path; live channel posts are not counted in
the progress total and every source that is counted is reported once, so the total ends full."""

from __future__ import annotations

import asyncio
import json

from typer.testing import CliRunner

from bot.cli import ingest_cmds
from bot.cli.app import app
from bot.cli.main import COMMAND_MODULES
from bot.corpus_ops import CorpusOps
from ingest.bot_api import FORMAT as LIVE_FORMAT
from ingest.bot_api import location_for
from ingest.pipeline import ingest_locations, reingest_all, rereadable_sources
from rag.store import PostRecord, SourceBatch, open_store
from tests.ingest.exports import message, write_export


def _corpus(store, tmp_path):
    """Two file sources (one deleted since) and the live posts of a watched channel."""
    kept = write_export(tmp_path / "kept.json", [message(1, "первый пост")])
    gone = write_export(tmp_path / "gone.json", [message(2, "второй пост")], name="Другой")
    ingest_locations(store, [str(kept), str(gone)], channel_hint=None)
    live = SourceBatch(location_for("watched"), LIVE_FORMAT, [PostRecord("watched", "живой пост", 5)])
    store.ingest_batch(live, channel_hint="watched", digest=None)
    gone.unlink()
    return kept, gone


def test_every_counted_source_is_reported_once_and_live_posts_are_not_counted(store, tmp_path):
    kept, gone = _corpus(store, tmp_path)
    sources = rereadable_sources(store)
    assert sorted(s.location for s in sources) == sorted([str(kept.resolve()), str(gone.resolve())])
    seen: list[tuple[str, bool]] = []
    report = reingest_all(
        store, sources, on_source=lambda loc, summary, error: seen.append((loc, bool(error)))
    )
    assert len(seen) == len(sources) == 2
    assert dict(seen) == {str(kept.resolve()): False, str(gone.resolve()): True}
    assert report.sources == 1 and len(report.errors) == 1 and "no such file" in report.errors[0]


def test_bot_reingest_progress_ends_at_its_total(store, tmp_path):
    _corpus(store, tmp_path)
    calls: list[tuple[int, int]] = []

    async def run():
        report = await CorpusOps(store).reingest(lambda done, total, _loc: calls.append((done, total)))
        await asyncio.sleep(0)  # progress is delivered on the event loop
        return report

    report = asyncio.run(run())
    assert calls == [(1, 2), (2, 2)]
    assert report.summary.unchanged == 1 and report.summary.failed == 1


def test_cli_ingest_all_counts_the_file_sources_only(tmp_path, monkeypatch):
    data = tmp_path / "d"
    for module in COMMAND_MODULES:
        __import__(module)
    runner = CliRunner()
    kept = write_export(tmp_path / "kept.json", [message(1, "первый пост")])
    assert runner.invoke(app, ["ingest", str(kept), "--no-index", "--data-dir", str(data)]).exit_code == 0
    store = open_store(f"sqlite:///{data / 'research-bot.sqlite3'}")
    live = SourceBatch(location_for("watched"), LIVE_FORMAT, [PostRecord("watched", "живой пост", 5)])
    store.ingest_batch(live, channel_hint="watched", digest=None)
    store.close()
    totals: list[float | None] = []
    real = ingest_cmds.progress_bar

    def spy(label, *, hidden=False):
        bar = real(label, hidden=hidden)
        add = bar.add_task

        def add_task(description, total=None, **kwargs):
            totals.append(total)
            return add(description, total=total, **kwargs)

        bar.add_task = add_task
        return bar

    monkeypatch.setattr(ingest_cmds, "progress_bar", spy)
    result = runner.invoke(app, ["ingest", "--all", "--no-index", "--json", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sources"] == 1 and totals == [1]
