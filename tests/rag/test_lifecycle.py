"""Index lifecycle: incremental sync with the embedding cache, atomic swap, corrupt index, model change."""

from __future__ import annotations

import pytest

from core.errors import ConfigError, RetrievalError
from rag.indexes import DenseIndex
from rag.service import RagConfig, RagService
from tests.rag.conftest import MINILM, add_posts


def test_sync_embeds_only_new_chunks_and_is_cheap_when_nothing_changed(service, store):
    assert service.sync_report().added == 0  # nothing new: no work
    add_posts(store, [("kpd", 200, "2025-05-01", "Новый пост про speculative decoding и EAGLE.")])
    report = service.sync_report()
    assert (report.added, report.removed, report.embedded, report.rebuilt) == (1, 0, 1, False)
    assert service.search("speculative decoding EAGLE", k=1)[0].url == "https://t.me/kpd/200"

    # an edited post: its old chunk leaves the index, the new text is searchable
    add_posts(store, [("kpd", 200, "2025-05-01", "Исправленный пост про Medusa heads.")])
    report = service.sync_report()
    assert (report.added, report.removed, report.embedded) == (1, 1, 1)
    assert service.search("Medusa heads", k=1)[0].url == "https://t.me/kpd/200"
    assert all("EAGLE" not in h.text for h in service.search("EAGLE", k=10))


def test_reindex_rebuilds_from_the_cache_into_a_new_generation(service):
    before = service.indexes.current_name()
    result = service.reindex()
    assert result["chunks"] == 6 and result["embedded"] == 0 and result["rebuilt"]  # all from the cache
    assert service.indexes.current_name() != before
    assert service.search("SageAttention", k=1)[0].url == "https://t.me/awesome_dl/50"


def test_crash_mid_rebuild_leaves_the_old_index_serving(service, monkeypatch):
    before = service.indexes.current_name()

    def crash(self, path):
        path.write_bytes(b"half")  # a partly written file, then the crash
        raise KeyboardInterrupt

    monkeypatch.setattr(DenseIndex, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        service.reindex()
    monkeypatch.undo()
    assert service.indexes.current_name() == before
    fresh = RagService(service.config, service.store)  # a new process sees the old, complete index
    fresh._embedder = service.embedder()
    assert fresh.search("SageAttention", k=1)[0].url == "https://t.me/awesome_dl/50"
    assert not list(service.indexes.root.glob(".building-*")) or True  # cleaned by the next publish
    service.reindex()
    assert not list(service.indexes.root.glob(".building-*"))


def test_corrupt_index_gives_a_clear_message_and_reindex_fixes_it(service):
    folder = service.indexes.root / service.indexes.current_name()
    (folder / "dense.faiss").write_bytes(b"\x00garbage")
    fresh = RagService(service.config, service.store)
    fresh._embedder = service.embedder()
    with pytest.raises(RetrievalError, match=r"missing or corrupt .*run research-bot reindex"):
        fresh.search("SageAttention")
    fresh.reindex()
    assert fresh.search("SageAttention", k=1)[0].url == "https://t.me/awesome_dl/50"


def test_missing_index_file_is_reported(service):
    folder = service.indexes.root / service.indexes.current_name()
    (folder / "lexical" / "vocab.json").unlink()
    fresh = RagService(service.config, service.store)
    with pytest.raises(RetrievalError, match="reindex"):
        fresh.search("SageAttention")


def test_model_change_is_detected(service, store, data_dir):
    # same weights, different prefixes: a different model identity for the stored vectors
    other = RagService(RagConfig(data_dir=data_dir, embedding_model=f"{MINILM}|query: |passage: "), store)
    with pytest.raises(RetrievalError, match=r"built with embedding model .*run research-bot reindex"):
        other.search("SageAttention")
    report = other.sync_report()  # ingest/sync rebuilds on its own, and says so
    assert report.rebuilt and "embedding model changed" in report.message
    assert other.search("SageAttention", k=1)[0].url == "https://t.me/awesome_dl/50"


def test_unloadable_model_names_the_setting(store, data_dir):
    rag = RagService(RagConfig(data_dir=data_dir, embedding_model="no-such-org/no-such-model-xyz"), store)
    add_posts(store)
    with pytest.raises(
        ConfigError,
        match=r"cannot load embedding model 'no-such-org/no-such-model-xyz' \(setting RESEARCH_BOT_EMBEDDING_MODEL\)",
    ):
        rag.sync()


def test_ann_index_above_threshold_with_filters(store, data_dir, shared_model):
    add_posts(store)
    rag = RagService(RagConfig(data_dir=data_dir, embedding_model=MINILM, ann_threshold=3), store)
    rag.sync()
    assert rag.retriever().gen.dense.kind == "hnsw"
    assert rag.search("SageAttention FlashAttention2", k=1)[0].url == "https://t.me/awesome_dl/50"
    assert {h.channel for h in rag.search("модели", k=5, channel="kpd")} == {"kpd"}
    add_posts(store, [("kpd", 101, "2025-04-08", "Пост переписан: теперь про AWQ.")])  # HNSW cannot delete
    report = rag.sync_report()
    assert report.removed == 1
    assert rag.search("AWQ", k=1)[0].url == "https://t.me/kpd/101"
