"""Fixtures for the bot tests: settings pointing at a fresh data dir, a store, fake services."""

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
