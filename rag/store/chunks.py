"""The chunks table: which posts and papers need (re)chunking and writing their chunks (the
splitting itself is `rag.chunking`'s), and reading chunks for the indexes and for retrieval: their
fingerprints, their texts, the rows a hit shows, and the chunk ids a channel/date filter allows.

Chunking (`rag.chunking`), the index lifecycle (`rag.lifecycle`), the retriever (`rag.retrieve`)
and the service use the store only through these functions and the `Store` methods; no
SQLAlchemy outside `rag/store/`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from sqlalchemy import CursorResult, delete, func, insert, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from core.tme import channel_name, display_channel
from rag.store.db import Store
from rag.store.models import Channel, Chunk, Paper, Post, utcnow
from rag.store.records import content_hash

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
    if isinstance(until, datetime):
        stmt = stmt.where(Post.date <= _utc_start(until))
    elif until is not None:  # a date: "on or before", so all of that day
        stmt = stmt.where(Post.date < _utc_start(until + timedelta(days=1)))
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


def paper_text(paper: Paper) -> str:
    """What a paper is chunked from: title, abstract and full text."""
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


def stale_owners(store: Store) -> tuple[list[int], list[int]]:
    """Ids of the posts and of the papers with text whose chunks are missing or older than them."""
    with store.session() as s:
        return _stale_posts(s), _stale_papers(s)


def rechunk(
    store: Store, kind: Literal["post", "paper"], ids: list[int], split: Callable[[str], list[str]]
) -> tuple[int, int]:
    """Replace the chunks of these posts or papers by `split` of their text, in one transaction;
    returns (chunks removed, chunks written)."""
    with store.session() as s:
        if kind == "post":
            column = Chunk.post_id
            owners = [
                (pid, text or "")
                for pid, text in s.execute(select(Post.id, Post.text).where(Post.id.in_(ids)))
            ]
        else:
            column = Chunk.paper_id
            owners = [
                (paper.id, paper_text(paper)) for paper in s.scalars(select(Paper).where(Paper.id.in_(ids)))
            ]
        return _replace_chunks(s, column, owners, split)


def _replace_chunks(
    s: Session,
    column: InstrumentedAttribute[int | None],
    owners: list[tuple[int, str]],
    split: Callable[[str], list[str]],
) -> tuple[int, int]:
    ids = [owner_id for owner_id, _ in owners]
    deleted = s.execute(delete(Chunk).where(column.in_(ids)))
    assert isinstance(deleted, CursorResult)  # a DML statement's result
    removed = deleted.rowcount or 0
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
        for ordinal, piece in enumerate(split(text))
    ]
    if rows:
        s.execute(insert(Chunk), rows)
    return removed, len(rows)
