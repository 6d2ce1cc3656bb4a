"""One writer at a time per data dir: `ingest`, `reindex`, `demo`, `migrate` and the bot's corpus
jobs take `writer_lock` before they change the store or the indexes.

Two `research-bot ingest` runs of the same data used to race (one died with "UNIQUE constraint
failed"); now the second one says in one line what it is waiting for, waits, and then runs on
the store the first one left. The lock is an OS file lock (`filelock`, flock on Linux) on
`DATA_DIR/.writer.lock`, so a run killed with -9 releases it. With PostgreSQL the store may be
shared by processes on several hosts, each with its own data dir: there the lock also takes a
session-level `pg_advisory_lock` on the database, which the server releases when the
connection ends.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

from filelock import FileLock, Timeout
from sqlalchemy.exc import SQLAlchemyError

from core.errors import StoreError
from rag.redact import redact

LOCK_NAME = ".writer.lock"
OWNER_NAME = ".writer.owner"
PG_LOCK_KEY = 0x7265_7362  # "resb": one advisory lock id for the whole corpus


@contextlib.contextmanager
def writer_lock(
    data_dir: Path, what: str, *, engine: Engine | None = None, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the data dir's writer lock (and PostgreSQL's advisory lock when `engine` is one) for
    the block. When another process holds it, `on_wait` gets one line naming that process, then
    this call blocks until it is free."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(data_dir / LOCK_NAME), thread_local=False)
    owner = data_dir / OWNER_NAME
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if on_wait is not None:
            try:
                holder = owner.read_text(encoding="utf-8").strip() or "another research-bot command"
            except OSError:
                holder = "another research-bot command"
            on_wait(f"waiting for {holder} to finish writing to {data_dir} …")
        lock.acquire()
    try:
        with contextlib.suppress(OSError):
            owner.write_text(f"research-bot {what} (pid {os.getpid()})", encoding="utf-8")
        with _pg_advisory_lock(engine, what, on_wait):
            yield
    finally:
        lock.release()


@contextlib.contextmanager
def _pg_advisory_lock(
    engine: Engine | None, what: str, on_wait: Callable[[str], None] | None
) -> Iterator[None]:
    if engine is None or engine.dialect.name != "postgresql":
        yield
        return
    try:
        connection = engine.connect()
    except SQLAlchemyError as exc:  # one line, no password (the URL's repr hides it; redact the rest)
        reason = redact(str(getattr(exc, "orig", None) or exc).strip().splitlines()[0])
        raise StoreError(f"cannot connect to the database at {engine.url!r}: {reason}") from None
    with connection:
        got = connection.exec_driver_sql(f"SELECT pg_try_advisory_lock({PG_LOCK_KEY})").scalar()
        if not got:
            if on_wait is not None:
                on_wait(
                    f"waiting for another host's research-bot command to finish writing to the database ({what})"
                )
            connection.exec_driver_sql(f"SELECT pg_advisory_lock({PG_LOCK_KEY})")
        try:
            yield
        finally:
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({PG_LOCK_KEY})")
