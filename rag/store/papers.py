"""Paper rows outside source batches: arXiv stubs still waiting for metadata, and saving
metadata fetched for them (`ingest --fetch-papers`). Writes go through `upsert_papers`, so a
fetched paper fills its stub in place and keeps the stub's links to posts."""

from __future__ import annotations

from sqlalchemy import select

from rag.store.db import Store
from rag.store.models import Paper
from rag.store.records import IngestSummary, PaperRecord
from rag.store.upsert import upsert_papers


def arxiv_stub_ids(store: Store) -> list[str]:
    """arXiv ids of papers known only as a mention (no title yet), oldest first."""
    with store.session() as s:
        rows = s.scalars(
            select(Paper.arxiv_id)
            .where(Paper.arxiv_id.is_not(None), Paper.title.is_(None))
            .order_by(Paper.id)
        )
        return [row for row in rows if row]


def save_papers(store: Store, papers: list[PaperRecord]) -> IngestSummary:
    """Upsert papers by key in one transaction; returns new/updated/unchanged counts."""
    summary = IngestSummary(changed_post_ids=[])
    with store.session() as s:
        upsert_papers(s, papers, summary)
    return summary
