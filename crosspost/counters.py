"""Length counters, one per network family, named in the rules table (`counter = "..."`).

- `twitter`: X's weighted length via `twitter-text-parser` (URLs count `url_length`, CJK and emoji 2).
- `graphemes`: user-perceived characters (Bluesky's 300), via the `grapheme` package.
- `mastodon`: graphemes after Mastodon's own substitutions: every http(s) URL counts
  `url_length` (23), `@user@domain` counts as `@user` (app/validators/status_length_validator.rb).
- `utf16`: UTF-16 code units, what a JavaScript `.length` counts (Threads, LinkedIn: the
  conservative choice, since an emoji there counts 2 and never less than its graphemes).
- `chars`: code points.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from functools import lru_cache

import grapheme

with warnings.catch_warnings():  # twitter-text still imports pkg_resources (setuptools<81 pinned)
    warnings.simplefilter("ignore")
    from twitter_text import parse_tweet
    from twitter_text.config import config as _twitter_config
    from twitter_text.extract_emojis import extract_emojis_with_indices
    from twitter_text.get_character_weight import get_character_weight

from crosspost.tokens import extract_urls_with_indices, find_urls
from ingest.clean import utf16_len

Counter = Callable[[str], int]
_MASTODON_MENTION = re.compile(r"(?<![\w@])(@[A-Za-z0-9_]+)@[\w.-]+\.[a-z]{2,}", re.I)


@lru_cache(maxsize=8)
def _twitter_options(url_length: int) -> dict:
    options = dict(_twitter_config["defaults"])
    options["transformed_url_length"] = url_length
    return options


def twitter_length(text: str, url_length: int = 23) -> int:
    return parse_tweet(text, _twitter_options(url_length)).weightedLength


def grapheme_length(text: str) -> int:
    return grapheme.length(text)


def mastodon_length(text: str, url_length: int = 23) -> int:
    text = _MASTODON_MENTION.sub(r"\1", text)
    pieces, cursor, urls = [], 0, 0
    for start, end in find_urls(text):
        if not re.match(r"https?://", text[start:end], re.I):
            continue  # Mastodon links only URLs with a scheme
        pieces.append(text[cursor:start])
        cursor = end
        urls += 1
    pieces.append(text[cursor:])
    return grapheme.length("".join(pieces)) + urls * url_length


def utf16_length(text: str) -> int:
    """Telegram's and Threads'/LinkedIn's (assumed) unit: UTF-16 code units."""
    return utf16_len(text)


COUNTERS: dict[str, Callable[..., int]] = {
    "twitter": twitter_length,
    "graphemes": lambda text, url_length=23: grapheme_length(text),
    "mastodon": mastodon_length,
    "utf16": lambda text, url_length=23: utf16_length(text),
    "chars": lambda text, url_length=23: len(text),
}


def _grapheme_marks(text: str) -> list[int]:
    """1 at each grapheme start, 0 elsewhere."""
    marks = [0] * len(text)
    pos = 0
    for cluster in grapheme.graphemes(text):
        marks[pos] = 1
        pos += len(cluster)
    return marks


def _prefix(weights: list[int]) -> list[int]:
    out = [0]
    for w in weights:
        out.append(out[-1] + w)
    return out


def prefix_lengths(name: str, text: str, url_length: int = 23) -> list[int]:
    """Additive per-position weights, summed: `P[b] - P[a]` is the length of `text[a:b]` whenever a
    and b are grapheme boundaries outside URLs. The splitter searches with these (one pass over
    the post instead of one count per candidate) and then checks each part with the exact counter.
    For X the weights come from twitter-text's own URL/emoji extractors and weight table."""
    if name == "twitter":
        options = _twitter_options(url_length)
        scale = options["scale"]
        weights = [get_character_weight(ch, options) for ch in text]
        for item in extract_emojis_with_indices(text):
            start, end = item["indices"]
            weights[start:end] = [options["default_weight"]] + [0] * (end - start - 1)
        for item in extract_urls_with_indices(text):
            start, end = item["indices"]
            weights[start:end] = [url_length * scale] + [0] * (end - start - 1)
        return [p // scale for p in _prefix(weights)]
    if name in ("graphemes", "mastodon"):
        weights = _grapheme_marks(text)
        if name == "mastodon":
            for match in _MASTODON_MENTION.finditer(text):
                weights[match.end(1) : match.end()] = [0] * (match.end() - match.end(1))
            for start, end in find_urls(text):
                if re.match(r"https?://", text[start:end], re.I):
                    weights[start:end] = [url_length] + [0] * (end - start - 1)
        return _prefix(weights)
    if name == "utf16":
        return _prefix([2 if ord(ch) > 0xFFFF else 1 for ch in text])
    return list(range(len(text) + 1))


def make_counter(name: str, url_length: int = 23) -> Counter:
    function = COUNTERS[name]
    return lambda text: function(text, url_length)
