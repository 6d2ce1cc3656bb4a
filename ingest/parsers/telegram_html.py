"""Telegram Desktop HTML export (`messages.html`, `messages2.html`, …): one file is one source.

Markup as `export_output_html.cpp` writes it: `div.message.default#messageNNN` with
`.date[title="DD.MM.YYYY HH:MM:SS UTC+03:00"]`, `.from_name` (absent on "joined" follow-ups of
the same sender), `.forwarded.body` (its own `.from_name`), `.reply_to` (`GoToMessage(id)`),
`.media_wrap`, `.text`, `.signature`, `span.reactions`. Service messages are skipped. The chat
title is `.page_header .text.bold`; the export has no username, so permalinks need `--channel`.
The export has no views or edit dates. A reply to another chat's message is written as "In reply to
a message in another chat" without a link; old exports write dates without a zone (stored as UTC
unless `--tz` names the exporter's zone, with a note). The files of one export (`messages.html`,
`messages2.html`, …) are one chat even when their page titles differ: every file takes the title
of the export's first file.
"""

from __future__ import annotations

import functools
import html
import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

from core.errors import IngestError
from ingest.clean import finish_batch
from ingest.html_text import Element, by_class, child, class_list, message_text, own_text, parse_html, squeeze
from ingest.options import local_to_aware, no_zone_note
from ingest.registry import RawSource, register
from rag.store.records import PostRecord, SourceBatch

DATE_TITLE = re.compile(r"(\d{2})\.(\d{2})\.(\d{4}) (\d{2}):(\d{2}):(\d{2})(?: UTC([+-])(\d{2}):?(\d{2}))?")
MESSAGE_ID = re.compile(r"^message(-?\d+)$")
GO_TO = re.compile(r"(?:GoToMessage\(|go_to_message)(\d+)")
VIA_BOT = re.compile(r"\s+via @\w+$")
OTHER_CHAT = "another chat"  # "In reply to a message in another chat": no link, no id
EXPORT_FILE = re.compile(r"^messages(\d*)\.html?$", re.I)
PAGE_TITLE = re.compile(r'class="page_header".*?<div class="text bold">\s*(.*?)\s*</div>', re.S | re.I)
# Generic media cards: `media_<kind>` class → media type (JSON export's `media_type` names).
GENERIC_MEDIA = {
    "media_photo": "photo",
    "media_video": "video_file",
    "media_file": "file",
    "media_voice_message": "voice_message",
    "media_audio_file": "audio_file",
    "media_contact": "contact",
    "media_location": "location",
    "media_live_location": "location",
    "media_venue": "venue",
    "media_game": "game",
    "media_invoice": "invoice",
    "media_call": "call",
}
WRAPPED_MEDIA = {
    "photo_wrap": "photo",
    "video_file_wrap": "video_file",
    "animated_wrap": "animation",
    "sticker_wrap": "sticker",
}


def parse_export_date(title: str | None, zone: tzinfo | None = None) -> datetime | None:
    """`25.01.2023 12:34:56 UTC+03:00` → aware datetime (old exports without the zone: in `zone`,
    the exporter's zone when the user named it, else UTC)."""
    match = DATE_TITLE.search(title or "")
    if not match:
        return None
    day, month, year, hour, minute, second, sign, tz_h, tz_m = match.groups()
    tz = None
    if sign:
        delta = timedelta(hours=int(tz_h), minutes=int(tz_m))
        tz = timezone(delta if sign == "+" else -delta)
    try:
        value = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=tz)
    except ValueError:
        return None
    return local_to_aware(value, zone)


def _has_zone(title: str | None) -> bool:
    match = DATE_TITLE.search(title or "")
    return bool(match and match.group(7))


def _first_file_title(path: Path | None) -> str | None:
    """The chat title of the export's first file (`messages.html`) when `path` is a later one."""
    if path is None:
        return None
    match = EXPORT_FILE.match(path.name)
    if match is None or match.group(1) in ("", "1"):
        return None
    return _page_title(path.with_name("messages.html"))


def _page_title(first: Path) -> str | None:
    try:
        with first.open("rb") as handle:
            head = handle.read(16_384).decode("utf-8", errors="replace")
    except OSError:
        return None
    found = PAGE_TITLE.search(head)
    title = re.sub(r"\s+", " ", html.unescape(found.group(1))).strip() if found else ""
    return title or None


