"""Reading what to convert: a stored post by permalink (`https://t.me/<channel>/<id>` or
`<channel>/<id>`), a Telegram Desktop export message (`result.json#<id>` or a one-message JSON),
a text or Markdown file, or stdin (`-`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from core.errors import CrosspostError
from core.tme import PostRef, parse_post_link
from crosspost.model import SourcePost

FORMATS = ("auto", "text", "markdown", "telegram-json")
MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdown"}


def load_source(source: str, *, store: Any = None, fmt: str = "auto", stdin: Any = None) -> SourcePost:
    """`fmt`: auto | text | markdown | telegram-json (auto: by permalink shape, suffix, content)."""
    if fmt not in FORMATS:
        raise CrosspostError(f"unknown source format {fmt!r} (known: {', '.join(FORMATS)})")
    if source == "-":
        text = (stdin or sys.stdin).read()
        return SourcePost(text=text, markdown=fmt == "markdown", origin="stdin")
    path, _, fragment = source.partition("#")
    if Path(path).is_file():
        return _load_file(Path(path), fragment, fmt)
    ref = parse_post_link(source, short=True)
    if ref is not None:
        return load_stored(ref, store=store)
    raise CrosspostError(
        f"{source!r} is neither a file nor a post link (expected https://t.me/<channel>/<id>, "
        "<channel>/<id>, a .txt/.md/.json file, or - for stdin)"
    )


def load_stored(ref: PostRef, *, store: Any) -> SourcePost:
    link, channel = ref.url, ref.channel
    if store is None:
        raise CrosspostError(f"{link}: no corpus store to read the post from")
    view = store.get_post(ref.channel, ref.message_id)
    if view is None:
        raise CrosspostError(
            f"{link} is not in the store (ingest that channel first: research-bot ingest <export or t.me/s/{channel}>)"
        )
    return SourcePost(
        text=view.text,
        entities=view.entities,
        permalink=view.permalink or link,
        channel=view.channel,
        message_id=view.message_id,
        date=view.date,
        media=view.media,
        origin=view.permalink or link,
        post_id=view.id,
    )


def _load_file(path: Path, fragment: str, fmt: str) -> SourcePost:
    try:
        raw = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise CrosspostError(f"{path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise CrosspostError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if fmt == "telegram-json" or (fmt == "auto" and path.suffix.lower() == ".json"):
        return _from_export(path, raw, fragment)
    markdown = fmt == "markdown" or (fmt == "auto" and path.suffix.lower() in MARKDOWN_SUFFIXES)
    return SourcePost(text=raw, markdown=markdown, origin=str(path))


def _from_export(path: Path, raw: str, fragment: str) -> SourcePost:
    from ingest.parsers.telegram_json import message_to_record

    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CrosspostError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno})") from exc
    data, repaired = repair_surrogates(data)
    if isinstance(data, dict) and isinstance(data.get("messages"), list):
        messages = [
            m for m in data["messages"] if isinstance(m, dict) and m.get("type", "message") == "message"
        ]
        channel = str(data.get("username") or "") or None
        if fragment:
            chosen = [m for m in messages if str(m.get("id")) == fragment]
            if not chosen:
                raise CrosspostError(f"{path}: no message with id {fragment} in this export")
        elif len(messages) == 1:
            chosen = messages
        else:
            raise CrosspostError(
                f"{path}: the export holds {len(messages)} messages; pick one with {path}#<id>"
            )
        message = chosen[0]
    elif isinstance(data, dict) and ("text" in data or "text_entities" in data):
        message, channel = data, None
    else:
        raise CrosspostError(f"{path}: not a Telegram Desktop export (no messages[] and no message text)")
    try:
        record = message_to_record(message, channel or "", None)
    except (TypeError, ValueError) as exc:
        raise CrosspostError(f"{path}: message is malformed ({exc})") from exc
    if record is None:
        raise CrosspostError(f"{path}: that message is a service message, not a post")
    permalink = record.permalink if channel else None
    return SourcePost(
        text=record.text,
        entities=record.entities,
        permalink=permalink,
        channel=channel,
        message_id=record.message_id,
        date=record.date,
        media=record.media,
        origin=f"{path}#{record.message_id}" if record.message_id is not None else str(path),
        repaired=repaired,
    )


def repair_surrogates(value: Any) -> tuple[Any, int]:
    """JSON escapes can hold half an emoji ("\\ud83d" alone), which no encoder takes: join the
    pairs, replace the lone ones with U+FFFD, and count them (the caller says so)."""
    if isinstance(value, str):
        if not any("\ud800" <= ch <= "\udfff" for ch in value):
            return value, 0
        fixed = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return fixed, fixed.count("\ufffd") - value.count("\ufffd")
    if isinstance(value, list):
        items = [repair_surrogates(v) for v in value]
        return [v for v, _ in items], sum(n for _, n in items)
    if isinstance(value, dict):
        items = [(repair_surrogates(k), repair_surrogates(v)) for k, v in value.items()]
        return {k: v for (k, _), (v, _) in items}, sum(a + b for (_, a), (_, b) in items)
    return value, 0
