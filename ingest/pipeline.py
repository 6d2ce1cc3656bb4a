"""Ingest orchestration: expand locations, read, detect the format, parse, store; one source at a time.

Each source is one transaction in the store. A source whose bytes are unchanged since its last
ingest is not parsed again (the store remembers its digest), which is what makes re-ingest fast.
Errors in one source are reported as one line and the other sources still ingest.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import IngestError
from ingest.encoding import check_not_double_encoded, utf16_to_utf8
from ingest.options import ReadOptions
from ingest.registry import RawSource, detect
from rag.store import IngestSummary, SourceInfo, Store

log = logging.getLogger(__name__)
SourceHook = Callable[[str, IngestSummary | None, str | None], None]  # (location, summary, error)
URL = re.compile(r"^https?://", re.I)
# Files that are never sources: hidden files, editor backups, media of exports.
IGNORED_SUFFIXES = {
    ".jpg",
    ".jpeg",
    ".png",
    ".gif",
    ".webp",
    ".tgs",
    ".svg",
    ".ico",
    ".css",
    ".js",
    ".mp4",
    ".mov",
    ".webm",
    ".mkv",
    ".avi",
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".m4a",
    ".wav",
}


@dataclass
class IngestReport:
    summary: IngestSummary = field(default_factory=lambda: IngestSummary(changed_post_ids=[]))
    errors: list[str] = field(default_factory=list)  # one line per failed source (exit 2)
    notes: list[str] = field(default_factory=list)  # what the user should know; nothing failed
    sources: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def fail(self, error: str) -> None:
        self.errors.append(error)
        self.summary.failed += 1


def _is_export_index(path: Path) -> bool:
    """A full-account HTML export's own pages (`export_results.html`, `lists/chats.html`, ...):
    tables of contents without messages, which a folder ingest passes over; its chats are
    `chats/chat_NNN/messages*.html`."""
    name = path.name.lower()
    return name == "export_results.html" or (path.parent.name == "lists" and name.endswith(".html"))


def expand(locations: Iterable[str]) -> tuple[list[str], list[str]]:
    """Files inside folders (recursively, sorted), URLs as is; returns (sources, errors)."""
    found: list[str] = []
    errors: list[str] = []
    for location in locations:
        if URL.match(location):
            found.append(location)
            continue
        path = Path(location)
        if path.is_dir():
            files = [
                p
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
                and p.suffix.lower() not in IGNORED_SUFFIXES
                and not _is_export_index(p)
            ]
            if not files:
                errors.append(f"{location}: folder has no files to ingest")
            found.extend(str(p) for p in files)
        elif path.is_file():
            found.append(str(path))
        else:
            errors.append(f"{location}: no such file or folder")
    return found, errors


def _parse(raw: RawSource):
    parser = detect(raw)
    try:
        return parser.parse(raw)
    except IngestError:
        raise
    except RecursionError:
        raise IngestError(f"{raw.location}: nested too deeply to parse as {parser.name}") from None
    except Exception as exc:
        # A parser bug must not abort the run and hide the other sources: one line, then go on.
        log.exception("parser %s failed on %s", parser.name, raw.location)
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise IngestError(
            f"{raw.location}: cannot be parsed as {parser.name} ({type(exc).__name__}{': ' + reason if reason else ''})"
        ) from exc


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _repair_text(batch) -> None:
    """Lone UTF-16 surrogates (no database stores them) in any parser's output become U+FFFD, with
    a note; the JSON parser already repairs its messages and names them in its own note."""
    repaired = 0
    for record in [*batch.posts, *batch.papers]:
        for name in ("text", "author", "forwarded_from", "channel_title", "title", "abstract", "full_text"):
            value = getattr(record, name, None)
            if isinstance(value, str) and _LONE_SURROGATE.search(value):
                setattr(record, name, _LONE_SURROGATE.sub("\ufffd", value))
                repaired += 1
        if hasattr(record, "authors") and any(_LONE_SURROGATE.search(a) for a in record.authors):
            record.authors = [_LONE_SURROGATE.sub("\ufffd", a) for a in record.authors]
            repaired += 1
    if repaired:
        batch.notes.append(
            f"{batch.location}: {repaired} text field{'s' if repaired != 1 else ''} with broken characters "
            "(lone UTF-16 surrogates) kept with U+FFFD in their place"
        )


def _ingest_file(
    store: Store, location: str, channel_hint: str | None, force: bool, options: ReadOptions, notes: list[str]
) -> IngestSummary:
    path = Path(location)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IngestError(f"{location}: cannot read ({exc.strerror})") from exc
    digest = hashlib.sha256(data).hexdigest()
    known = store.get_source(str(path.resolve()))
    stored_options = options.stored()
    if (
        known
        and known.content_hash == digest
        and not force
        and known.channel_hint == channel_hint
        and (known.options or {}) == stored_options
    ):
        unchanged = store.count_source_posts(str(path.resolve()))
        store.touch_source(
            known.location, known.format, channel_hint, digest, known.last_summary or "", stored_options
        )
        return IngestSummary(unchanged=unchanged, changed_post_ids=[])
    location = str(path.resolve())
    readable, encoding_note = utf16_to_utf8(location, data)
    raw = RawSource(location=location, data=readable, channel_hint=channel_hint, path=path, options=options)
    batch = _parse(raw)
    _repair_text(batch)
    check_not_double_encoded(
        location, [p.text for p in batch.posts] + [p.full_text or "" for p in batch.papers]
    )
    notes.extend([encoding_note] if encoding_note else [])
    notes.extend(batch.notes)
    return store.ingest_batch(batch, channel_hint=channel_hint, digest=digest, options=stored_options)


def _ingest_url(store: Store, url: str, channel_hint: str | None) -> IngestSummary:
    from ingest.live import fetch_channel

    username = channel_hint or url.rstrip("/").split("/")[-1].split("?")[0]
    batch = fetch_channel(url, known_ids=store.known_message_ids(username))
    return store.ingest_batch(batch, channel_hint=channel_hint, digest=None)


def ingest_locations(
    store: Store,
    locations: Iterable[str],
    *,
    channel_hint: str | None = None,
    force: bool = False,
    options: ReadOptions | None = None,
    on_source: SourceHook | None = None,
) -> IngestReport:
    """Ingest every location; `on_source(location, summary, error)` is called after each one."""
    report = IngestReport()
    options = options or ReadOptions()
    sources, errors = expand(locations)
    for error in errors:
        report.fail(error)
    for location in sources:
        try:
            if URL.match(location):
                summary = _ingest_url(store, location, channel_hint)
            else:
                summary = _ingest_file(store, location, channel_hint, force, options, report.notes)
        except IngestError as exc:
            report.fail(str(exc))
            if on_source:
                on_source(location, None, str(exc))
            continue
        report.sources += 1
        report.summary.add(summary)
        if on_source:
            on_source(location, summary, None)
    return report


def rereadable_sources(store: Store) -> list[SourceInfo]:
    """The sources a re-ingest reads again: every one the store remembers except live channel
    posts (the bot's channel_post updates), which have no file behind them."""
    from ingest.bot_api import FORMAT as LIVE_FORMAT

    return [info for info in store.list_sources() if info.format != LIVE_FORMAT]


def reingest_all(
    store: Store,
    sources: list[SourceInfo] | None = None,
    *,
    force: bool = False,
    on_source: SourceHook | None = None,
) -> IngestReport:
    """Re-run `sources` (default: `rereadable_sources`), each read with the options (--tz, --chat)
    it was first ingested with: `ingest --all` and the bot's /reingest. `on_source(location,
    summary, error)` is called exactly once per source, so a progress total of `len(sources)` ends full."""
    sources = rereadable_sources(store) if sources is None else sources
    if not sources:
        raise IngestError("no sources ingested yet: run research-bot ingest PATH first")
    report = IngestReport()
    for info in sources:
        try:
            options = ReadOptions.from_stored(info.options)
        except IngestError as exc:  # a zone this machine does not know
            report.fail(f"{info.location}: {exc}")
            if on_source:
                on_source(info.location, None, report.errors[-1])
            continue
        one = ingest_locations(
            store, [info.location], channel_hint=info.channel_hint, options=options, force=force
        )
        report.summary.add(one.summary)
        report.errors.extend(one.errors)
        report.notes.extend(one.notes)
        report.sources += one.sources
        if on_source:
            on_source(info.location, one.summary if one.ok else None, "; ".join(one.errors) or None)
    return report