ACCOUNT_CHAT_DIR = re.compile(r"^chat_\d+$")


@functools.lru_cache(maxsize=8)
def _shared_titles(chats_dir: Path, _mtime_ns: int) -> frozenset[str]:
    """Page titles that several chat folders of a full-account export share (read once per folder
    state: a 2,000-chat export would otherwise read every chat's head once per file)."""
    titles = Counter(
        _page_title(folder / "messages.html")
        for folder in chats_dir.iterdir()
        if ACCOUNT_CHAT_DIR.match(folder.name)
    )
    return frozenset(title for title, n in titles.items() if title and n > 1)


def _account_chat_title(path: Path | None, title: str | None) -> str | None:
    """Chats are stored by title, and private chats are named after the contact: in a full-account
    export (`chats/chat_NNN/messages*.html`) a title several chats share gets the folder name, so
    two people called Иван stay two channels (the JSON reader appends the chat id likewise)."""
    if path is None or title is None or not ACCOUNT_CHAT_DIR.match(path.parent.name):
        return title
    chats_dir = path.parent.parent
    if chats_dir.name != "chats":
        return title
    try:
        shared = _shared_titles(chats_dir, chats_dir.stat().st_mtime_ns)
    except OSError:
        return title
    return f"{title} ({path.parent.name})" if title in shared else title


def _utc(value: datetime | None) -> datetime | None:
    # Stored in UTC: SQLite's DateTime drops the offset, so the instant must not depend on it.
    return value.astimezone(UTC) if value is not None else None


def _name(element: Element | None) -> str | None:
    """A sender's name: the element's own text (the forwarded name has a date <span> inside)."""
    # Trim first: the name ends with a newline in the markup, and " via @bot" must end the text.
    text = VIA_BOT.sub("", re.sub(r"\s+", " ", own_text(element)).strip())
    return text or None


def _first(root: Element | None, class_name: str) -> Element | None:
    found = by_class(root, class_name) if root is not None else []
    return found[0] if found else None


