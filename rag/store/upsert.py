"""Upserting one source's records: keyed by (channel, message id), else by content hash, with
near-duplicate merging so a post captured twice (with and without its id) is stored once.

Hot path of ingest: existing keys are loaded once per channel and new rows are bulk-inserted,
so a 50k-post export does not pay a query per post.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import String, insert, select, update
from sqlalchemy.orm import Session

from core.tme import channel_url, is_internal_key, post_url, title_key
from rag.store.dedupe import is_near_duplicate, shingles
from rag.store.models import Channel, Paper, Post, PostPaper, utcnow
from rag.store.records import IngestSummary, PaperRecord, PostRecord, SourceBatch


@dataclass
class _Existing:
    id: int
    key: str
    content_hash: str
    text_len: int
    has_id: bool
    shingles: frozenset[int] = field(default_factory=frozenset)
    # Naive UTC, as SQLite returns it: a changed date is an update even when the text is the same
    # (an old export re-read with --tz names the zone its dates were written in).
    date: datetime | None = None


def resolve_channel(s: Session, username: str | None, title: str | None) -> Channel:
    """Find or create the channel; a title-only placeholder is renamed once the username is known.

    Only sources that carry no username (page dumps) are matched by title. Keys starting with `_`
    are internal (Telegram usernames start with a letter): `_chat:<id>` is a live channel without
    a username, identified by its chat id (bot.channels); such a key never takes over a channel by
    its title, since any channel can carry any title."""
    username = (username or "").lstrip("@") or None
    if username:
        channel = s.scalar(select(Channel).where(Channel.username == username))
        if channel is None and title and not username.startswith("_"):
            channel = s.scalar(select(Channel).where(Channel.username == title_key(title)))
            if channel is not None:
                channel.username = username
                s.flush()
                s.execute(
                    update(Post)
                    .where(Post.channel_id == channel.id, Post.message_id.is_not(None))
                    .values(permalink=channel_url(username) + "/" + Post.message_id.cast(String))
                )
        if channel is None:
            channel = Channel(username=username, title=title)
            s.add(channel)
        elif title and not channel.title:
            channel.title = title
    else:
        title = title or "unknown"
        channel = s.scalar(select(Channel).where(Channel.title == title).order_by(Channel.id))
        if channel is None:
            channel = Channel(username=title_key(title), title=title)
            s.add(channel)
    s.flush()
    return channel


def _utc(value: datetime | None) -> datetime | None:
    """Store instants in UTC: SQLite keeps no offset, so 23:54+03:00 would read back as 23:54."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _naive_utc(value: datetime | None) -> datetime | None:
    value = _utc(value)
    return value.replace(tzinfo=None) if value is not None else None


def _post_values(record: PostRecord, channel: Channel, source_id: int | None) -> dict:
    permalink = None
    if record.message_id is not None and not is_internal_key(channel.username):
        permalink = post_url(channel.username, record.message_id)
    return {
        "channel_id": channel.id,
        "dedupe_key": record.key,
        "message_id": record.message_id,
        "permalink": permalink,
        "date": _utc(record.date),
        "edited_at": _utc(record.edited),
        "author": record.author,
        "text": record.text,
        "entities": record.entities,
        "links": record.links,
        "forwarded_from": record.forwarded_from,
        "reply_to": record.reply_to,
        "reply_to_other": record.reply_to_other,
        "views": record.views,
        "reactions": record.reactions,
        "media": record.media,
        "content_hash": record.content_hash,
        "source_id": source_id,
    }


def _load_existing(s: Session, channel_id: int, with_shingles: bool) -> dict[str, _Existing]:
    columns = [Post.id, Post.dedupe_key, Post.content_hash, Post.message_id, Post.date]
    if with_shingles:
        columns.append(Post.text)
    existing = {}
    for row in s.execute(select(*columns).where(Post.channel_id == channel_id)):
        text = row[5] if with_shingles else ""
        existing[row.dedupe_key] = _Existing(
            row.id,
            row.dedupe_key,
            row.content_hash,
            len(text),
            row.message_id is not None,
            shingles(text) if with_shingles else frozenset(),
            _naive_utc(row.date),
        )
    return existing


def _find_near_duplicate(record_shingles: frozenset[int], candidates: list[_Existing]) -> _Existing | None:
    for candidate in candidates:
        if is_near_duplicate(record_shingles, candidate.shingles):
            return candidate
    return None


