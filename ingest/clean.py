"""Cleaning and deduplication of parsed records, shared by every parser.

- `is_junk_line`: page boilerplate, sidebar and counters that captured pages mix into posts.
- `clean_text`: normalizes newlines, trims line ends, collapses runs of blank lines;
  `clean_with_entities` does the same while moving Telegram entity offsets (UTF-16) along.
- `dedupe_posts`: exact duplicates by normalized hash, near-duplicates (preview vs full text)
  by shingle containment, keeping the longest copy and the best metadata of both.
- `finish_batch`: the last step of every parser: clean, dedupe, attach paper references.
"""

from __future__ import annotations

import bisect
import logging
import re
import unicodedata
from typing import Any

from core.text import utf16_len as utf16_len  # re-exported: the parsers measure entity offsets with it
from ingest.refs import find_paper_refs
from rag.store.dedupe import is_near_duplicate, shingles
from rag.store.records import PostRecord, SourceBatch

# Reaction counters as pages render them: "👍7🔥1", "❤2👍1😎1 1", "3🔥15" (custom emoji lost).
_COUNT = re.compile(r"\d+(?:\.\d+)?[KkMm]?")
_REACTION_ITEM = re.compile(r"([^\w\s\d]{1,8}?)\s?(\d+(?:\.\d+)?[KkMm]?)")
_EMOJI_GLUE = {"Mn", "Me", "Cf", "Sk"}  # variation selectors, keycaps, ZWJ, skin tones
DATE_TIME = re.compile(r"^(Deleted)?(\d{2})\.(\d{2})\.(\d{4})\s?(\d{2}):(\d{2})$")

JUNK_EXACT = {
    "Please open Telegram to view this post",
    "Share with your friend now:",
    "View MORE",
    "Open in Telegram",
    "Telegram News",
    "Date: |",
    "from us",
    "Create:",
    "Last Update:",
    "Download Telegram",
    "VIEW IN TELEGRAM",
    "View In Telegram",
    "Log in to unlock more functionality.",
}
JUNK_PATTERNS = [
    re.compile(r"^Shown \d+ - \d+ of \d+$"),
    re.compile(r"^The Channel name and bio must be no more than 255 characters long"),
    re.compile(r"^(?:https?://)?(?:www\.)?(?:tgoop\.com|t\.me)/addlist/\S+$"),
    re.compile(r"^FROM [A-Z][a-z]+$"),
    re.compile(r"^Telegram .{1,64}$"),
    re.compile(r"^.{1,64} avatar$"),
    re.compile(r"^[\d.,]+[KkMm]? (?:subscribers|photos|videos|links|files)$"),
]


def is_reactions(line: str) -> bool:
    """Only counts and emoji (at least one pictograph and one number), no words, short."""
    line = line.strip()
    if not line or len(line) > 80 or not _COUNT.search(line):
        return False
    rest = _COUNT.sub("", line).replace(" ", "")
    categories = [unicodedata.category(ch) for ch in rest]
    return "So" in categories and all(c == "So" or c in _EMOJI_GLUE for c in categories)