def _media(wrap: Element | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if wrap is None:
        return items
    for element in wrap:
        if element.tag not in ("a", "div"):
            continue
        classes = set(class_list(element))
        item: dict[str, Any] = {}
        wrapped = next((WRAPPED_MEDIA[c] for c in classes if c in WRAPPED_MEDIA), None)
        if wrapped:
            item = {"media_type": wrapped}
            duration = squeeze(_first(element, "video_duration"))
            if duration:
                item["duration"] = duration
        elif "media_poll" in classes:
            item = {
                "media_type": "poll",
                "question": squeeze(_first(element, "question")),
                "answers": [squeeze(a) for a in by_class(element, "answer")],
            }
        elif "media" in classes:
            kind = next((GENERIC_MEDIA[c] for c in classes if c in GENERIC_MEDIA), None)
            item = {
                "media_type": kind or next((c for c in sorted(classes) if c.startswith("media_")), "media")
            }
            for field in ("title", "description", "status"):
                value = squeeze(_first(element, field))
                if value:
                    item[field] = value
        else:
            item = {"media_type": next((c for c in sorted(classes) if c.startswith("media_")), "media")}
        if element.tag == "a" and element.get("href"):
            item["file"] = str(element.get("href"))
        items.append(item)
    return items


def _reactions(container: Element | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    if container is None:
        return counts
    for reaction in by_class(container, "reaction"):
        classes = class_list(reaction)
        emoji = squeeze(_first(reaction, "emoji")) or ("⭐" if "paid" in classes else "custom_emoji")
        count_text = squeeze(_first(reaction, "count"))
        if count_text and count_text.isdigit():
            count = int(count_text)
        else:  # all reactors shown as userpics, no counter
            userpics = _first(reaction, "userpics")
            count = len(by_class(userpics, "userpic")) if userpics is not None else 0
        counts[emoji] = counts.get(emoji, 0) + count
    return counts


def _reply_to(content: Element | None) -> tuple[int | None, dict[str, Any] | None]:
    """(id of the replied message in this chat, or the other chat's reply as `reply_to_other`)."""
    reply = child(content, "div", "reply_to")
    if reply is None:
        return None, None
    if OTHER_CHAT in re.sub(r"\s+", " ", reply.text_content()):
        return None, {"chat": None, "message_id": None}
    for link in reply.iter("a"):
        match = GO_TO.search(f"{link.get('onclick') or ''} {link.get('href') or ''}")
        if match:
            return int(match.group(1)), None
    return None, None


@register
class TelegramHtmlExport:
    name = "telegram-html"
    priority = 20

    def detect(self, source: RawSource) -> bool:
        head = source.data[:8192]
        return b'class="page_wrap"' in head and (
            b'class="history"' in source.data[:500_000] or b'class="message ' in source.data[:500_000]
        )

    def parse(self, source: RawSource) -> SourceBatch:
        text = source.text()
        if "</html>" not in text[-2048:].lower():
            raise IngestError(
                f"{source.location}: truncated HTML export (the page does not end with </html>)"
            )
        root = parse_html(text, source.location)
        history = _first(root, "history")
        if history is None:
            raise IngestError(
                f"{source.location}: HTML page has no message history; not a Telegram Desktop chat export"
            )
        header = _first(root, "page_header")
        title = (
            squeeze(next((e for e in by_class(header, "text") if "bold" in class_list(e)), None))
            if header is not None
            else None
        )
        title = _account_chat_title(source.path, _first_file_title(source.path) or title)
        batch = SourceBatch(location=source.location, format=self.name)
        zoneless = 0
        previous_author: str | None = None
        previous_forward: str | None = None
        for div in by_class(history, "message", "div"):
            classes = class_list(div)
            match = MESSAGE_ID.match(str(div.get("id") or ""))
            if "default" not in classes or match is None:
                if match and int(match.group(1)) > 0:  # negative ids are the date separators
                    batch.skipped += 1
                continue
            record = self._message(div, int(match.group(1)), previous_author, previous_forward, source, title)
            if record is None:
                batch.skipped += 1
                continue
            previous_author, previous_forward = record.author_name, record.post.forwarded_from
            zoneless += record.zoneless
            batch.posts.append(record.post)
        if not batch.posts and not batch.skipped:
            raise IngestError(f"{source.location}: Telegram HTML export without messages")
        if zoneless and source.options.zone is None:
            batch.notes.append(no_zone_note(source.location, f"dates of {zoneless} messages"))
        return finish_batch(batch, near_duplicates=False)

    def _message(
        self,
        div: Element,
        message_id: int,
        previous_author: str | None,
        previous_forward: str | None,
        source: RawSource,
        title: str | None,
    ) -> _Parsed | None:
        body = child(div, "div", "body")
        if body is None:
            return None
        joined = "joined" in class_list(div)
        author_name = _name(child(body, "div", "from_name")) or (previous_author if joined else None)
        forwarded = child(body, "div", "forwarded", "body")
        content = forwarded if forwarded is not None else body
        forwarded_from = None
        if forwarded is not None:
            # A follow-up forward from the same source omits the name; it is the previous one's.
            forwarded_from = _name(child(forwarded, "div", "from_name")) or previous_forward
        text, entities, links = message_text(child(content, "div", "text"))
        signature = squeeze(child(content, "div", "signature"))
        date_div = child(body, "div", "date")
        date_title = str(date_div.get("title") or "") if date_div is not None else ""
        date = parse_export_date(date_title, source.options.zone)
        reply_to, reply_to_other = _reply_to(content)
        post = PostRecord(
            channel=source.channel_hint or "",
            channel_title=title,
            text=text,
            message_id=message_id,
            date=_utc(date),
            author=signature or author_name,
            entities=entities,
            links=links,
            forwarded_from=forwarded_from,
            reply_to=reply_to,
            reply_to_other=reply_to_other,
            reactions=_reactions(_first(div, "reactions")),
            media=_media(child(content, "div", "media_wrap")),
        )
        return _Parsed(post, author_name, date is not None and not _has_zone(date_title))


class _Parsed:
    __slots__ = ("author_name", "post", "zoneless")

    def __init__(self, post: PostRecord, author_name: str | None, zoneless: bool):
        self.post = post
        self.author_name = author_name
        self.zoneless = zoneless
