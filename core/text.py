"""Text measures and the citation marker, one definition each.

- `utf16_len`: UTF-16 code units, the unit of Telegram's entity offsets and message limit (4,096).
- `grapheme_length`: user-perceived characters (Bluesky counts 300 of them), via `grapheme`.
- `CITATION`: a citation marker in model text, `[1]`, `[2, 3]` (`[1][2]` is two markers); up to
  three digits, so a stray `[100]` is seen as a marker (and dropped when it names no source)
  rather than left looking like one.
"""

from __future__ import annotations

import re

import grapheme

CITATION = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")


def citation_numbers(marker_body: str) -> list[int]:
    """`"2, 3"` (a CITATION match's group 1) -> [2, 3]."""
    return [int(n) for n in re.split(r"\s*,\s*", marker_body.strip())]


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: the unit of Telegram entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def grapheme_length(text: str) -> int:
    return int(grapheme.length(text))
