"""Schema migrations keep the stored corpus: upgrade and downgrade on a store that holds data."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import func, select

from ingest.pipeline import ingest_locations
from rag.store.db import migrate
from rag.store.models import Chunk, Post
from tests.ingest.exports import message, write_export


def _alembic(store, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", "rag/store/migrations")
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)


def test_downgrade_to_0001_and_back_keeps_posts_chunks_and_sources(store, tmp_path):
    posts = [message(1, "Пост про GPTQ и квантование весов."), message(2, "Второй пост.")]
    export = write_export(tmp_path / "result.json", posts)
    ingest_locations(store, [str(export)])
    with store.session() as s:  # chunks as an index sync cuts them
        s.add_all(
            Chunk(post_id=i, text=t, content_hash=str(i)) for i, t in s.execute(select(Post.id, Post.text))
        )
    with store.session() as s:
        before = (s.scalar(select(func.count(Post.id))), s.scalar(select(func.count(Chunk.id))))
        sourced = s.scalar(select(func.count(Post.id)).where(Post.source_id.is_not(None)))
    assert before[0] == 2 and before[1] > 0 and sourced == 2

    _alembic(store, "downgrade", "0001")  # SQLite rebuilds posts and sources (batch mode)
    migrate(store.engine)
    with store.session() as s:
        after = (s.scalar(select(func.count(Post.id))), s.scalar(select(func.count(Chunk.id))))
        assert after == before  # no chunk cascade-deleted by the table rebuild
        assert s.scalar(select(func.count(Post.id)).where(Post.source_id.is_not(None))) == 2
