"""Chunking: post boundaries respected, long texts split on sentences with overlap, rows kept in step."""

from __future__ import annotations

import itertools

from sqlalchemy import select

from rag.chunking import MAX_CHARS, chunk_text, sync_chunks
from rag.store.models import Chunk, Paper
from tests.rag.conftest import add_posts


def _long_post(n: int = 40) -> str:
    return "\n\n".join(
        f"Абзац {i}. Предложение номер {i} про квантизацию весов и активаций. Ещё одно предложение {i}!"
        for i in range(n)
    )


def test_short_post_is_one_chunk():
    text = "Короткий пост про GPTQ.\n\nВторой абзац."
    assert chunk_text(text) == [text]


def test_long_post_splits_on_sentence_boundaries_with_overlap():
    text = _long_post()
    chunks = chunk_text(text)
    assert len(chunks) > 3
    assert all(len(c) <= MAX_CHARS for c in chunks)
    for chunk in chunks:  # every chunk starts at a sentence/paragraph start, not mid-word
        assert chunk[0].isupper() or chunk[0].isdigit(), chunk[:40]
    for prev, nxt in itertools.pairwise(chunks):  # overlap: the next starts with the previous tail
        assert nxt.split("\n")[0] in prev
    joined = " ".join(chunks)
    for i in range(40):  # nothing lost
        assert f"Предложение номер {i} " in joined


def test_one_giant_sentence_is_cut_by_words():
    text = " ".join(["слово"] * 1000)
    chunks = chunk_text(text)
    assert all(0 < len(c) <= MAX_CHARS for c in chunks)
    assert sum(c.count("слово") for c in chunks) >= 1000


def test_sync_chunks_writes_rows_once_and_rechunks_changed_posts(store):
    rows = [("kpd", 1, "2025-01-01", "Первый пост."), ("kpd", 2, "2025-01-02", _long_post())]
    add_posts(store, rows)
    first = sync_chunks(store)
    assert first.posts == 2 and first.chunks > 3
    with store.session() as s:
        chunks = s.execute(select(Chunk.post_id, Chunk.ordinal, Chunk.text)).all()
    assert {c.post_id for c in chunks} == {1, 2}
    assert sorted(c.ordinal for c in chunks if c.post_id == 1) == [0]

    again = sync_chunks(store)
    assert not again.changed

    add_posts(store, [("kpd", 1, "2025-01-01", "Первый пост, исправленный автором.")])
    edited = sync_chunks(store)
    assert edited.posts == 1 and edited.removed == 1 and edited.chunks == 1
    with store.session() as s:
        texts = s.scalars(select(Chunk.text).where(Chunk.post_id == 1)).all()
    assert texts == ["Первый пост, исправленный автором."]


def test_papers_with_text_are_chunked_and_stubs_are_not(store):
    with store.session() as s:
        s.add(
            Paper(
                dedupe_key="arxiv:1",
                arxiv_id="1",
                title="Scaling laws",
                abstract="We study data filtering.",
                content_hash="x",
            )
        )
        s.add(Paper(dedupe_key="arxiv:2", arxiv_id="2", content_hash="y"))  # a stub: id only
    result = sync_chunks(store)
    assert result.papers == 1
    with store.session() as s:
        rows = s.execute(select(Chunk.paper_id, Chunk.text)).all()
    assert len(rows) == 1 and rows[0].text.startswith("Scaling laws")