def upsert_posts(
    s: Session, channel: Channel, records: list[PostRecord], source_id: int | None, summary: IngestSummary
) -> dict[int, int]:
    """Upsert one channel's records; returns {index in `records`: post id} for linking papers."""
    # Near-duplicate checks need texts; skip loading them when every record has an id and the
    # channel holds no id-less post (the common case of exports), which keeps re-ingest fast.
    has_idless_incoming = any(r.message_id is None for r in records)
    has_idless_stored = s.scalar(
        select(Post.id).where(Post.channel_id == channel.id, Post.message_id.is_(None)).limit(1)
    )
    with_shingles = has_idless_incoming or has_idless_stored is not None
    existing = _load_existing(s, channel.id, with_shingles)
    ids: dict[int, int] = {}
    to_insert: list[tuple[int, dict]] = []
    now = utcnow()

    for index, record in enumerate(records):
        if not record.text.strip() and not record.media:
            summary.dropped += 1
            continue
        values = _post_values(record, channel, source_id)
        match = existing.get(record.key)
        record_shingles = shingles(record.text) if with_shingles else frozenset()
        if match is None and with_shingles:
            pool = (
                [e for e in existing.values() if not e.has_id]
                if record.message_id is not None
                else list(existing.values())
            )
            match = _find_near_duplicate(record_shingles, pool)
            if match is not None and record.message_id is None and match.text_len >= len(record.text):
                ids[index] = match.id  # a shorter copy (preview) of a stored post
                summary.unchanged += 1
                summary.unchanged_post_ids.append(match.id)
                continue
        if match is None:
            to_insert.append((index, values))
            placeholder = _Existing(
                -1,
                record.key,
                record.content_hash,
                len(record.text),
                record.message_id is not None,
                record_shingles,
            )
            existing[record.key] = placeholder
            continue
        if match.id == -1:  # duplicate inside this very batch: keep the first
            summary.merged += 1
            continue
        ids[index] = match.id
        same_date = record.date is None or match.date == _naive_utc(record.date)
        if match.content_hash == record.content_hash and match.key == record.key and same_date:
            summary.unchanged += 1
            summary.unchanged_post_ids.append(match.id)
            continue
        if match.key != record.key and record.message_id is None:
            # Longer id-less copy of an id-less post: keep its key, take the longer text.
            values["dedupe_key"] = match.key
        s.execute(update(Post).where(Post.id == match.id).values(**values, updated_at=now))
        match.content_hash, match.key, match.text_len = (
            record.content_hash,
            values["dedupe_key"],
            len(record.text),
        )
        match.date = _naive_utc(record.date)
        summary.updated += 1
        summary.updated_post_ids.append(match.id)
        summary.changed_post_ids.append(match.id)

    if to_insert:
        rows = s.execute(
            insert(Post).returning(Post.id, Post.dedupe_key, sort_by_parameter_order=True),
            [dict(values, created_at=now, updated_at=now) for _, values in to_insert],
        ).all()
        for (index, _values), row in zip(to_insert, rows, strict=True):
            ids[index] = row.id
            summary.changed_post_ids.append(row.id)
            summary.new_post_ids.append(row.id)
        summary.new += len(rows)
    return ids


def upsert_papers(s: Session, papers: list[PaperRecord], summary: IngestSummary) -> dict[str, int]:
    """Upsert papers by key; a stub never overwrites a paper that has real content."""
    ids: dict[str, int] = {}
    for paper in papers:
        key = paper.key
        if key in ids:
            continue
        row = s.scalar(select(Paper).where(Paper.dedupe_key == key))
        values = {
            "dedupe_key": key,
            "arxiv_id": paper.arxiv_id,
            "doi": paper.doi,
            "title": paper.title,
            "authors": paper.authors,
            "url": paper.url,
            "abstract": paper.abstract,
            "full_text": paper.full_text,
            "source_file": paper.source_file,
            "content_hash": paper.content_hash,
        }
        is_stub = not (paper.full_text or paper.abstract or paper.title)
        if row is None:
            row = Paper(**values)
            s.add(row)
            s.flush()
            if not is_stub:
                summary.new += 1
        elif not is_stub and row.content_hash != paper.content_hash:
            for name, value in values.items():
                if value not in (None, [], ""):
                    setattr(row, name, value)
            row.updated_at = utcnow()
            summary.updated += 1
        elif not is_stub:
            summary.unchanged += 1
        ids[key] = row.id
    return ids


def upsert_batch(
    s: Session, batch: SourceBatch, *, source_id: int | None, channel_hint: str | None
) -> IngestSummary:
    summary = IngestSummary(dropped=batch.skipped, changed_post_ids=[])
    paper_ids = upsert_papers(s, batch.papers, summary)

    by_channel: dict[tuple[str | None, str | None], list[PostRecord]] = {}
    for record in batch.posts:
        # A channel the source names itself wins; --channel names the ones it does not.
        username = record.channel or channel_hint or None
        by_channel.setdefault((username, record.channel_title), []).append(record)

    links: set[tuple[int, int]] = set()
    for (username, title), records in by_channel.items():
        channel = resolve_channel(s, username, title)
        post_ids = upsert_posts(s, channel, records, source_id, summary)
        for index, post_id in post_ids.items():
            for key in records[index].paper_keys:
                if key in paper_ids:
                    links.add((post_id, paper_ids[key]))
    if links:
        rows = s.execute(
            select(PostPaper.post_id, PostPaper.paper_id).where(PostPaper.post_id.in_({p for p, _ in links}))
        )
        known = {(row.post_id, row.paper_id) for row in rows}
        fresh = [{"post_id": p, "paper_id": q} for p, q in links - known]
        if fresh:
            s.execute(insert(PostPaper), fresh)
    return summary
