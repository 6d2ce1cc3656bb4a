"""Cutting posts and papers into retrieval chunks and keeping the `chunks` table in step.

A short post is one chunk; a long post or paper is split at paragraph, then sentence boundaries,
with the last sentence(s) of a chunk repeated at the start of the next (overlap), so an answer
that straddles a boundary is still inside one chunk. Chunks keep their post/paper id; channel,
date and permalink are read through the post when a hit is shown.

`sync_chunks` re-chunks only posts/papers that have no chunks yet or changed since their chunks
were written (post.updated_at > newest chunk.created_at). Chunk ids are what the indexes store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from rag.store import Store
from rag.store.models import Chunk, Paper, Post, utcnow
from rag.store.records import content_hash
from rag.text import split_sentences

# ~900 characters is about 200-250 word pieces of the default model (it reads 256), so a chunk
# is embedded whole; Russian text tokenizes into more pieces, so longer chunks would be truncated.
MAX_CHARS = 900
OVERLAP_CHARS = 150


@dataclass
class ChunkSync:
    posts: int = 0  # posts (re)chunked
    papers: int = 0
    chunks: int = 0  # chunk rows written
    removed: int = 0  # chunk rows deleted (changed posts/papers)

    @property
    def changed(self) -> bool:
        return bool(self.chunks or self.removed)


def _pieces(text: str, max_chars: int) -> list[str]:
    """Paragraphs, with over-long paragraphs cut into sentences and over-long sentences into words."""
    out: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        if not para:
            continue
        if len(para) <= max_chars:
            out.append(para)
            continue
        for sentence in split_sentences(para):
            while len(sentence) > max_chars:
                cut = sentence.rfind(" ", 0, max_chars)
                cut = cut if cut > max_chars // 2 else max_chars
                out.append(sentence[:cut].strip())
                sentence = sentence[cut:].strip()
            if sentence:
                out.append(sentence)
    return out


def chunk_text(text: str, max_chars: int = MAX_CHARS, overlap_chars: int = OVERLAP_CHARS) -> list[str]:
    """Split text into chunks of at most ~max_chars on paragraph/sentence boundaries with overlap."""
    text = text.strip()
    if not text:
        return []
    if len(text) <= max_chars:
        return [text]
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    fresh = False  # current holds more than the overlap carried from the previous chunk
    for piece in _pieces(text, max_chars):
        if current and size + len(piece) + 1 > max_chars:
            chunks.append("\n".join(current))
            fresh = False
            # carry the tail (whole sentences, up to overlap_chars) into the next chunk
            tail: list[str] = []
            tail_size = 0
            for prev in reversed(split_sentences(current[-1])):
                if tail_size + len(prev) > overlap_chars:
                    break
                tail.insert(0, prev)
                tail_size += len(prev) + 1
            current, size = tail, tail_size
            if size + len(piece) + 1 > max_chars:  # no room for the overlap next to a long piece
                current, size = [], 0
        current.append(piece)
        size += len(piece) + 1
        fresh = True
    if current and fresh:
        chunks.append("\n".join(current))
    return chunks


def paper_text(paper: Paper) -> str:
    parts = [paper.title or "", paper.abstract or "", paper.full_text or ""]
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


def _stale_posts(s: Session) -> list[int]:
    newest = (
        select(Chunk.post_id, func.max(Chunk.created_at).label("at"))
        .where(Chunk.post_id.is_not(None))
        .group_by(Chunk.post_id)
        .subquery()
    )
    rows = s.execute(
        select(Post.id)
        .outerjoin(newest, newest.c.post_id == Post.id)
        .where(
            (newest.c.at.is_(None) & (func.length(func.trim(Post.text)) > 0))
            | (newest.c.at < Post.updated_at)
        )
    )
    return [r[0] for r in rows]


def _stale_papers(s: Session) -> list[int]:
    newest = (
        select(Chunk.paper_id, func.max(Chunk.created_at).label("at"))
        .where(Chunk.paper_id.is_not(None))
        .group_by(Chunk.paper_id)
        .subquery()
    )
    has_text = (
        func.coalesce(func.length(Paper.title), 0)
        + func.coalesce(func.length(Paper.abstract), 0)
        + func.coalesce(func.length(Paper.full_text), 0)
    ) > 0
    rows = s.execute(
        select(Paper.id)
        .outerjoin(newest, newest.c.paper_id == Paper.id)
        .where((newest.c.at.is_(None) & has_text) | (newest.c.at < Paper.updated_at))
    )
    return [r[0] for r in rows]


def _rechunk(s: Session, column, owners: list[tuple[int, str]]) -> tuple[int, int]:
    """Replace the chunks of these posts or papers (`column` is Chunk.post_id or Chunk.paper_id);
    returns (chunks removed, chunks written)."""
    ids = [owner_id for owner_id, _ in owners]
    removed = s.execute(delete(Chunk).where(column.in_(ids))).rowcount or 0
    now = utcnow()
    rows = [
        {
            "post_id": owner_id if column is Chunk.post_id else None,
            "paper_id": owner_id if column is Chunk.paper_id else None,
            "ordinal": ordinal,
            "text": piece,
            "content_hash": content_hash(piece),
            "created_at": now,
        }
        for owner_id, text in owners
        for ordinal, piece in enumerate(chunk_text(text))
    ]
    if rows:
        s.execute(insert(Chunk), rows)
    return removed, len(rows)


def sync_chunks(store: Store, *, batch: int = 500) -> ChunkSync:
    """Write chunks for new/changed posts and papers; one transaction per batch of rows."""
    result = ChunkSync()
    with store.session() as s:
        post_ids = _stale_posts(s)
        paper_ids = _stale_papers(s)
    for start in range(0, len(post_ids), batch):
        ids = post_ids[start : start + batch]
        with store.session() as s:
            owners = [
                (pid, text or "")
                for pid, text in s.execute(select(Post.id, Post.text).where(Post.id.in_(ids)))
            ]
            removed, written = _rechunk(s, Chunk.post_id, owners)
        result.removed += removed
        result.chunks += written
        result.posts += len(ids)
    for start in range(0, len(paper_ids), batch):
        ids = paper_ids[start : start + batch]
        with store.session() as s:
            owners = [
                (paper.id, paper_text(paper)) for paper in s.scalars(select(Paper).where(Paper.id.in_(ids)))
            ]
            removed, written = _rechunk(s, Chunk.paper_id, owners)
        result.removed += removed
        result.chunks += written
        result.papers += len(ids)
    return result
