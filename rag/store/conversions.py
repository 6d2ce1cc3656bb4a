"""Cross-post conversions in the store: saved per (source hash, target, language) so the bot can
show history and a post is not translated again; plus reading posts as plain `PostView`s.

One row per (source_hash, target, lang): converting again replaces the payload. All rows of one
conversion are written in one transaction, so a failure leaves nothing half-written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError

from core.errors import StoreError
from rag.store.db import PostView, Store, post_view
from rag.store.models import Conversion, Post, utcnow


@dataclass
class ConversionRow:
    source_hash: str
    target: str
    lang: str
    payload: dict[str, Any]
    post_id: int | None = None
    created_at: datetime | None = None


def find_conversion(store: Store, source_hash: str, target: str, lang: str) -> ConversionRow | None:
    with store.session() as s:
        row = s.scalar(
            select(Conversion)
            .where(
                Conversion.source_hash == source_hash, Conversion.target == target, Conversion.lang == lang
            )
            .order_by(Conversion.id.desc())
            .limit(1)
        )
        return _row(row) if row else None


def save_conversions(store: Store, rows: list[ConversionRow]) -> None:
    """Write all rows in one transaction, replacing earlier rows with the same key."""
    try:
        with store.session() as s:
            for item in rows:
                s.execute(
                    delete(Conversion).where(
                        Conversion.source_hash == item.source_hash,
                        Conversion.target == item.target,
                        Conversion.lang == item.lang,
                    )
                )
                s.add(
                    Conversion(
                        post_id=item.post_id,
                        source_hash=item.source_hash,
                        target=item.target,
                        lang=item.lang,
                        payload=item.payload,
                        created_at=utcnow(),
                    )
                )
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot save the conversion: {getattr(exc, 'orig', None) or exc}") from exc


def list_conversions(store: Store, *, post_id: int | None = None, limit: int = 50) -> list[ConversionRow]:
    """Newest first; internal rows (targets starting with `_`, e.g. the cached translation) excluded."""
    with store.session() as s:
        query = select(Conversion).where(~Conversion.target.startswith("_", autoescape=True))
        if post_id is not None:
            query = query.where(Conversion.post_id == post_id)
        rows = s.scalars(query.order_by(Conversion.created_at.desc(), Conversion.id.desc()).limit(limit))
        return [_row(row) for row in rows]


def iter_post_views(store: Store) -> Iterator[PostView]:
    with store.session() as s:
        rows = [post_view(row) for row in s.scalars(select(Post).order_by(Post.id))]
    yield from rows


def _row(row: Conversion) -> ConversionRow:
    return ConversionRow(
        row.source_hash, row.target, row.lang, dict(row.payload), row.post_id, row.created_at
    )
