"""SQLAlchemy 2.0 typed ORM models of the corpus. Schema changes go through Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Channel(Base):
    __tablename__ = "channels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    title: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    posts: Mapped[list[Post]] = relationship(back_populates="channel")


class Source(Base):
    """A place the corpus was read from; `ingest --all` re-runs every row."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    location: Mapped[str] = mapped_column(String(2048), unique=True)
    format: Mapped[str] = mapped_column(String(64))
    channel_hint: Mapped[str | None] = mapped_column(String(128))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    last_ingested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_summary: Mapped[str | None] = mapped_column(String(512))
    # How the source was read ({"tz": "Europe/Moscow", "chats": [...]}): `ingest --all` reuses it.
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Post(Base):
    __tablename__ = "posts"
    __table_args__ = (
        UniqueConstraint("channel_id", "dedupe_key", name="uq_posts_channel_key"),
        Index("ix_posts_channel_message", "channel_id", "message_id"),
        Index("ix_posts_date", "date"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    # "id:<message_id>" when Telegram's id is known, else "hash:<content hash>".
    dedupe_key: Mapped[str] = mapped_column(String(80))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    permalink: Mapped[str | None] = mapped_column(String(512))
    date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    edited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    author: Mapped[str | None] = mapped_column(String(256))
    text: Mapped[str] = mapped_column(Text)
    entities: Mapped[list[Any]] = mapped_column(JSON, default=list)
    links: Mapped[list[Any]] = mapped_column(JSON, default=list)
    forwarded_from: Mapped[str | None] = mapped_column(String(256))
    reply_to: Mapped[int | None] = mapped_column(BigInteger)  # a message of the same channel
    # {"chat": peer id or None, "message_id": id or None}: a reply to a message in another chat.
    reply_to_other: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    views: Mapped[int | None] = mapped_column(Integer)
    reactions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    media: Mapped[list[Any]] = mapped_column(JSON, default=list)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    channel: Mapped[Channel] = relationship(back_populates="posts")


class Paper(Base):
    __tablename__ = "papers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "arxiv:<id>", "doi:<doi>" or "hash:<content hash>".
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    arxiv_id: Mapped[str | None] = mapped_column(String(64), index=True)
    doi: Mapped[str | None] = mapped_column(String(256))
    title: Mapped[str | None] = mapped_column(Text)
    authors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    url: Mapped[str | None] = mapped_column(String(1024))
    abstract: Mapped[str | None] = mapped_column(Text)
    full_text: Mapped[str | None] = mapped_column(Text)
    source_file: Mapped[str | None] = mapped_column(String(2048))
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PostPaper(Base):
    """A post mentions a paper (arXiv id, DOI or paper URL found in its text or links)."""

    __tablename__ = "post_papers"

    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True)
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True)


class Chunk(Base):
    """A retrieval unit cut from a post or a paper; the indexes map their ids to these rows."""

    __tablename__ = "chunks"
    __table_args__ = (Index("ix_chunks_post", "post_id"), Index("ix_chunks_paper", "paper_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int | None] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    paper_id: Mapped[int | None] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer, default=0)
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Conversion(Base):
    """A cross-post rendering kept so the bot can show history and skip re-translation."""

    __tablename__ = "conversions"
    __table_args__ = (Index("ix_conversions_lookup", "source_hash", "target", "lang"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int | None] = mapped_column(ForeignKey("posts.id", ondelete="SET NULL"))
    source_hash: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(32))
    lang: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
