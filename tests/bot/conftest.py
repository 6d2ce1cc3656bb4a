"""Fixtures for the bot tests: settings pointing at a fresh data dir, a store, fake and real services."""

from __future__ import annotations

import pytest

from tests.bot.harness import FakeCrosspost, FakeRag, fake_services, make_settings


@pytest.fixture
def bot_settings(tmp_path):
    return make_settings(tmp_path / "data")


@pytest.fixture
def fake_rag():
    return FakeRag()


@pytest.fixture
def fakes(bot_settings, store, fake_rag):
    return fake_services(bot_settings, store, fake_rag, FakeCrosspost())


@pytest.fixture(scope="session")
def real(tmp_path_factory):
    """The real services (store, RagService with the offline embedding model, crosspost) on a small
    export; built once per session because the model load costs about 10 s here."""
    from bot.services import build_services
    from ingest.pipeline import ingest_locations
    from tests.bot.corpus import CHANNEL, POSTS, write_export

    root = tmp_path_factory.mktemp("real")
    services = build_services(make_settings(root / "data"))
    export = write_export(root / "export" / "result.json")
    report = ingest_locations(services.store, [str(export)], channel_hint=CHANNEL)
    assert report.ok and report.summary.new == len(POSTS)
    services.rag.sync()
    services.export_path = export  # type: ignore[attr-defined]
    yield services
    services.close()
