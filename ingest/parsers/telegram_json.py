"""Telegram Desktop JSON export (`result.json`): one channel's (or chat's) `messages[]`.

`text` is a string or a list of strings and entity objects; `text_entities` is the flat list we
use for entities (offsets recomputed in UTF-16 code units, as the Bot API counts them).
Service messages are skipped; media are kept as metadata.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ingest.clean import finish_batch, utf16_len
from ingest.registry import RawSource, register
from rag.errors import IngestError
from rag.store.records import PostRecord, SourceBatch

# Export entity type -> Bot API entity type.
ENTITY_TYPES = {
    "link": "url",
    "text_link": "text_link",
    "bold": "bold",
    "italic": "italic",
    "code": "code",
    "pre": "pre",
    "mention": "mention",
    "mention_name": "text_mention",
    "hashtag": "hashtag",
    "cashtag": "cashtag",
    "email": "email",
    "phone": "phone_number",
    "bot_command": "bot_command",
    "strikethrough": "strikethrough",
    "underline": "underline",
    "spoiler": "spoiler",
    "blockquote": "blockquote",
    "custom_emoji": "custom_emoji",
    "bank_card": "bank_card",
}
MEDIA_KEYS = ("photo", "file", "thumbnail", "media_type", "mime_type", "duration_seconds", "sticker_emoji")


def parse_unixtime(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def flatten_text(message: dict[str, Any]) -> tuple[str, list[dict[str, Any]], list[str]]:
    """(plain text, Bot-API-style entities with UTF-16 offsets, link URLs) of one message."""
    parts = message.get("text_entities")
    if parts is None:
        raw = message.get("text", "")
        parts = (
            [{"type": "plain", "text": raw}]
            if isinstance(raw, str)
            else [p if isinstance(p, dict) else {"type": "plain", "text": str(p)} for p in raw or []]
        )
    if not isinstance(parts, list):
        raise ValueError("text_entities is not a list")
    pieces: list[str] = []
    entities: list[dict[str, Any]] = []
    links: list[str] = []
    offset = 0
    for part in parts:
        if not isinstance(part, dict):
            continue
        text = str(part.get("text", ""))
        kind = str(part.get("type", "plain"))
        length = utf16_len(text)
        if kind != "plain" and kind in ENTITY_TYPES and length:
            entity: dict[str, Any] = {"type": ENTITY_TYPES[kind], "offset": offset, "length": length}
            if kind == "text_link" and part.get("href"):
                entity["url"] = part["href"]
                links.append(part["href"])
            elif kind == "link":
                links.append(text)
            elif kind == "mention_name" and part.get("user_id"):
                entity["user_id"] = part["user_id"]
            elif kind == "pre" and part.get("language"):
                entity["language"] = part["language"]
            entities.append(entity)
        pieces.append(text)
        offset += length
    return "".join(pieces), entities, list(dict.fromkeys(links))


def message_to_record(message: dict[str, Any], channel: str, title: str | None) -> PostRecord | None:
    if message.get("type", "message") != "message":
        return None
    text, entities, links = flatten_text(message)
    media = {k: message[k] for k in MEDIA_KEYS if k in message}
    reactions = {
        str(r.get("emoji") or r.get("document_id") or r.get("type")): int(r.get("count", 0))
        for r in message.get("reactions", []) or []
        if isinstance(r, dict)
    }
    message_id = message.get("id")
    return PostRecord(
        channel=channel,
        channel_title=title,
        text=text,
        message_id=int(message_id)
        if isinstance(message_id, int | str) and str(message_id).isdigit()
        else None,
        date=parse_unixtime(message.get("date_unixtime")) or parse_iso(message.get("date")),
        edited=parse_unixtime(message.get("edited_unixtime")) or parse_iso(message.get("edited")),
        author=message.get("author") or message.get("from"),
        entities=entities,
        links=links,
        forwarded_from=message.get("forwarded_from"),
        reply_to=message.get("reply_to_message_id"),
        views=message.get("views") if isinstance(message.get("views"), int) else None,
        reactions=reactions,
        media=[media] if media else [],
    )


@register
class TelegramJsonExport:
    name = "telegram-json"
    priority = 10

    def detect(self, source: RawSource) -> bool:
        head = source.head.lstrip(b"\xef\xbb\xbf \t\r\n")
        return head.startswith(b"{") and b'"messages"' in source.data[:1_000_000]

    def parse(self, source: RawSource) -> SourceBatch:
        try:
            export = json.loads(source.text())
        except json.JSONDecodeError as exc:
            raise IngestError(
                f"{source.location}: malformed JSON export ({exc.msg} at line {exc.lineno})"
            ) from exc
        if not isinstance(export, dict) or not isinstance(export.get("messages"), list):
            raise IngestError(f"{source.location}: JSON has no messages[] list; not a Telegram export")
        title = export.get("name") if isinstance(export.get("name"), str) else None
        channel = source.channel_hint or ""
        batch = SourceBatch(location=source.location, format=self.name)
        for index, message in enumerate(export["messages"]):
            if not isinstance(message, dict):
                batch.skipped += 1
                continue
            try:
                record = message_to_record(message, channel, title)
            except (TypeError, ValueError) as exc:
                raise IngestError(f"{source.location}: message #{index} is malformed ({exc})") from exc
            if record is None:
                batch.skipped += 1
            else:
                batch.posts.append(record)
        return finish_batch(batch, near_duplicates=False)
