"""Telegram Desktop JSON export (`result.json`): one chat's `messages[]`, or a full-account export
whose `chats.list[]` (and `left_chats.list[]`) each carry their own `messages[]`.

`text` is a string or a list of strings and entity objects; `text_entities` is the flat list we
use for entities (offsets recomputed in UTF-16 code units, as the Bot API counts them).
Service messages are skipped; media (polls included) are kept as metadata. A message that cannot
be read is skipped with a note and the rest of the export is kept; text with lone UTF-16
surrogates (which no database stores) is repaired with U+FFFD, also with a note. Old exports
write `date` in the exporting computer's local time without a zone: stored as UTC unless the
user names the zone (`--tz`), with a note saying so.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, tzinfo
from typing import Any

from core.errors import IngestError
from ingest.clean import finish_batch, utf16_len
from ingest.options import local_to_aware, no_zone_note
from ingest.registry import RawSource, register
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
# Messages whose content is an object rather than text (the HTML export shows them as media cards).
CARD_KEYS = (
    "contact_information",
    "location_information",
    "live_location_period_seconds",
    "place_name",
    "address",
    "game_title",
    "game_description",
    "invoice_information",
)
ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_NOTED_IDS = 10


def parse_unixtime(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def parse_iso(value: Any, zone: tzinfo | None = None) -> datetime | None:
    """An ISO date; without a zone it is in `zone` (the user's --tz), else UTC."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return local_to_aware(parsed, zone)


def _has_zone(value: Any) -> bool:
    try:
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


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


def _media(message: dict[str, Any]) -> list[dict[str, Any]]:
    media = {k: message[k] for k in MEDIA_KEYS if k in message}
    media.update({k: message[k] for k in CARD_KEYS if k in message})
    items = [media] if media else []
    poll = message.get("poll")
    if isinstance(poll, dict):
        # The same shape as the HTML export's poll card, plus the counts only JSON has.
        answers = [a for a in poll.get("answers") or [] if isinstance(a, dict)]
        item: dict[str, Any] = {
            "media_type": "poll",
            "question": str(poll.get("question") or ""),
            "answers": [str(a.get("text") or "") for a in answers],
        }
        if isinstance(poll.get("total_voters"), int):
            item["total_voters"] = poll["total_voters"]
            item["voters"] = [a.get("voters") if isinstance(a.get("voters"), int) else None for a in answers]
        if poll.get("closed"):
            item["closed"] = True
        items.append(item)
    return items


def _same_chat(peer: Any, chat_id: Any) -> bool:
    """`reply_to_peer_id` ("channel1234", "user5") names the export's own chat?"""
    digits = re.sub(r"^\D+", "", str(peer))
    return chat_id is not None and digits == str(chat_id).lstrip("-")


def message_to_record(
    message: dict[str, Any],
    channel: str,
    title: str | None,
    *,
    zone: tzinfo | None = None,
    chat_id: Any = None,
) -> PostRecord | None:
    if message.get("type", "message") != "message":
        return None
    text, entities, links = flatten_text(message)
    reactions = {
        str(r.get("emoji") or r.get("document_id") or r.get("type")): int(r.get("count", 0))
        for r in message.get("reactions", []) or []
        if isinstance(r, dict)
    }
    message_id = message.get("id")
    reply_to = message.get("reply_to_message_id")
    reply_to = int(reply_to) if isinstance(reply_to, int | str) and str(reply_to).isdigit() else None
    reply_to_other = None
    peer = message.get("reply_to_peer_id")
    if peer is not None and not _same_chat(peer, chat_id):
        # A reply to a message of another chat: the id is that chat's, not a post of this channel.
        reply_to_other = {"chat": str(peer), "message_id": reply_to}
        reply_to = None
    return PostRecord(
        channel=channel,
        channel_title=title,
        text=text,
        message_id=int(message_id)
        if isinstance(message_id, int | str) and str(message_id).isdigit()
        else None,
        date=parse_unixtime(message.get("date_unixtime")) or parse_iso(message.get("date"), zone),
        edited=parse_unixtime(message.get("edited_unixtime")) or parse_iso(message.get("edited"), zone),
        author=message.get("author") or message.get("from"),
        entities=entities,
        links=links,
        forwarded_from=message.get("forwarded_from"),
        reply_to=reply_to,
        reply_to_other=reply_to_other,
        views=message.get("views") if isinstance(message.get("views"), int) else None,
        reactions=reactions,
        media=_media(message),
    )


def _repair_surrogates(value: Any) -> tuple[Any, int]:
    """`value` with every lone surrogate in its strings (keys too) replaced by U+FFFD; (value, count).

    Iterative: json.loads already bounds the depth, but this walk must not add its own recursion.
    """
    count = 0

    def fix(text: str) -> str:
        nonlocal count
        fixed, n = LONE_SURROGATE.subn("\ufffd", text)
        count += n
        return fixed

    if isinstance(value, str):
        return fix(value), count
    root: list[Any] = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        container, key = stack.pop()
        item = container[key]
        if isinstance(item, str):
            container[key] = fix(item)
        elif isinstance(item, list):
            stack.extend((item, i) for i in range(len(item)))
        elif isinstance(item, dict):
            for k in list(item):
                good = fix(k) if isinstance(k, str) else k
                if good != k:
                    item[good] = item.pop(k)
                stack.append((item, good))
    return root[0], count


def _ids(ids: list[Any]) -> str:
    shown = ", ".join(str(i) for i in ids[:MAX_NOTED_IDS])
    return shown + (f" and {len(ids) - MAX_NOTED_IDS} more" if len(ids) > MAX_NOTED_IDS else "")


def _chat_title(chat: dict[str, Any]) -> str | None:
    name = chat.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    if chat.get("type") == "saved_messages":
        return "Saved Messages"
    return f"chat {chat['id']}" if chat.get("id") is not None else None


def _all_account_chats(export: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        chat
        for section in ("chats", "left_chats")
        if isinstance(export.get(section), dict) and isinstance(export[section].get("list"), list)
        for chat in export[section]["list"]
        if isinstance(chat, dict) and isinstance(chat.get("messages"), list)
    ]


def _account_titles(export: dict[str, Any]) -> dict[int, str | None]:
    """{id(chat): stored title} for every chat of the export. Chats are stored by title, and private
    chats are named after the contact (two people called Иван, several "Deleted Account"s): a name
    that several chats share gets the chat id appended, so their messages never merge. Counted
    over the whole export, so `--chat` stores a chat under the same title as a full ingest."""
    chats = _all_account_chats(export)
    names = [_chat_title(chat) for chat in chats]
    shared = {name for name, n in Counter(names).items() if name is not None and n > 1}
    return {
        id(chat): f"{name} ({chat['id']})" if name in shared and chat.get("id") is not None else name
        for chat, name in zip(chats, names, strict=True)
    }


def _account_chats(export: dict[str, Any], source: RawSource) -> list[dict[str, Any]]:
    """The chats of a full-account export that the user selected (`--chat`), in export order."""
    chats = _all_account_chats(export)
    if not chats:
        raise IngestError(f"{source.location}: full-account export without chat messages")
    wanted = {name.casefold() for name in source.options.chats}
    if not wanted:
        return chats
    selected = [c for c in chats if (_chat_title(c) or "").casefold() in wanted or str(c.get("id")) in wanted]
    found = {(_chat_title(c) or "").casefold() for c in selected} | {str(c.get("id")) for c in selected}
    missing = [name for name in source.options.chats if name.casefold() not in found]
    if missing:
        names = [_chat_title(c) or "?" for c in chats]
        raise IngestError(
            f"{source.location}: no chat named {', '.join(map(repr, missing))} in this export "
            f"(it has: {', '.join(names[:MAX_NOTED_IDS])}{' …' if len(names) > MAX_NOTED_IDS else ''})"
        )
    return selected


@register
class TelegramJsonExport:
    name = "telegram-json"
    priority = 10

    def detect(self, source: RawSource) -> bool:
        head = source.head.lstrip(b"\xef\xbb\xbf \t\r\n")
        return head.startswith(b"{") and (
            b'"messages"' in source.data[:1_000_000] or b'"chats"' in source.data[:1_000_000]
        )

    def parse(self, source: RawSource) -> SourceBatch:
        text = source.text()
        try:
            export = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IngestError(
                f"{source.location}: malformed JSON export ({exc.msg}: line {exc.lineno}, column {exc.colno})"
            ) from exc
        except RecursionError:
            raise IngestError(
                f"{source.location}: JSON nested too deeply to be a Telegram export (thousands of levels)"
            ) from None
        batch = SourceBatch(location=source.location, format=self.name)
        if isinstance(export, dict) and isinstance(export.get("messages"), list):
            chats = [export]
        elif isinstance(export, dict) and isinstance(export.get("chats"), dict):
            chats = _account_chats(export, source)
            if source.channel_hint and len(chats) > 1:
                raise IngestError(
                    f"{source.location}: --channel names one channel, but this account export holds "
                    f"{len(chats)} chats; choose one with --chat NAME"
                )
            batch.notes.append(
                f"{source.location}: account export: {len(chats)} chat{'s' if len(chats) != 1 else ''} "
                f"({', '.join(_chat_title(c) or '?' for c in chats[:MAX_NOTED_IDS])}"
                f"{' …' if len(chats) > MAX_NOTED_IDS else ''})"
            )
        else:
            raise IngestError(f"{source.location}: JSON has no messages[] list; not a Telegram export")
        repaired: list[Any] = []
        malformed: list[str] = []
        zoneless = 0
        zone = source.options.zone
        # Only JSON escapes can produce a lone surrogate (raw UTF-8 cannot): skip the walk without them.
        check_surrogates = ESCAPED_SURROGATE.search(text) is not None
        account_titles = _account_titles(export) if chats and chats[0] is not export else {}
        for chat in chats:
            # One chat at a time: message ids repeat across chats, and copies merge only within one.
            part = SourceBatch(location=source.location, format=self.name)
            if chat is export:
                title = export.get("name") if isinstance(export.get("name"), str) else None
            else:
                title = account_titles[id(chat)]
            if check_surrogates and isinstance(title, str):
                title, _ = _repair_surrogates(title)
            for index, message in enumerate(chat["messages"]):
                if not isinstance(message, dict):
                    part.skipped += 1
                    continue
                if check_surrogates:
                    message, broken = _repair_surrogates(message)
                    if broken:
                        repaired.append(message.get("id", f"#{index}"))
                try:
                    record = message_to_record(
                        message, source.channel_hint or "", title, zone=zone, chat_id=chat.get("id")
                    )
                except (TypeError, ValueError, AttributeError) as exc:
                    malformed.append(f"{message.get('id', f'#{index}')} ({exc})")
                    part.skipped += 1
                    continue
                if record is None:
                    part.skipped += 1
                    continue
                if (
                    record.date is not None
                    and "date_unixtime" not in message
                    and not _has_zone(message.get("date"))
                ):
                    zoneless += 1
                part.posts.append(record)
            finish_batch(part, near_duplicates=False)
            batch.posts.extend(part.posts)
            batch.skipped += part.skipped
            batch.papers.extend(part.papers)
        if repaired:
            batch.notes.append(
                f"{source.location}: {len(repaired)} message{'s' if len(repaired) != 1 else ''} with broken "
                f"characters (lone UTF-16 surrogates) kept with U+FFFD in their place: {_ids(repaired)}"
            )
        if malformed:
            batch.notes.append(
                f"{source.location}: {len(malformed)} unreadable message{'s' if len(malformed) != 1 else ''} "
                f"skipped: {_ids(malformed)}"
            )
        if zoneless and zone is None:
            batch.notes.append(no_zone_note(source.location, f"dates of {zoneless} messages"))
        papers = {paper.key: paper for paper in batch.papers}
        batch.papers = list(papers.values())
        return batch
