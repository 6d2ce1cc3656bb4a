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

from core.errors import IngestError
from ingest.clean import finish_batch
from ingest.html_text import Element, by_class, class_list, message_text, own_text, parse_html, squeeze
from ingest.registry import RawSource, register
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


def _text(element: Element | None) -> str | None:
    return squeeze(element)


def _find(root: Element, class_name: str) -> Element | None:
    found = by_class(root, class_name)
    return found[0] if found else None


class _Classes:
    """One message's elements by class, collected in one walk instead of a search per field."""

    def __init__(self, root: Element):
        self.root = root
        self.by_class: dict[str, list[Element]] = {}
        self.times: list[Element] = []
        for element in root.iterdescendants():
            if isinstance(element.tag, str):
                for name in class_list(element):
                    self.by_class.setdefault(name, []).append(element)
                if element.tag == "time":
                    self.times.append(element)

    def all(self, class_name: str) -> list[Element]:
        return self.by_class.get(class_name, [])

    def first(self, class_name: str, *, outside: str | None = None) -> Element | None:
        """The first element with `class_name`, skipping those inside an element of class `outside`."""
        for tag in self.all(class_name):
            if outside is None or not any(
                outside in class_list(parent) for parent in tag.iterancestors() if parent is not self.root
            ):
                return tag
        return None


def _date(found: _Classes) -> datetime | None:
    dated = [t for t in found.times if t.get("datetime")]
    # The post's own time sits in its date link; other <time>s (e.g. in a reply) are fallbacks.
    own = [t for t in dated if any("tgme_widget_message_date" in class_list(a) for a in t.iterancestors())]
    times = own or dated
    if not times:
        return None
    try:
        value = datetime.fromisoformat(str(times[0].get("datetime")))
    except ValueError:
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _reactions(found: _Classes) -> dict[str, int]:
    counts: dict[str, int] = {}
    for reaction in found.all("tgme_reaction"):
        classes = class_list(reaction)
        emoji_tag = next(reaction.iter("b"), None)
        if emoji_tag is None:
            emoji_tag = next(reaction.iter("tg-emoji"), None)
        emoji = _text(emoji_tag) or ("⭐" if "tgme_reaction_paid" in classes else "custom_emoji")
        # <span class="tgme_reaction"><i class="emoji"><b>👍</b></i>1.2K</span>: the count is its own text.
        count = parse_count(own_text(reaction))
        if count:
            counts[emoji] = counts.get(emoji, 0) + count
    return counts


def _background(tag: Element) -> str | None:
    match = BACKGROUND_URL.search(str(tag.get("style") or ""))
    return match.group(1) if match else None


def _media(found: _Classes) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for photo in found.all("tgme_widget_message_photo_wrap"):
        items.append({"media_type": "photo", "url": _background(photo), "link": photo.get("href")})
    for video in found.all("tgme_widget_message_video_player"):
        thumb = _find(video, "tgme_widget_message_video_thumb")
        items.append(
            {
                "media_type": "video_file",
                "duration": _text(_find(video, "message_video_duration")),
                "thumbnail": _background(thumb) if thumb is not None else None,
            }
        )
    for voice in found.all("tgme_widget_message_voice_player"):
        items.append(
            {
                "media_type": "voice_message",
                "duration": _text(_find(voice, "tgme_widget_message_voice_duration")),
            }
        )
    for round_video in found.all("tgme_widget_message_roundvideo_player"):
        items.append(
            {
                "media_type": "video_message",
                "duration": _text(_find(round_video, "tgme_widget_message_roundvideo_duration")),
            }
        )
    for document in found.all("tgme_widget_message_document"):
        items.append(
            {
                "media_type": "file",
                "title": _text(_find(document, "tgme_widget_message_document_title")),
                "status": _text(_find(document, "tgme_widget_message_document_extra")),
            }
        )
    for _sticker in found.all("tgme_widget_message_sticker_wrap"):
        items.append({"media_type": "sticker"})
    for poll in found.all("tgme_widget_message_poll"):
        items.append(
            {
                "media_type": "poll",
                "question": _text(_find(poll, "tgme_widget_message_poll_question")),
                "answers": [_text(o) for o in by_class(poll, "tgme_widget_message_poll_option_text")],
            }
        )
    for preview in found.all("tgme_widget_message_link_preview"):
        items.append(
            {
                "media_type": "link_preview",
                "url": preview.get("href"),
                "site": _text(_find(preview, "link_preview_site_name")),
                "title": _text(_find(preview, "link_preview_title")),
                "description": _text(_find(preview, "link_preview_description")),
            }
        )
    if found.all("message_media_not_supported"):
        items.append({"media_type": "unsupported"})  # "Please open Telegram to view this post"
    return [{k: v for k, v in item.items() if v not in (None, [], "")} for item in items]


def _message(message: Element, title: str | None) -> PostRecord | None:
    match = DATA_POST.match(str(message.get("data-post") or ""))
    if match is None or "service_message" in class_list(message):
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
    root = parse_html(html, location)
    title = _text(_find(root, "tgme_channel_info_header_title"))
    if title is None:
        meta = root.xpath("//meta[@property='og:title']/@content")
        title = str(meta[0]).strip() or None if meta else None
    page = PreviewPage(channel=None, title=title)
    for message in by_class(root, "tgme_widget_message", "div"):
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
        if b"tgme_widget_message" in data and b"data-post=" in data:
            return True
        # A page cut off before its first post still names itself in its head: say "truncated".
        head = source.data[:65_536]
        ended = b"</html>" in source.data[-2048:].lower()
        return (b"tgme_webpreview" in head or b"tgme_channel" in head) and not ended

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
