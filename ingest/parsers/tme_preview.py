"""The public web preview of a channel, `t.me/s/<channel>`, saved as HTML (or fetched by `ingest.live`).

Each post is a `div.tgme_widget_message[data-post="channel/123"]`: `.tgme_widget_message_text`
(entities as <b>, <i>, <a>, <code>, <pre>, <tg-emoji>, line breaks as <br>), `time[datetime]`,
`.tgme_widget_message_views` ("1.2K"), `.tgme_widget_message_edited`, `.tgme_widget_message_from_author`
(signature), `.tgme_widget_message_forwarded_from_name`, `a.tgme_widget_message_reply` (href to the
replied post), `.tgme_reaction` counters and media blocks. Service messages are skipped.

The page marks an edit without its time; `edited` then holds the post date ("edited, time
unknown"), since the store keeps an edit date and no flag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bs4 import BeautifulSoup, Tag

from ingest.clean import finish_batch
from ingest.html_text import message_text
from ingest.registry import RawSource, register
from rag.errors import IngestError
from rag.store.records import PostRecord, SourceBatch

DATA_POST = re.compile(r"^([A-Za-z0-9_]{3,64})/(\d+)$")
POST_URL = re.compile(r"/([A-Za-z0-9_]{3,64})/(\d+)(?:[/?#]|$)")
COUNT = re.compile(r"(\d+(?:[.,]\d+)?)\s*([KkMm]?)")
BACKGROUND_URL = re.compile(r"background-image:\s*url\(['\"]?([^'\")]+)['\"]?\)")


def parse_count(text: str | None) -> int | None:
    """'987' → 987, '1.2K' → 1200, '3M' → 3000000."""
    match = COUNT.search(text or "")
    if not match:
        return None
    value = float(match.group(1).replace(",", "."))
    scale = {"k": 1_000, "m": 1_000_000}.get(match.group(2).lower(), 1)
    return round(value * scale)


def _text(tag: Tag | None) -> str | None:
    if not isinstance(tag, Tag):
        return None
    return re.sub(r"\s+", " ", tag.get_text(" ")).strip() or None


class _Classes:
    """One message's elements by class, collected in one walk (each bs4 `class_` search rescans
    the subtree: 13 of them per post made parsing 5x slower)."""

    def __init__(self, root: Tag):
        self.root = root
        self.by_class: dict[str, list[Tag]] = {}
        self.times: list[Tag] = []
        for element in root.descendants:
            if isinstance(element, Tag):
                for name in element.get("class") or []:
                    self.by_class.setdefault(name, []).append(element)
                if element.name == "time":
                    self.times.append(element)

    def all(self, class_name: str) -> list[Tag]:
        return self.by_class.get(class_name, [])

    def first(self, class_name: str, *, outside: str | None = None) -> Tag | None:
        """The first element with `class_name`, skipping those inside an element of class `outside`."""
        for tag in self.all(class_name):
            if outside is None or not any(
                outside in (parent.get("class") or []) for parent in tag.parents if parent is not self.root
            ):
                return tag
        return None


def _date(found: _Classes) -> datetime | None:
    dated = [t for t in found.times if t.get("datetime")]
    time = next((t for t in dated if t.find_parent(class_="tgme_widget_message_date")), None) or (
        dated[0] if dated else None
    )
    if time is None:
        return None
    try:
        value = datetime.fromisoformat(str(time["datetime"]))
    except ValueError:
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _reactions(found: _Classes) -> dict[str, int]:
    counts: dict[str, int] = {}
    for reaction in found.all("tgme_reaction"):
        classes = reaction.get("class") or []
        emoji_tag = reaction.find("b") or reaction.find("tg-emoji")
        emoji = _text(emoji_tag) or ("⭐" if "tgme_reaction_paid" in classes else "custom_emoji")
        # <span class="tgme_reaction"><i class="emoji"><b>👍</b></i>1.2K</span>: the count is its own text.
        count = parse_count(" ".join(reaction.find_all(string=True, recursive=False)))
        if count:
            counts[emoji] = counts.get(emoji, 0) + count
    return counts


def _background(tag: Tag) -> str | None:
    match = BACKGROUND_URL.search(str(tag.get("style") or ""))
    return match.group(1) if match else None


def _media(found: _Classes) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for photo in found.all("tgme_widget_message_photo_wrap"):
        items.append({"media_type": "photo", "url": _background(photo), "link": photo.get("href")})
    for video in found.all("tgme_widget_message_video_player"):
        thumb = video.find(class_="tgme_widget_message_video_thumb")
        items.append(
            {
                "media_type": "video_file",
                "duration": _text(video.find(class_="message_video_duration")),
                "thumbnail": _background(thumb) if isinstance(thumb, Tag) else None,
            }
        )
    for voice in found.all("tgme_widget_message_voice_player"):
        items.append(
            {
                "media_type": "voice_message",
                "duration": _text(voice.find(class_="tgme_widget_message_voice_duration")),
            }
        )
    for round_video in found.all("tgme_widget_message_roundvideo_player"):
        items.append(
            {
                "media_type": "video_message",
                "duration": _text(round_video.find(class_="tgme_widget_message_roundvideo_duration")),
            }
        )
    for document in found.all("tgme_widget_message_document"):
        items.append(
            {
                "media_type": "file",
                "title": _text(document.find(class_="tgme_widget_message_document_title")),
                "status": _text(document.find(class_="tgme_widget_message_document_extra")),
            }
        )
    for _sticker in found.all("tgme_widget_message_sticker_wrap"):
        items.append({"media_type": "sticker"})
    for poll in found.all("tgme_widget_message_poll"):
        items.append(
            {
                "media_type": "poll",
                "question": _text(poll.find(class_="tgme_widget_message_poll_question")),
                "answers": [_text(o) for o in poll.find_all(class_="tgme_widget_message_poll_option_text")],
            }
        )
    for preview in found.all("tgme_widget_message_link_preview"):
        items.append(
            {
                "media_type": "link_preview",
                "url": preview.get("href"),
                "site": _text(preview.find(class_="link_preview_site_name")),
                "title": _text(preview.find(class_="link_preview_title")),
                "description": _text(preview.find(class_="link_preview_description")),
            }
        )
    if found.all("message_media_not_supported"):
        items.append({"media_type": "unsupported"})  # "Please open Telegram to view this post"
    return [{k: v for k, v in item.items() if v not in (None, [], "")} for item in items]


def _message(message: Tag, title: str | None) -> PostRecord | None:
    match = DATA_POST.match(str(message.get("data-post") or ""))
    if match is None or "service_message" in (message.get("class") or []):
        return None
    channel, message_id = match.group(1), int(match.group(2))
    found = _Classes(message)
    text, entities, links = message_text(
        found.first("tgme_widget_message_text", outside="tgme_widget_message_reply")
    )
    reply_to = None
    reply = found.first("tgme_widget_message_reply")
    if reply is not None:
        target = POST_URL.search(str(reply.get("href") or ""))
        if target and target.group(1).lower() == channel.lower():
            reply_to = int(target.group(2))
    date = _date(found)
    owner = _text(found.first("tgme_widget_message_owner_name"))
    return PostRecord(
        channel=channel,
        channel_title=title,
        text=text,
        message_id=message_id,
        date=date,
        edited=date if found.all("tgme_widget_message_edited") else None,
        author=_text(found.first("tgme_widget_message_from_author")) or owner,
        entities=entities,
        links=links,
        forwarded_from=_text(found.first("tgme_widget_message_forwarded_from_name")),
        reply_to=reply_to,
        views=parse_count(_text(found.first("tgme_widget_message_views"))),
        reactions=_reactions(found),
        media=_media(found),
    )


@dataclass
class PreviewPage:
    channel: str | None
    title: str | None
    posts: list[PostRecord] = field(default_factory=list)
    skipped: int = 0


def parse_preview_html(html: str, location: str) -> PreviewPage:
    """Posts of one t.me/s page, oldest first (page order)."""
    soup = BeautifulSoup(html, "lxml")
    title = _text(soup.find(class_="tgme_channel_info_header_title"))
    if title is None:
        meta = soup.find("meta", attrs={"property": "og:title"})
        title = str(meta.get("content") or "").strip() or None if isinstance(meta, Tag) else None
    page = PreviewPage(channel=None, title=title)
    for message in soup.find_all("div", class_="tgme_widget_message"):
        if not message.get("data-post"):
            continue
        record = _message(message, title)
        if record is None:
            page.skipped += 1
            continue
        page.channel = page.channel or record.channel
        page.posts.append(record)
    return page


@register
class TmePreviewPage:
    name = "tme-preview"
    priority = 25

    def detect(self, source: RawSource) -> bool:
        data = source.data[:2_000_000]
        return b"tgme_widget_message" in data and b"data-post=" in data

    def parse(self, source: RawSource) -> SourceBatch:
        text = source.text()
        if "</html>" not in text[-2048:].lower():
            raise IngestError(f"{source.location}: truncated t.me page (it does not end with </html>)")
        page = parse_preview_html(text, source.location)
        if not page.posts and not page.skipped:
            raise IngestError(
                f"{source.location}: no tgme_widget_message posts with data-post; not a t.me/s page"
            )
        batch = SourceBatch(
            location=source.location, format=self.name, posts=page.posts, skipped=page.skipped
        )
        return finish_batch(batch, near_duplicates=False)
