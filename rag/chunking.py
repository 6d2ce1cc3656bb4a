"""Cutting posts and papers into retrieval chunks and keeping the `chunks` table in step.

A short post is one chunk; a long post or paper is split at paragraph, then sentence boundaries,
with the last sentence(s) of a chunk repeated at the start of the next (overlap), so an answer
that straddles a boundary is still inside one chunk. Chunks keep their post/paper id; channel,
date and permalink are read through the post when a hit is shown.

`sync_chunks` re-chunks only posts/papers that have no chunks yet or changed since their chunks
were written (post.updated_at > newest chunk.created_at; the queries are `rag.store.chunks`).
Chunk ids are what the indexes store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.store import Store
from rag.store.chunks import rechunk, stale_owners
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


def sync_chunks(store: Store, *, batch: int = 500) -> ChunkSync:
    """Write chunks for new/changed posts and papers; one transaction per batch of owners."""
    result = ChunkSync()
    post_ids, paper_ids = stale_owners(store)
    for start in range(0, len(post_ids), batch):
        ids = post_ids[start : start + batch]
        removed, written = rechunk(store, "post", ids, chunk_text)
        result.removed += removed
        result.chunks += written
        result.posts += len(ids)
    for start in range(0, len(paper_ids), batch):
        ids = paper_ids[start : start + batch]
        removed, written = rechunk(store, "paper", ids, chunk_text)
        result.removed += removed
        result.chunks += written
        result.papers += len(ids)
    return result
