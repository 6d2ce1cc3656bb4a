"""Corpus operations the bot triggers: ingest files, re-ingest, live channel posts, index sync.

Wraps the ingest pipeline and the RAG service's `sync`/`reindex` behind async methods that run
the blocking work in a thread, so the event loop keeps serving other chats. One re-ingest (or
reindex) at a time: `busy` tells a second caller that one is running. Knows nothing of Telegram.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.seams import IndexUpkeep
from bot.writer_lock import writer_lock
from core.errors import IngestError
from ingest.bot_api import location_for, message_batch
from ingest.pipeline import IngestReport, ingest_locations, reingest_all, rereadable_sources
from rag.store import IngestSummary, SourceInfo, Store

if TYPE_CHECKING:
    from aiogram.types import Message

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]  # (done, total, location)


@dataclass
class CorpusOps:
    store: Store
    rag: IndexUpkeep | None = None  # RagService, or None when retrieval is not available
    # The data dir whose writer lock (bot.writer_lock) every job takes, so a CLI `ingest` and the
    # bot never write at once; None (tests with fakes): no cross-process lock.
    data_dir: Path | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _live_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def _writing(self, what: str) -> contextlib.AbstractContextManager[None]:
        """Held inside the worker thread: waiting for a CLI run never blocks the event loop."""
        if self.data_dir is None:
            return contextlib.nullcontext()
        return writer_lock(
            self.data_dir, f"bot {what}", engine=self.store.engine, on_wait=lambda line: log.info("%s", line)
        )

    def _sync_index(self) -> None:
        if self.rag is not None:
            self.rag.sync()

    async def ingest_files(self, paths: list[Path], channel_hint: str | None = None) -> IngestReport:
        async with self._lock:

            def work() -> IngestReport:
                with self._writing("upload"):
                    report = ingest_locations(self.store, [str(p) for p in paths], channel_hint=channel_hint)
                    if report.sources:
                        self._sync_index()
                    return report

            return await asyncio.to_thread(work)

    async def reingest(self, progress: Progress | None = None) -> IngestReport:
        """Re-run every file source (`ingest.pipeline.reingest_all`, as `ingest --all` does);
        `progress(done, total, location)` is called on the event loop after each source."""
        if self._lock.locked():
            raise RuntimeError("a re-ingest is already running")
        async with self._lock:
            loop = asyncio.get_running_loop()
            sources = await asyncio.to_thread(rereadable_sources, self.store)
            if not sources:
                raise IngestError("no sources ingested yet: send a result.json export or a PDF first")
            done = 0

            def on_source(location: str, _summary: IngestSummary | None, _error: str | None) -> None:
                nonlocal done
                done += 1
                if progress is not None:
                    loop.call_soon_threadsafe(progress, done, len(sources), location)

            def work() -> IngestReport:
                with self._writing("reingest"):
                    report = reingest_all(self.store, sources, on_source=on_source)
                    self._sync_index()
                    return report

            return await asyncio.to_thread(work)

    async def reindex(self) -> None:
        if self._lock.locked():
            raise RuntimeError("a re-ingest is already running")
        async with self._lock:
            rag = self.rag
            if rag is not None:

                def work() -> None:
                    with self._writing("reindex"):
                        rag.reindex()

                await asyncio.to_thread(work)

    async def ingest_live(self, message: Message, channel_key: str) -> IngestSummary:
        """Store and index one channel post at once (live posts are serialized among themselves).

        `channel_key` is the store identity `bot.channels.LiveChannels.admit` bound to the post's
        chat id; it replaces whatever username or title the post carries."""
        batch = message_batch(message)
        for record in batch.posts:
            record.channel = channel_key
        batch.location = location_for(channel_key)
        async with self._live_lock:

            def work() -> IngestSummary:
                with self._writing("channel post"):
                    summary = self.store.ingest_batch(batch, channel_hint=channel_key, digest=None)
                    if summary.new or summary.updated:
                        self._sync_index()
                    return summary

            return await asyncio.to_thread(work)

    async def stats(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.store.stats)

    async def sources(self) -> list[SourceInfo]:
        return await asyncio.to_thread(self.store.list_sources)
