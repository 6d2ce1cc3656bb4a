"""Reading chunks for the indexes and for retrieval: their fingerprints, their texts, the rows a hit
shows, and the chunk ids a channel/date filter allows.

The index lifecycle (`rag.lifecycle`), the retriever (`rag.retrieve`) and the service read the
store only through these functions and the `Store` methods; no SQLAlchemy outside `rag/store/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from sqlalchemy import func, select

from core.tme import channel_name, display_channel
from rag.store.db import Store
from rag.store.models import Channel, Chunk, Paper, Post

BATCH = 900  # ids per IN (...) query: under SQLite's default limit of 999 bound parameters


@dataclass
class ChunkSource:
    """What the indexes are built from: a chunk's text and what it belongs to."""

    text: str
    ordinal: int  # 0 for the first chunk of its post or paper
    heading: str  # the paper's title, else the first line of the post (at most 200 characters)


@dataclass
class ChunkView:
    """A chunk as a search hit shows it: the chunk, and its post or paper."""

    text: str
    post_id: int | None
    paper_id: int | None
    channel: str | None  # the username, or the title of a channel known by its title only
    date: datetime | None  # UTC
    url: str | None  # the post's permalink, or the paper's URL
    title: str | None  # the paper's title (paper chunks)
    doc_text: str  # the whole post; for a paper: title, abstract and the chunk


def chunk_hashes(store: Store) -> list[tuple[int, str]]:
    """(chunk id, content hash) of every stored chunk, by id."""
    with store.session() as s:
        return sorted((int(i), h) for i, h in s.execute(select(Chunk.id, Chunk.content_hash)))


def chunk_sources(store: Store, ids: list[int]) -> dict[int, ChunkSource]:
    out: dict[int, ChunkSource] = {}
    with store.session() as s:
        for start in range(0, len(ids), BATCH):
            rows = s.execute(
                select(Chunk.id, Chunk.text, Chunk.ordinal, func.substr(Post.text, 1, 300), Paper.title)
                .outerjoin(Post, Chunk.post_id == Post.id)
                .outerjoin(Paper, Chunk.paper_id == Paper.id)
                .where(Chunk.id.in_(ids[start : start + BATCH]))
            )
            for cid, text, ordinal, post_head, paper_title in rows:
                heading = paper_title or (post_head or "").strip().split("\n", 1)[0][:200]
                out[int(cid)] = ChunkSource(text, ordinal or 0, heading)
    return out


def _utc_start(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time.min, tzinfo=UTC)


def filtered_chunk_ids(
    store: Store, channel: str | None, since: date | datetime | None, until: date | datetime | None
) -> list[int]:
    """Ids of the post chunks of `channel` (username, title or t.me link) dated within [since, until]."""
    stmt = select(Chunk.id).join(Post, Chunk.post_id == Post.id).join(Channel, Post.channel_id == Channel.id)
    if channel:
        name = channel_name(channel)
        stmt = stmt.where((Channel.username == name) | (Channel.title == name))
    if since is not None:
        stmt = stmt.where(Post.date >= _utc_start(since))
    if until is not None:
        stmt = stmt.where(Post.date <= _utc_start(until))
    with store.session() as s:
        return sorted(s.scalars(stmt))


def chunk_views(store: Store, ids: list[int]) -> dict[int, ChunkView]:
    """The chunks that still exist among `ids` (an index generation may outlive a deleted post)."""
    out: dict[int, ChunkView] = {}
    with store.session() as s:
        rows = s.execute(
            select(
                Chunk.id,
                Chunk.text,
                Chunk.post_id,
                Chunk.paper_id,
                Channel.username,
                Channel.title,
                Post.date,
                Post.permalink,
                Paper.title,
                Paper.url,
                Paper.arxiv_id,
                Post.text,
                Paper.abstract,
            )
            .outerjoin(Post, Chunk.post_id == Post.id)
            .outerjoin(Channel, Post.channel_id == Channel.id)
            .outerjoin(Paper, Chunk.paper_id == Paper.id)
            .where(Chunk.id.in_(ids))
        )
        for (
            cid,
            text,
            post_id,
            paper_id,
            username,
            ch_title,
            when,
            permalink,
            p_title,
            p_url,
            arxiv,
            post_text,
            abstract,
        ) in rows:
            if post_id is not None:
                url, doc_text = permalink, post_text
            else:
                url = p_url or (f"https://arxiv.org/abs/{arxiv}" if arxiv else None)
                doc_text = f"{p_title or ''} {abstract or ''} {text}"
            if when is not None and when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            out[int(cid)] = ChunkView(
                text=text,
                post_id=post_id,
                paper_id=paper_id,
                channel=display_channel(username, ch_title),  # page dumps: known by title only
                date=when,
                url=url,
                title=p_title if paper_id is not None else None,
                doc_text=doc_text,
            )
    return out
