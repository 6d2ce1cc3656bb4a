"""Finding the tokens that must stay whole: URLs, @mentions, #hashtags, code spans, numbers with
units, model names and terms. Splitting never breaks inside one; translation masks them.

URLs are found with `twitter-text` (X's own extractor: bare domains such as `github.com/x` count
as URLs there), plus any `scheme://` run it does not recognise.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

with warnings.catch_warnings():  # twitter-text still imports pkg_resources (setuptools<81 pinned)
    warnings.simplefilter("ignore")
    from twitter_text.extract_urls import extract_urls_with_indices

SCHEME_URL = re.compile(r"\b[a-z][a-z0-9+.-]{1,15}://[^\s<>\"'`]+", re.I)
TRAILING_PUNCT = ".,;:!?…)»\"'”]"
MENTION = re.compile(r"(?<![\w@/.])@[A-Za-z0-9_]{3,32}\b")
HASHTAG = re.compile(r"(?<![\w#&/])#\w*[^\W\d]\w*")
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
CODE_SPAN = re.compile(r"`[^`\n]+`")
# A number and the unit that follows it ("2.1 раза", "16 GB", "256px", "2 308 токенов", "~2.5M");
# digit runs longer than 15 are hashes or ids, not quantities, and may be cut like any long word.
NUMBER_UNIT = re.compile(
    r"(?<![\w.,])[~≈±]?\d{1,15}(?:[.,]\d{1,15})*(?!\d)(?:[ \u00a0\u202f]\d{3}\b)*"
    r"(?:[ \u00a0\u202f]?(?:%|°C?|×|x\b|[^\W\d_]{1,12}\b))?"
)
NUMBER = re.compile(r"(?<![\w.,])[~≈±]?\d{1,15}(?:[.,]\d{1,15})*(?!\d)(?:[%×x]|[KMBGTkm]\b)?(?![\w])")
# Terms and model names: letters with digits (INT8, H100, Qwen-2.5VL, o4-mini), CamelCase
# (SageAttention, FlashAttention2), ALLCAPS (DPO, GRPO), joined by -./+ (SD3/FLUX).
LATIN_WORD = re.compile(r"(?<![\w])[A-Za-z][A-Za-z0-9]*(?:[-./+_][A-Za-z0-9]+)*(?![\w])")


@dataclass(frozen=True)
class Token:
    start: int
    end: int
    kind: str  # "url" | "mention" | "hashtag" | "email" | "code" | "number" | "term"

    @property
    def span(self) -> tuple[int, int]:
        return self.start, self.end


def _trim_url(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1] in TRAILING_PUNCT:
        # keep a closing bracket that has its opening one inside the URL
        if text[end - 1] == ")" and text[start:end].count("(") >= text[start:end].count(")"):
            break
        end -= 1
    return end


def find_urls(text: str) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    for item in extract_urls_with_indices(text):
        start, end = item["indices"]
        found.append((start, end))
    for match in SCHEME_URL.finditer(text):
        end = _trim_url(text, match.start(), match.end())
        found.append((match.start(), end))
    return _merge(found)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _is_term(word: str, latin_is_foreign: bool) -> bool:
    if latin_is_foreign:
        return True
    return (
        any(ch.isdigit() for ch in word)
        or any(ch.isupper() for ch in word[1:])
        or (len(word) > 1 and word.isupper())
        or any(ch in "-./+_" for ch in word)
    )


def find_tokens(
    text: str, *, units: bool = True, terms: bool = False, latin_is_foreign: bool = False
) -> list[Token]:
    """Non-overlapping protected tokens, earlier kinds winning: URLs, code, e-mails, mentions,
    hashtags, then (for splitting) numbers with their units or (for translation) bare numbers and terms."""
    taken: list[Token] = []
    occupied = bytearray(len(text) + 1)

    def add(start: int, end: int, kind: str) -> None:
        if end <= start or any(occupied[start:end]):
            return
        occupied[start:end] = b"\x01" * (end - start)
        taken.append(Token(start, end, kind))

    for start, end in find_urls(text):
        add(start, end, "url")
    for pattern, kind in ((CODE_SPAN, "code"), (EMAIL, "email"), (MENTION, "mention"), (HASHTAG, "hashtag")):
        for match in pattern.finditer(text):
            add(match.start(), match.end(), kind)
    if terms:
        for match in LATIN_WORD.finditer(text):
            if _is_term(match.group(), latin_is_foreign):
                add(match.start(), match.end(), "term")
    for match in (NUMBER_UNIT if units else NUMBER).finditer(text):
        add(match.start(), match.end(), "number")
    taken.sort(key=lambda t: t.start)
    return taken
