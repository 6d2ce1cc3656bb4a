"""Shared test fixtures: offline environment, a fresh store, the bundled sample corpus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag.samples import SAMPLE_CORPUS

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def sample_corpus() -> Path:
    return SAMPLE_CORPUS


@pytest.fixture
def store(tmp_path):
    from rag.store import open_store

    s = open_store(f"sqlite:///{tmp_path / 'test.sqlite3'}")
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch, tmp_path):
    """Tests never read a developer's .env or ./data: each gets its own data dir."""
    for name in list(os.environ):
        if name.startswith(("RESEARCH_BOT_", "TELEGRAM_")) and name != "RESEARCH_BOT_TEST_PG_URL":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RESEARCH_BOT_DATA_DIR", str(tmp_path / "data"))
