"""Text dumps of captured Telegram channel pages (tgoop.com-style mirrors, t.me previews saved as text).

Two shapes occur (see rag/samples/corpus/):
- a single-post page: first line `<CHANNEL> Telegram <id>`, the post as a preview copy, a
  `tgoop.com/<channel>/<id>` line, the full copy, `BY <title>`, then site boilerplate;
- a channel page: sidebar junk (other channels' names), a header (`<title> avatar` or
  `<title>` + `N subscribers` ... `Download Telegram`), then posts separated by date lines
  (`28.04.202523:54`, which *precede* their post; `Deleted<date>` marks a removed one) and/or
  reaction counters (`👍7🔥1`, which *end* their post), each post possibly shown twice.

Junk and boilerplate never reach a stored post. Post ids and dates are recovered where the page
gives them; copies of one post are merged (longest text wins) here and, across files, in the store.
Dates on these pages carry no timezone; they are stored as UTC.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from core.tme import parse_post_link
from ingest.clean import DATE_TIME, finish_batch, is_junk_line, is_reactions, parse_reactions
from ingest.registry import RawSource, register
from rag.store.records import PostRecord, SourceBatch

SINGLE_POST_HEADER = re.compile(r"^(?P<channel>[A-Za-z0-9_]{3,64}) Telegram (?P<id>\d+)$")
AVATAR_HEADER = re.compile(r"^(?P<title>.{1,64}) avatar$")
SUBSCRIBERS = re.compile(r"^[\d.,]+[KkMm]? subscribers$")
BRACKET_LINKS = re.compile(r"^(?:\[[^\]\n]{1,40}\]\s*){1,4}$")
MEDIA_PLACEHOLDER = "Please open Telegram to view this post"
FOOTER_STARTS = ("Share with your friend now:", "Telegram News")
BY_LINE = re.compile(r"^BY (?P<title>.{1,64})$")
FORWARDED = re.compile(r"^Forwarded from (?P<name>.{1,128})$")
PINNED = re.compile(r"^(?P<title>.{1,64}) pinned «.*$")  # service message: "<channel> pinned «…»"
# A line repeated within one block marks the start of the page's second copy of the post; short
# lines ("Метод", "Эксперименты") legitimately repeat as headings, so only long ones count.
MIN_REPEAT_LINE = 40


@dataclass
class _Block:
    lines: list[str] = field(default_factory=list)
    date: datetime | None = None
    reactions: dict[str, int] = field(default_factory=dict)
    has_media: bool = False
    forwarded_from: str | None = None

    def text(self) -> str:
        return "\n".join(self.lines).strip()


def _parse_date(match: re.Match[str]) -> datetime | None:
    _deleted, day, month, year, hour, minute = match.groups()
    try:
        return datetime(int(year), int(month), int(day), int(hour), int(minute), tzinfo=UTC)
    except ValueError:
        return None


def _strip_header(lines: list[str]) -> tuple[list[str], str | None]:
    """Drop sidebar junk and the channel header; return (remaining lines, channel title)."""
    limit = min(len(lines), 60)
    last_avatar = None
    for i in range(limit):
        if AVATAR_HEADER.match(lines[i].strip()):
            last_avatar = i
    if last_avatar is not None:
        title = AVATAR_HEADER.match(lines[last_avatar].strip()).group("title")
        start = last_avatar + 1
        if start < len(lines) and lines[start].strip() == title:
            start += 1
        return lines[start:], title
    if len(lines) > 1 and SUBSCRIBERS.match(lines[1].strip()):
        title = lines[0].strip()
        for i in range(1, limit):
            if lines[i].strip() == "Download Telegram":
                return lines[i + 1 :], title
        return lines[2:], title
    return lines, None


def _cut_footer(lines: list[str]) -> list[str]:
    for i, line in enumerate(lines):
        if line.strip() in FOOTER_STARTS:
            return lines[:i]
    return lines


def _union(first: list[str], second: list[str]) -> list[str]:
    """Both copies' lines in page order: each copy may lack lines the other has (the preview cuts
    list items, the full copy drops the title or a trailing code snippet)."""
    merged: list[str] = []
    matcher = difflib.SequenceMatcher(a=first, b=second, autojunk=False)
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        merged.extend(first[a0:a1])
        if tag in ("replace", "insert"):
            merged.extend(second[b0:b1])
    return merged


def _merge_copies(lines: list[str]) -> list[str]:
    """If the block shows the post twice (preview, then full), keep one copy with every line."""
    nonblank = [i for i, line in enumerate(lines) if line.strip()]
    for i in nonblank[:4]:
        first = lines[i].strip()
        if len(first) < MIN_REPEAT_LINE:
            continue
        for j in range(i + 1, len(lines)):
            if lines[j].strip() == first:
                # The short lines above the repeated one ("Метод", blank lines) repeat too: both
                # copies start there, or the first copy would end with the second one's heading.
                while i > 0 and j - 1 > i and lines[i - 1].strip() == lines[j - 1].strip():
                    i, j = i - 1, j - 1
                return lines[:i] + _union(lines[i:j], lines[j:])
    return lines


def _split_untitled_posts(block: _Block) -> list[_Block]:
    """Split where a paper-style header (title line + `[Статья][Код]` line) follows text directly."""
    parts: list[_Block] = [_Block(date=block.date)]
    lines = block.lines
    for k, line in enumerate(lines):
        starts_post = (
            k > 0
            and lines[k - 1].strip()
            and line.strip()
            and k + 1 < len(lines)
            and BRACKET_LINKS.match(lines[k + 1].strip())
            and not BRACKET_LINKS.match(line.strip())
            and any(x.strip() for x in parts[-1].lines)
        )
        if starts_post:
            parts.append(_Block())  # the page lost this post's date
        parts[-1].lines.append(line)
    parts[-1].reactions, parts[-1].has_media = block.reactions, block.has_media
    parts[0].forwarded_from = block.forwarded_from
    return parts


def _unglue_trailing_reactions(lines: list[str]) -> list[str]:
    """A capture that ends without a newline glues the last post's counters to its text."""
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].strip():
            head, _, tail = lines[i].rstrip().rpartition(" ")
            if head and is_reactions(tail):
                return [*lines[:i], head, tail]
            return lines
    return lines


