"""The writer lock on PostgreSQL: processes on different hosts (different data dirs) sharing one
database also take turns, through a session-level advisory lock (CI runs a server)."""

from __future__ import annotations

import os
import threading

import pytest
from sqlalchemy import create_engine

from bot.writer_lock import PG_LOCK_KEY, writer_lock
from rag.store.db import make_engine

PG_URL = os.environ.get("RESEARCH_BOT_TEST_PG_URL")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="set RESEARCH_BOT_TEST_PG_URL (CI does) to run against PostgreSQL"),
]


def test_writers_with_different_data_dirs_take_turns_on_one_database(tmp_path):
    assert PG_URL is not None
    engine, probe = make_engine(PG_URL), create_engine(PG_URL)
    waited: list[str] = []
    entered = threading.Event()
    try:
        with writer_lock(tmp_path / "host-a", "ingest", engine=engine):
            with probe.connect() as connection:  # any other session is locked out
                got = connection.exec_driver_sql(f"SELECT pg_try_advisory_lock({PG_LOCK_KEY})").scalar()
                assert got is False

            def host_b() -> None:
                with writer_lock(tmp_path / "host-b", "reindex", engine=engine, on_wait=waited.append):
                    entered.set()

            thread = threading.Thread(target=host_b)
            thread.start()
            assert not entered.wait(1.0)  # host B waits while host A writes
        thread.join(60)
        assert entered.is_set() and len(waited) == 1 and "another host" in waited[0]
    finally:
        engine.dispose()
        probe.dispose()
