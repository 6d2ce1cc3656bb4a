"""The store on a real PostgreSQL server (CI installs and starts one on 127.0.0.1)."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, select, text

from ingest.pipeline import ingest_locations
from rag.store import open_store
from rag.store.models import Post
from tests.ingest.exports import message, write_export

PG_URL = os.environ.get("RESEARCH_BOT_TEST_PG_URL")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="set RESEARCH_BOT_TEST_PG_URL (CI does) to run against PostgreSQL"),
]


@pytest.fixture
def pg_store():
    """A fresh schema per test, so runs never see each other's rows."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    store = open_store(f"{PG_URL}{sep}options=-csearch_path%3D{schema}")
    yield store
    store.close()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def test_sample_corpus_on_postgres_matches_sqlite(pg_store, store, sample_corpus):
    pg = ingest_locations(pg_store, [str(sample_corpus)])
    lite = ingest_locations(store, [str(sample_corpus)])
    assert pg.ok and lite.ok
    assert (pg.summary.new, pg.summary.updated) == (lite.summary.new, lite.summary.updated)
    assert pg_store.stats()["posts"] == store.stats()["posts"] == 56
    with pg_store.session() as s:
        assert s.scalar(select(Post.permalink).where(Post.message_id == 475)) == (
            "https://t.me/quant_prune_distill/475"
        )


def test_incremental_reingest_on_postgres(pg_store, tmp_path):
    path = write_export(tmp_path / "result.json", [message(1, "раз"), message(2, "два")])
    ingest_locations(pg_store, [str(path)], channel_hint="chan")
    write_export(path, [message(1, "раз (правка)"), message(2, "два"), message(3, "три")])
    report = ingest_locations(pg_store, [str(path)], channel_hint="chan")
    assert (report.summary.new, report.summary.updated, report.summary.unchanged) == (1, 1, 1)
    with pg_store.session() as s:
        post = s.scalar(select(Post).where(Post.message_id == 1))
    assert post.text == "раз (правка)" and post.date.tzinfo is not None
