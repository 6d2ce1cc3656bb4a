"""Near-duplicate detection by word shingles: the preview and full-text copies of one post.

Used by the ingest cleaner (inside one source) and by the store (across sources, e.g. a post
captured with its id on one page and without it on another).
"""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+", re.UNICODE)
SHINGLE = 3
# Containment of the shorter text's shingles in the longer one's. A preview is a prefix of the
# full text (containment ~1.0); two different posts of one channel share well under 0.3.
NEAR_DUPLICATE = 0.8
MIN_SHINGLES = 6


def shingles(text: str, size: int = SHINGLE) -> frozenset[int]:
    words = _WORD.findall(text.casefold())
    if len(words) < size:
        return frozenset({hash(" ".join(words))}) if words else frozenset()
    return frozenset(hash(" ".join(words[i : i + size])) for i in range(len(words) - size + 1))


def containment(a: frozenset[int], b: frozenset[int]) -> float:
    """Share of the smaller set found in the larger one (1.0 when one text contains the other)."""
    if not a or not b:
        return 0.0
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    if len(small) < MIN_SHINGLES:
        # Too short to judge by overlap: a two-word post is "contained" in many others.
        return 1.0 if small == large else 0.0
    return len(small & large) / len(small)


def is_near_duplicate(a: frozenset[int], b: frozenset[int], threshold: float = NEAR_DUPLICATE) -> bool:
    return containment(a, b) >= threshold
