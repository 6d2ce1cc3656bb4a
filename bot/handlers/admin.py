"""Admin commands: /reingest (one status message edited for progress, then the summary line),
/reindex, /stats, /sources, and uploads (a result.json export or a PDF) ingested into the corpus.

Admins are the user ids in TELEGRAM_ADMIN_IDS, checked once by the admin router's `IsAdmin` filter
(this module's `create_router`, which also carries the channel module's /watch and /unwatch); anyone
else gets a polite refusal and nothing runs.
One re-ingest at a time: a second request says that one is running.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.corpus_ops import CorpusOps
from bot.formatting import escape
from bot.handlers.channel import on_watch
from bot.handlers.common import IsAdmin, lang
from bot.settings import Settings
from bot.texts import t
from core.errors import IngestError

ADMIN_COMMANDS = ("reingest", "reindex", "stats", "sources")
WATCH_COMMANDS = ("watch", "unwatch")  # bot.handlers.channel: admitting live channels
MAX_DOWNLOAD = 20 * 1024 * 1024  # the public Bot API's getFile limit
UPLOAD_KINDS = (".json", ".pdf")


async def on_refused(message: Message) -> None:
    """An admin command from anyone else (the admin router's IsAdmin filter let it through)."""
    await message.reply(t(lang(message), "admin_only"), parse_mode=None)


async def _refuse_busy(message: Message, corpus: CorpusOps) -> bool:
    """One corpus job at a time: a second request is told one is running, and nothing starts."""
    if not corpus.busy:
        return False
    await message.reply(t(lang(message), "reingest_running"), parse_mode=None)
    return True


class _StatusMessage:
    """One message edited in place, at most once per `interval` seconds (the last text always lands)."""

    def __init__(self, message: Message, interval: float):
        self.message = message
        self.interval = interval
        self._last = time.monotonic()
        self._pending: asyncio.Task[None] | None = None

    def update(self, text: str) -> None:
        if time.monotonic() - self._last >= self.interval and (self._pending is None or self._pending.done()):
            self._last = time.monotonic()
            self._pending = asyncio.create_task(self._edit(text))

    async def _edit(self, text: str) -> None:
        await self.message.edit_text(text, parse_mode=None)

    async def final(self, text: str) -> None:
        if self._pending is not None:
            await asyncio.gather(self._pending, return_exceptions=True)
        wait = self.interval - (time.monotonic() - self._last)
        if wait > 0:
            await asyncio.sleep(wait)
        await self.message.edit_text(text, parse_mode=None)


async def on_reingest(message: Message, settings: Settings, corpus: CorpusOps) -> None:
    language = lang(message)
    if await _refuse_busy(message, corpus):
        return
    status = _StatusMessage(
        await message.reply(t(language, "reingest_start"), parse_mode=None), settings.stream_edit_interval_s
    )

    def progress(done: int, total: int, location: str) -> None:
        status.update(t(language, "reingest_progress", done=done, total=total, location=Path(location).name))

    try:
        report = await corpus.reingest(progress)
    except RuntimeError:  # lost the race to another /reingest
        await status.final(t(language, "reingest_running"))
        return
    except IngestError as exc:
        await status.final(t(language, "user_error", msg=str(exc)))
        return
    errors = t(language, "reingest_errors", lines="\n".join(report.errors[:10])) if report.errors else ""
    await status.final(t(language, "reingest_done", summary=report.summary.line(), errors=errors))


async def on_reindex(message: Message, corpus: CorpusOps) -> None:
    language = lang(message)
    if await _refuse_busy(message, corpus):
        return
    status = await message.reply(t(language, "reindex_start"), parse_mode=None)
    await corpus.reindex()
    await status.edit_text(t(language, "reindex_done"), parse_mode=None)


async def on_stats(message: Message, corpus: CorpusOps) -> None:
    stats = await corpus.stats()
    await message.reply(
        t(lang(message), "stats", **{k: stats[k] for k in ("channels", "posts", "papers", "chunks")}),
        parse_mode=None,
    )


async def on_sources(message: Message, corpus: CorpusOps) -> None:
    language = lang(message)
    sources = await corpus.sources()
    if not sources:
        await message.reply(t(language, "no_sources"), parse_mode=None)
        return
    lines = [
        f"• {s.location} ({s.format}, {s.last_ingested_at:%Y-%m-%d %H:%M})"
        if s.last_ingested_at
        else f"• {s.location} ({s.format})"
        for s in sources
    ]
    text = t(language, "sources_list", n=len(sources), lines="\n".join(lines))
    await message.reply(text[:4000], parse_mode=None)


def _safe_name(name: str, limit: int = 120) -> str:
    """A file name safe to create: word characters, dots and dashes only, at most `limit` UTF-8
    bytes with the extension kept (a 300-character name exceeds the 255-byte limit of ext4)."""
    name = re.sub(r"[^\w.\-]+", "_", name).strip("._") or "upload"
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem or len(suffix) > 10:
        stem, suffix = name, ""
    suffix = f".{suffix}" if suffix else ""
    while stem and len((stem + suffix).encode()) > limit:
        stem = stem[: -max(1, (len((stem + suffix).encode()) - limit) // 4)]
    return (stem.rstrip("._") or "upload") + suffix


async def on_upload(message: Message, bot: Bot, settings: Settings, corpus: CorpusOps) -> None:
    language = lang(message)
    document = message.document
    assert document is not None
    name = _safe_name(document.file_name or "upload")
    is_pdf = name.lower().endswith(".pdf") or document.mime_type == "application/pdf"
    if not (is_pdf or name.lower().endswith(".json") or document.mime_type == "application/json"):
        await message.reply(t(language, "file_kind"), parse_mode=None)
        return
    if (document.file_size or 0) > MAX_DOWNLOAD:
        await message.reply(t(language, "file_too_big"), parse_mode=None)
        return
    if await _refuse_busy(message, corpus):
        return
    status = await message.reply(t(language, "file_received", name=name), parse_mode=None)
    target = settings.data_dir / "uploads" / _safe_name(document.file_unique_id) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    await bot.download(document, destination=target)
    report = await corpus.ingest_files([target])
    if report.errors:
        # The pipeline names the file by its full path; the admin knows it by its name.
        errors = "; ".join(
            e.replace(str(target.resolve()), name).replace(str(target), name) for e in report.errors
        )
        await status.edit_text(t(language, "user_error", msg=escape(errors)), parse_mode="HTML")
        return
    await status.edit_text(
        t(language, "file_done", name=name, summary=report.summary.line()), parse_mode=None
    )


def create_router() -> Router:
    """The admin commands behind one `IsAdmin` filter, then a refusal for everyone else.

    A router-level filter gates every handler of the router (and of any router included in it),
    so an admin command added here cannot forget the check.
    """
    admin = Router(name="admin")
    admin.message.filter(IsAdmin())
    admin.callback_query.filter(IsAdmin())
    admin.message.register(on_reingest, Command("reingest"))
    admin.message.register(on_reindex, Command("reindex"))
    admin.message.register(on_stats, Command("stats"))
    admin.message.register(on_sources, Command("sources"))
    admin.message.register(on_upload, F.document, F.chat.type == "private")
    admin.message.register(on_watch, Command(*WATCH_COMMANDS), F.chat.type == "private")
    # Non-admins' documents go on to the ask router, which says only admins add files.
    refused = Router(name="admin.refused")
    refused.message.filter(~IsAdmin())
    refused.message.register(on_refused, Command(*ADMIN_COMMANDS))
    refused.message.register(on_refused, Command(*WATCH_COMMANDS), F.chat.type == "private")
    root = Router(name="admin.root")
    root.include_routers(admin, refused)
    return root