def parse_reactions(line: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for emoji, number in _REACTION_ITEM.findall(line):
        value = float(number.rstrip("KkMm"))
        value *= 1000 if number[-1] in "Kk" else 1_000_000 if number[-1] in "Mm" else 1
        counts[emoji] = counts.get(emoji, 0) + int(value)
    return counts


def is_junk_line(line: str) -> bool:
    stripped = line.strip()
    if stripped in JUNK_EXACT:
        return True
    return any(p.match(stripped) for p in JUNK_PATTERNS)


def clean_text(text: str) -> str:
    """Normalize newlines, strip trailing spaces, collapse 3+ newlines, trim the edges."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    lines = [line.rstrip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def clean_with_entities(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """`clean_text(text)` plus entities moved to the cleaned text (empty ones dropped).

    Mirrors `ingest.clean.clean_text` step by step on a keep-mask of the characters:
    CR/LF and NBSP normalization, trailing whitespace of each line, 3+ newlines → 2, outer strip.
    """
    cleaned = clean_text(text)
    if cleaned == text:
        return text, entities
    if cleaned == text.strip():
        # Only the outer strip changed the text (the common case): shift, clip, drop empties.
        lead = utf16_len(text[: len(text) - len(text.lstrip())])
        size = utf16_len(cleaned)
        shifted = []
        for entity in entities:
            start = max(0, int(entity["offset"]) - lead)
            end = min(size, int(entity["offset"]) + int(entity["length"]) - lead)
            if end > start:
                shifted.append({**entity, "offset": start, "length": end - start})
        return cleaned, shifted
    chars: list[str] = []
    origin: list[int] = []  # index in `text` of each char of `chars`
    for index, ch in enumerate(text):
        if ch == "\r":
            if index + 1 < len(text) and text[index + 1] == "\n":
                continue
            ch = "\n"
        elif ch == "\u00a0":
            ch = " "
        chars.append(ch)
        origin.append(index)
    keep = [True] * len(chars)
    # Trailing whitespace of every line (str.rstrip semantics; lines split on "\n" only).
    line_end = len(chars)
    for i in range(len(chars) - 1, -2, -1):
        if i == -1 or chars[i] == "\n":
            j = line_end - 1
            while j > i and chars[j].isspace():
                keep[j] = False
                j -= 1
            line_end = i
    # Runs of 3+ newlines (among kept chars) become two.
    run = 0
    for i, ch in enumerate(chars):
        if not keep[i]:
            continue
        if ch == "\n":
            run += 1
            if run > 2:
                keep[i] = False
        else:
            run = 0
    # Outer strip.
    for order in (range(len(chars)), range(len(chars) - 1, -1, -1)):
        for i in order:
            if not keep[i]:
                continue
            if chars[i].isspace():
                keep[i] = False
            else:
                break
    if cleaned != "".join(ch for ch, k in zip(chars, keep, strict=True) if k):
        # The mirror of clean_text drifted (tests guard it): keep the text, drop the offsets.
        logging.getLogger(__name__).warning("entity offsets dropped: clean_text changed")
        return cleaned, []
    if not entities:
        return cleaned, []
    # Map UTF-16 offsets of `text` to UTF-16 offsets of `cleaned`.
    starts: list[int] = []  # UTF-16 start of each char of `text`
    position = 0
    for ch in text:
        starts.append(position)
        position += 2 if ord(ch) > 0xFFFF else 1
    kept_before = [0] * (len(text) + 1)  # kept UTF-16 units before each char of `text`
    kept_at = {origin[i]: chars[i] for i in range(len(chars)) if keep[i]}
    for index in range(len(text)):
        ch = kept_at.get(index)
        kept_before[index + 1] = kept_before[index] + (0 if ch is None else (2 if ord(ch) > 0xFFFF else 1))

    def remap(offset: int) -> int:
        return kept_before[bisect.bisect_left(starts, offset)] if offset < position else kept_before[-1]

    moved = []
    for entity in entities:
        start = remap(int(entity["offset"]))
        end = remap(int(entity["offset"]) + int(entity["length"]))
        if end > start:
            moved.append({**entity, "offset": start, "length": end - start})
    return cleaned, moved


def _merge_into(keep: PostRecord, other: PostRecord) -> None:
    """`keep` (the longer text) takes the metadata `other` has and it lacks."""
    for name in (
        "message_id",
        "date",
        "edited",
        "author",
        "channel_title",
        "forwarded_from",
        "reply_to",
        "views",
    ):
        if getattr(keep, name) is None and getattr(other, name) is not None:
            setattr(keep, name, getattr(other, name))
    if not keep.channel and other.channel:
        keep.channel = other.channel
    if not keep.reactions and other.reactions:
        keep.reactions = other.reactions
    keep.links = list(dict.fromkeys([*keep.links, *other.links]))


def _compatible(a: PostRecord, b: PostRecord) -> bool:
    """Two copies can be one post unless both carry different Telegram ids."""
    return a.message_id is None or b.message_id is None or a.message_id == b.message_id


def dedupe_posts(posts: list[PostRecord], *, near: bool = True) -> tuple[list[PostRecord], int]:
    """Returns (unique posts in first-seen order, number of copies merged away).

    `near=False` skips the quadratic shingle comparison (exports, where ids identify posts).
    """
    kept: list[PostRecord] = []
    kept_shingles: list[frozenset[int]] = []
    by_hash: dict[str, int] = {}
    by_id: dict[tuple[str, int], int] = {}
    merged = 0
    for post in posts:
        digest = post.content_hash
        index = by_id.get((post.channel, post.message_id)) if post.message_id is not None else None
        if index is None:
            index = by_hash.get(digest)
            if index is not None and not _compatible(post, kept[index]):
                index = None
        post_shingles = shingles(post.text) if near else frozenset()
        if index is None and near:
            for i, other in enumerate(kept_shingles):
                if _compatible(post, kept[i]) and is_near_duplicate(post_shingles, other):
                    index = i
                    break
        if index is None:
            by_hash[digest] = len(kept)
            if post.message_id is not None:
                by_id[(post.channel, post.message_id)] = len(kept)
            kept.append(post)
            kept_shingles.append(post_shingles)
            continue
        merged += 1
        existing = kept[index]
        if len(post.text) > len(existing.text):
            _merge_into(post, existing)
            kept[index], kept_shingles[index] = post, post_shingles
        else:
            _merge_into(existing, post)
        by_hash[digest] = index
        if kept[index].message_id is not None:
            by_id[(kept[index].channel, kept[index].message_id)] = index
    return kept, merged


def finish_batch(batch: SourceBatch, *, near_duplicates: bool = True) -> SourceBatch:
    """Clean texts, drop empty posts, merge duplicates, attach paper references."""
    cleaned = []
    for post in batch.posts:
        post.text, post.entities = clean_with_entities(post.text, post.entities)
        if post.text or post.media:
            cleaned.append(post)
        else:
            batch.skipped += 1
    cleaned, _merged = dedupe_posts(cleaned, near=near_duplicates)
    batch.posts = cleaned
    papers = {paper.key: paper for paper in batch.papers}
    for post in batch.posts:
        for ref in find_paper_refs(post.text, post.links):
            papers.setdefault(ref.key, ref)
            if ref.key not in post.paper_keys:
                post.paper_keys.append(ref.key)
    batch.papers = list(papers.values())
    return batch
