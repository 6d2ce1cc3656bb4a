"""Finding the tokens that must stay whole: URLs, @mentions, #hashtags, code spans, numbers with
units, model names and terms. Splitting never breaks inside one; translation masks them.

Entities follow twitter-text, the reference every network's extractor descends from (its
conformance suite, extract.yml, is what the tests are written against):
- URLs: `twitter-text-parser`'s own extractor (bare domains such as `github.com/x` are URLs;
  hosts without a known TLD, CJK glued to a URL and trailing bidi marks are not part of one).
  A `scheme://` run it does not take (`http://localhost:8000`, over 4,096 characters) is kept
  whole as a `uri` token but is not counted or linked as a URL.
- #hashtags: letters and marks of every script, digits, `_`, ZWNJ/ZWJ and the few joiners
  twitter-text lists (Hebrew geresh, Tibetan tsheg, katakana middle dot...), `#` or full-width `＃`;
  at least one letter; not followed by another hash sign or `://`.
- @mentions: 1-20 of `[A-Za-z0-9_]` after any character but a letter/digit/`_!#$%&*@`
  (so `の@user` and `RT@user` are mentions, `foo@bar` is not), not followed by `@`, an accented
  Latin letter or `://`; plus the longer forms other networks use, kept whole:
  `@user@instance.social` (Mastodon) and `@handle.bsky.social` (Bluesky).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from functools import lru_cache

import grapheme
import regex

with warnings.catch_warnings():  # twitter-text still imports pkg_resources (setuptools<81 pinned)
    warnings.simplefilter("ignore")
    from twitter_text.extract_urls import extract_urls_with_indices
    from twitter_text.regexp.latin_accent_chars import latin_accent_chars
    from twitter_text.regexp.valid_cctld import valid_cctld
    from twitter_text.regexp.valid_gtld import valid_gtld

# Known top-level domains: the IANA list twitter-text ships as two alternations.
TLDS = frozenset(
    name.lower()
    for pattern in (valid_gtld.pattern, valid_cctld.pattern)
    for name in pattern.split("(?=")[0].strip("(?:)").split("|")
)
# An ASCII `scheme://...` run (RFC 3986 characters) that twitter-text does not take as a URL.
SCHEME_URI = re.compile(
    r"(?<![A-Za-z0-9+.-])[a-z][a-z0-9+.-]{1,15}://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+", re.I
)
TRAILING_PUNCT = ".,;:!?…)»\"'”]"

_HASH_ALNUM = r"[\p{L}\p{M}\p{Nd}_\u200c\u200d\ua67e\u05be\u05f3\u05f4\uff5e\u301c\u309b\u309c\u30a0\u30fb\u3003\u0f0b\u0f0c\u00b7]"
HASHTAG = regex.compile(
    rf"(?:(?<=^|[\ufe0e\ufe0f])|(?<!{_HASH_ALNUM}|&))[#＃](?![\ufe0f\u20e3])"
    rf"{_HASH_ALNUM}*[\p{{L}}\p{{M}}]{_HASH_ALNUM}*"
)
_END_HASHTAG = regex.compile(r"[#＃]|://")
_AT = "@＠"
TWITTER_MENTION = regex.compile(
    rf"(?:(?<=^|[^a-zA-Z0-9_!#$%&*{_AT}])|(?<=(?:^|[^a-zA-Z0-9_+~.-])(?:rt|RT|rT|Rt):?))"
    rf"[{_AT}][a-zA-Z0-9_]{{1,20}}(?:/[a-zA-Z][a-zA-Z0-9_-]{{0,24}})?"
)
_END_MENTION = regex.compile(rf"[{_AT}{latin_accent_chars.pattern}]|://")
# `@user@instance.tld` (Mastodon's account syntax) and `@name.host.tld` (a Bluesky handle).
FEDI_MENTION = regex.compile(
    r"(?<![=/\w@])@[a-z0-9_]+(?:[.-]+[a-z0-9_]+)*@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}\b", regex.I
)
HANDLE_MENTION = regex.compile(
    r"(?<![\w@.])@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+\b", regex.I
)
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
    kind: str  # "url" | "uri" | "mention" | "hashtag" | "email" | "code" | "number" | "term"

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
    """URL entities exactly as twitter-text extracts them (code point offsets)."""
    return list(_urls(text))


@lru_cache(maxsize=64)
def _urls(text: str) -> tuple[tuple[int, int], ...]:
    # the same text is asked for again and again (tokens, hashtags, counters, breaks): cached,
    # because twitter-text's URL regex is the slowest step of a conversion
    return tuple((item["indices"][0], item["indices"][1]) for item in extract_urls_with_indices(text))


@lru_cache(maxsize=64)
def _grapheme_starts(text: str) -> tuple[int, ...]:
    starts, pos = [], 0
    for cluster in grapheme.graphemes(text):
        starts.append(pos)
        pos += len(cluster)
    return tuple(starts)


def grapheme_starts(text: str) -> tuple[int, ...]:
    """Where each grapheme cluster starts (cached: the splitter and the counters both ask)."""
    return _grapheme_starts(text)


def find_uris(text: str) -> list[tuple[int, int]]:
    """`scheme://` runs that are not URL entities (kept whole, never counted as a URL)."""
    urls = find_urls(text)
    out = []
    for match in SCHEME_URI.finditer(text):
        start, end = match.start(), _trim_url(text, match.start(), match.end())
        if end - start > len(match.group().split("://")[0]) + 3 and not any(a <= start < b for a, b in urls):
            out.append((start, end))
    return out


def extract_hashtags(text: str) -> list[tuple[int, int]]:
    """Hashtags (the `#` included) as twitter-text finds them, in every script; not inside a URL."""
    if "#" not in text and "＃" not in text:
        return []
    urls = find_urls(text)
    found = []
    for match in HASHTAG.finditer(text):
        if _END_HASHTAG.match(text, match.end()):
            continue
        if not any(a < match.end() and match.start() < b for a, b in urls):
            found.append(match.span())
    return found


def extract_mentions(text: str) -> list[tuple[int, int]]:
    """@screen_name (and @name/list) mentions as twitter-text finds them (the `@` included)."""
    if "@" not in text and "＠" not in text:
        return []
    return [m.span() for m in TWITTER_MENTION.finditer(text) if not _END_MENTION.match(text, m.end())]


def find_mentions(text: str) -> list[tuple[int, int]]:
    """Every mention to keep whole: `@user@instance.tld`, `@handle.bsky.social`, then twitter-text's."""
    if "@" not in text and "＠" not in text:
        return []
    spans = [m.span() for m in FEDI_MENTION.finditer(text)]
    spans += [
        m.span()
        for m in HANDLE_MENTION.finditer(text)
        if m.group().rsplit(".", 1)[-1].lower() in TLDS and text[m.end() : m.end() + 1] != "@"
    ]
    return _merge([*spans, *extract_mentions(text)])


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
    """Non-overlapping protected tokens, earlier kinds winning: URLs, other URIs, code, e-mails,
    mentions, hashtags, then (for splitting) numbers with their units or (for translation) bare
    numbers and terms."""
    taken: list[Token] = []
    occupied = bytearray(len(text) + 1)

    def add(start: int, end: int, kind: str) -> None:
        if end <= start or any(occupied[start:end]):
            return
        occupied[start:end] = b"\x01" * (end - start)
        taken.append(Token(start, end, kind))

    for start, end in find_urls(text):
        add(start, end, "url")
    for start, end in find_uris(text):
        add(start, end, "uri")
    for match in CODE_SPAN.finditer(text):
        add(match.start(), match.end(), "code")
    for start, end in find_mentions(text):
        add(start, end, "mention")
    for match in EMAIL.finditer(text):
        add(match.start(), match.end(), "email")
    for start, end in extract_hashtags(text):
        add(start, end, "hashtag")
    if terms:
        for match in LATIN_WORD.finditer(text):
            if _is_term(match.group(), latin_is_foreign):
                add(match.start(), match.end(), "term")
    for match in (NUMBER_UNIT if units else NUMBER).finditer(text):
        add(match.start(), match.end(), "number")
    taken.sort(key=lambda t: t.start)
    return taken