def _title_from_pins(lines: list[str]) -> str | None:
    for line in lines:
        pinned = PINNED.match(line.strip())
        if pinned:
            return pinned.group("title")
    return None


def _segment(lines: list[str]) -> tuple[list[_Block], int]:
    """Cut the page into post blocks; returns (blocks, number of deleted-post markers)."""
    blocks: list[_Block] = [_Block()]
    deleted = 0
    for raw in lines:
        line = raw.rstrip()
        stripped = line.strip()
        date = DATE_TIME.match(stripped)
        if date:
            if date.group(1):  # "Deleted<date>": a removed post, nothing to keep
                deleted += 1
                blocks.append(_Block())
            else:
                blocks.append(_Block(date=_parse_date(date)))
            continue
        if is_reactions(stripped):
            blocks[-1].reactions = parse_reactions(stripped)
            blocks.append(_Block())
            continue
        if stripped == MEDIA_PLACEHOLDER:
            blocks[-1].has_media = True
            continue
        forwarded = FORWARDED.match(stripped)
        if forwarded and not any(x.strip() for x in blocks[-1].lines):
            blocks[-1].forwarded_from = forwarded.group("name")
            continue
        if PINNED.match(stripped):
            continue
        if is_junk_line(stripped) or BY_LINE.match(stripped) or parse_post_link(stripped):
            continue
        blocks[-1].lines.append(line)
    return blocks, deleted


@register
class PageDump:
    name = "page-dump"
    priority = 80  # last: plain text is the weakest signal

    def detect(self, source: RawSource) -> bool:
        try:
            text = source.data[:200_000].decode("utf-8")
        except UnicodeDecodeError:
            return False
        if text.lstrip().startswith(("{", "<")):
            return False
        lines = [line.strip() for line in text.splitlines()]
        markers = sum(
            1
            for line in lines
            if DATE_TIME.match(line)
            or is_reactions(line)
            or parse_post_link(line)
            or line == MEDIA_PLACEHOLDER
            or AVATAR_HEADER.match(line)
            or SUBSCRIBERS.match(line)
        )
        return bool(lines and SINGLE_POST_HEADER.match(lines[0])) or markers >= 2

    def parse(self, source: RawSource) -> SourceBatch:
        text = source.text().replace("\r\n", "\n")
        lines = _cut_footer(text.split("\n"))
        batch = SourceBatch(location=source.location, format=self.name)
        header = SINGLE_POST_HEADER.match(lines[0].strip()) if lines else None
        if header:
            return finish_batch(self._single_post(source, text, lines[1:], header, batch))
        lines, title = _strip_header(_unglue_trailing_reactions(lines))
        title = title or _title_from_pins(lines)
        blocks, deleted = _segment(lines)
        batch.skipped += deleted
        channel = source.channel_hint or ""
        if not title and not channel:
            title = f"unknown channel ({source.path.stem if source.path else source.location})"
        for block in blocks:
            block.lines = _merge_copies(block.lines)
            for part in _split_untitled_posts(block):
                body = part.text()
                if not body:
                    if part.date or part.has_media:
                        batch.skipped += 1  # a media-only post: nothing to search
                    continue
                batch.posts.append(
                    PostRecord(
                        channel=channel,
                        channel_title=title,
                        text=body,
                        date=part.date,
                        reactions=part.reactions,
                        forwarded_from=part.forwarded_from,
                        media=[{"type": "unavailable"}] if part.has_media else [],
                    )
                )
        return finish_batch(batch)

    def _single_post(
        self, source: RawSource, text: str, lines: list[str], header: re.Match[str], batch: SourceBatch
    ) -> SourceBatch:
        message_id = int(header.group("id"))
        # The permalink line has the username's real casing; the header shouts it in capitals.
        channel = header.group("channel").lower()
        title = None
        for line in text.split("\n"):
            link = parse_post_link(line)
            if link and link.message_id == message_id:
                channel = link.channel
            by = BY_LINE.match(line.strip())
            if by:
                title = by.group("title")
        blocks, _deleted = _segment(lines)
        for block in blocks:
            # The page shows the post twice (preview above the permalink line, full text below),
            # and the junk between them is dropped: one block holding both copies.
            block.lines = _merge_copies(block.lines)
        reactions = next((b.reactions for b in blocks if b.reactions), {})
        copies = [b for b in blocks if b.text()]
        if not copies:
            batch.skipped += 1
            return batch
        longest = max(copies, key=lambda b: len(b.text()))
        batch.posts.append(
            PostRecord(
                channel=channel,
                channel_title=title,
                text=longest.text(),
                message_id=message_id,
                reactions=reactions,
                media=[{"type": "unavailable"}] if any(b.has_media for b in blocks) else [],
            )
        )
        return batch
