"""Live channel posts from the Bot API (`channel_post` / `edited_channel_post` updates) as records.

`message_to_record` turns one Bot API `Message` (a JSON dict, or anything with `model_dump`, such as
an aiogram `Message`) into a `PostRecord` with its entities and links, the same shape the export
parser produces; `message_batch` wraps it in a `SourceBatch` that goes through the same cleaning,
paper-reference and dedupe path (`finish_batch`, then `Store.ingest_batch`). Knows nothing of aiogram.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.errors import IngestError
from ingest.clean import finish_batch
from rag.store.records import PostRecord, SourceBatch

FORMAT = "telegram-bot-api"
MEDIA_TYPES = ("photo", "video", "document", "audio", "voice", "animation", "sticker", "video_note", "poll")


def location_for(channel: str) -> str:
    """The store's source location for a channel's live posts (not a file: re-ingest skips it)."""
    return f"telegram-bot-api:{channel}"


def _as_dict(message: Any) -> dict[str, Any]:
    if isinstance(message, dict):
        return message
    dump = getattr(message, "model_dump", None)
    if dump is None:
        raise IngestError(f"not a Bot API message: {type(message).__name__}")
    return dump(mode="json", exclude_none=True, by_alias=True)


def _utf16_slice(text: str, offset: int, length: int) -> str:
    data = text.encode("utf-16-le")
    return data[offset * 2 : (offset + length) * 2].decode("utf-16-le", errors="ignore")


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _forwarded_from(message: dict[str, Any]) -> str | None:
    origin = message.get("forward_origin") or {}
    chat = origin.get("chat") or origin.get("sender_chat") or {}
    user = origin.get("sender_user") or {}
    return (
        chat.get("username")
        or chat.get("title")
        or origin.get("sender_user_name")
        or user.get("username")
        or user.get("first_name")
        or None
    )


def _reply_to_other(message: dict[str, Any]) -> dict[str, Any] | None:
    """`external_reply` (Bot API 7.0+): the post replies to a message of another chat."""
    external = message.get("external_reply")
    if not isinstance(external, dict):
        return None
    chat = external.get("chat") or (external.get("origin") or {}).get("chat") or {}
    name = chat.get("username") or (str(chat["id"]) if chat.get("id") is not None else None)
    return {"chat": name, "message_id": external.get("message_id")}


def message_to_record(message: Any) -> PostRecord:
    """One Bot API channel message → `PostRecord` (text or caption, entities in UTF-16 units)."""
    data = _as_dict(message)
    chat = data.get("chat") or data.get("sender_chat") or {}
    if "message_id" not in data or not chat:
        raise IngestError("Bot API message without message_id or chat")
    text = data.get("text") or data.get("caption") or ""
    raw_entities = data.get("entities") or data.get("caption_entities") or []
    entities: list[dict[str, Any]] = []
    links: list[str] = []
    for entity in raw_entities:
        kind, offset, length = entity.get("type"), entity.get("offset"), entity.get("length")
        if not kind or not isinstance(offset, int) or not isinstance(length, int):
            continue
        item = {"type": kind, "offset": offset, "length": length}
        for extra in ("url", "language", "custom_emoji_id"):
            if entity.get(extra):
                item[extra] = entity[extra]
        if entity.get("user"):
            item["user_id"] = entity["user"].get("id")
        entities.append(item)
        if kind == "text_link" and entity.get("url"):
            links.append(entity["url"])
        elif kind == "url":
            links.append(_utf16_slice(text, offset, length))
    media = [
        {
            "media_type": kind,
            **(
                {"file_name": data[kind].get("file_name")}
                if isinstance(data[kind], dict) and data[kind].get("file_name")
                else {}
            ),
        }
        for kind in MEDIA_TYPES
        if data.get(kind)
    ]
    return PostRecord(
        channel=(chat.get("username") or "").lstrip("@"),
        channel_title=chat.get("title"),
        text=text,
        message_id=int(data["message_id"]),
        date=_timestamp(data.get("date")),
        edited=_timestamp(data.get("edit_date")),
        author=data.get("author_signature"),
        entities=entities,
        links=list(dict.fromkeys(links)),
        forwarded_from=_forwarded_from(data),
        reply_to=(data.get("reply_to_message") or {}).get("message_id"),
        reply_to_other=_reply_to_other(data),
        views=None,
        media=media,
    )


def message_batch(message: Any) -> SourceBatch:
    """The one-post batch for `Store.ingest_batch`, cleaned and with paper references attached."""
    record = message_to_record(message)
    key = record.channel or record.channel_title or "unknown"
    batch = SourceBatch(location=location_for(key), format=FORMAT, posts=[record])
    return finish_batch(batch, near_duplicates=False)
