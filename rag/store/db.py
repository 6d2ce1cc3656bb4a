"""Opening the database (SQLite or PostgreSQL), migrating it, and the `Store` facade.

`Store` owns the engine and session factory. Writing a source's records happens in one
transaction (`Store.ingest_batch`), so a crash or Ctrl-C mid-way leaves the store as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import StoreError
from rag.store.models import Channel, Chunk, Paper, Post, Source, utcnow
from rag.store.records import IngestSummary, SourceBatch
from rag.store.upsert import upsert_batch


@dataclass
class PostView:
    """A stored post as plain values (cross-posting, the bot's post views)."""

    id: int
    channel: str
    message_id: int | None
    permalink: str | None
    date: datetime | None
    text: str
    entities: list[dict[str, Any]]
    links: list[str]
    media: list[dict[str, Any]]


def post_view(row: Post) -> PostView:
    return PostView(
        row.id,
        row.channel.username,
        row.message_id,
        row.permalink,
        row.date,
        row.text,
        list(row.entities or []),
        list(row.links or []),
        list(row.media or []),
    )


@dataclass
class SourceInfo:
    location: str
    format: str
    channel_hint: str | None
    content_hash: str | None
    last_ingested_at: datetime | None
    last_summary: str | None
    options: dict[str, Any] | None = None  # how the source was read (--tz, --chat)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (the bot) are not blocked by an ingest
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url, future=True, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StoreError(f"cannot use database URL {url!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]  # drivers add hint lines; keep one line
        raise StoreError(f"cannot open or migrate the database at {engine.url!r}: {reason}") from exc


class Store:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any exception."""
        with self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()

    # --- sources --------------------------------------------------------------------------
    def get_source(self, location: str) -> SourceInfo | None:
        with self.session() as s:
            row = s.scalar(select(Source).where(Source.location == location))
            return _source_info(row) if row else None

    def list_sources(self) -> list[SourceInfo]:
        with self.session() as s:
            return [_source_info(row) for row in s.scalars(select(Source).order_by(Source.id))]

    def touch_source(
        self,
        location: str,
        fmt: str,
        channel_hint: str | None,
        digest: str,
        summary: str,
        options: dict[str, Any] | None = None,
    ) -> None:
        """Record a source as seen without re-reading it (its content is unchanged)."""
        with self.session() as s:
            _upsert_source(s, location, fmt, channel_hint, digest, summary, options)

    # --- ingest ---------------------------------------------------------------------------
    def ingest_batch(
        self,
        batch: SourceBatch,
        *,
        channel_hint: str | None,
        digest: str | None,
        options: dict[str, Any] | None = None,
    ) -> IngestSummary:
        """Upsert one source's records in one transaction (see `rag.store.upsert`)."""
        try:
            with self.session() as s:
                source = _upsert_source(s, batch.location, batch.format, channel_hint, digest, None, options)
                summary = upsert_batch(s, batch, source_id=source.id, channel_hint=channel_hint)
                source.last_summary = summary.line()
                return summary
        except SQLAlchemyError as exc:
            raise StoreError(f"{batch.location}: the database refused the write: {exc.orig or exc}") from exc

    # --- reading --------------------------------------------------------------------------
    def has_posts(self) -> bool:
        with self.session() as s:
            return s.scalar(select(Post.id).limit(1)) is not None

    def count_source_posts(self, location: str) -> int:
        with self.session() as s:
            return (
                s.scalar(
                    select(func.count())
                    .select_from(Post)
                    .join(Source, Post.source_id == Source.id)
                    .where(Source.location == location)
                )
                or 0
            )

    def get_post(self, channel: str, message_id: int) -> PostView | None:
        """The post `t.me/<channel>/<message_id>`, or None when the store does not hold it."""
        with self.session() as s:
            row = s.scalar(
                select(Post)
                .join(Channel)
                .where(Channel.username == channel.lstrip("@"), Post.message_id == message_id)
                .order_by(Post.id)
                .limit(1)
            )
            return post_view(row) if row else None

    def known_message_ids(self, username: str) -> set[int]:
        with self.session() as s:
            rows = s.scalars(
                select(Post.message_id)
                .join(Channel)
                .where(Channel.username == username.lstrip("@"), Post.message_id.is_not(None))
            )
            return set(rows)

    def sample_texts(self, n: int, *, seed: int = 0) -> list[str]:
        """Up to `n` texts drawn from posts and papers (full text, else abstract), e.g. for calibration.

        A seeded shuffle in Python rather than ORDER BY random(), so the same store gives the same
        sample; only ids are read for the shuffle.
        """
        import random

        with self.session() as s:
            post_ids = [("post", i) for i in s.scalars(select(Post.id).where(func.length(Post.text) > 0))]
            paper_ids = [("paper", i) for i in s.scalars(select(Paper.id))]
            pool = post_ids + paper_ids
            texts: list[str] = []
            for kind, row_id in random.Random(seed).sample(pool, min(n, len(pool))):
                if kind == "post":
                    texts.append(s.get(Post, row_id).text)
                else:
                    paper = s.get(Paper, row_id)
                    text = paper.full_text or paper.abstract or paper.title or ""
                    if text.strip():
                        texts.append(text)
            return texts

    def stats(self) -> dict[str, Any]:
        with self.session() as s:
            counts = {
                "channels": s.scalar(select(func.count()).select_from(Channel)) or 0,
                "posts": s.scalar(select(func.count()).select_from(Post)) or 0,
                "papers": s.scalar(select(func.count()).select_from(Paper)) or 0,
                "chunks": s.scalar(select(func.count()).select_from(Chunk)) or 0,
            }
            sources = [
                {
                    "location": row.location,
                    "format": row.format,
                    "last_ingest": row.last_ingested_at.isoformat() if row.last_ingested_at else None,
                    "last_summary": row.last_summary,
                }
                for row in s.scalars(select(Source).order_by(Source.id))
            ]
        return {**counts, "sources": sources}


def _source_info(row: Source) -> SourceInfo:
    return SourceInfo(
        row.location,
        row.format,
        row.channel_hint,
        row.content_hash,
        row.last_ingested_at,
        row.last_summary,
        row.options,
    )


def _upsert_source(
    s: Session,
    location: str,
    fmt: str,
    channel_hint: str | None,
    digest: str | None,
    summary: str | None,
    options: dict[str, Any] | None = None,
) -> Source:
    row = s.scalar(select(Source).where(Source.location == location))
    if row is None:
        row = Source(location=location, format=fmt)
        s.add(row)
    row.format = fmt
    row.channel_hint = channel_hint or row.channel_hint
    row.content_hash = digest
    row.last_ingested_at = utcnow()
    if summary is not None:
        row.last_summary = summary
    if options is not None:
        row.options = options or None
    s.flush()
    return row


def open_store(url: str) -> Store:
    engine = make_engine(url)
    migrate(engine)
    return Store(engine)
