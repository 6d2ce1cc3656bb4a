"""Length counters, one per network family, named in the rules table (`counter = "..."`).

- `twitter`: X's weighted length via `twitter-text-parser` (URLs count `url_length`, CJK and emoji 2).
- `graphemes`: user-perceived characters (Bluesky's 300), `core.text.grapheme_length`.
- `mastodon`: graphemes after Mastodon's own substitutions (`crosspost.mastodon_count`): URLs
  with a scheme count `url_length` (23) unless longer than 4,096, `@user@domain` counts as `@user`
  unless the domain is longer than 253 (app/validators/status_length_validator.rb).
- `utf16`: UTF-16 code units, what a JavaScript `.length` counts (Threads, LinkedIn: the
  conservative choice, since an emoji there counts 2 and never less than its graphemes).
- `chars`: code points.

A rule may add `max_bytes`, a second limit in UTF-8 bytes (Bluesky: 300 graphemes AND 3,000
bytes, the app.bsky.feed.post record's `maxGraphemes`/`maxLength`): `fit_measure` folds both into
one number the splitter compares with `limit`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import lru_cache

with warnings.catch_warnings():  # twitter-text still imports pkg_resources (setuptools<81 pinned)
    warnings.simplefilter("ignore")
    from twitter_text import parse_tweet
    from twitter_text.config import config as _twitter_config
    from twitter_text.extract_emojis import extract_emojis_with_indices
    from twitter_text.get_character_weight import get_character_weight

from core.text import grapheme_length, utf16_len
from crosspost import mastodon_count
from crosspost.tokens import find_urls, grapheme_starts

Counter = Callable[[str], int]


@lru_cache(maxsize=8)
def _twitter_options(url_length: int) -> dict:
    options = dict(_twitter_config["defaults"])
    options["transformed_url_length"] = url_length
    return options


def twitter_length(text: str, url_length: int = 23) -> int:
    return parse_tweet(text, _twitter_options(url_length)).weightedLength


def mastodon_length(text: str, url_length: int = 23) -> int:
    return grapheme_length(mastodon_count.countable_text(text, url_length))


def utf8_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


utf16_length = utf16_len  # Telegram's and Threads'/LinkedIn's (assumed) unit: UTF-16 code units


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
    for start in grapheme_starts(text):
        marks[start] = 1
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
        for start, end in find_urls(text):
            weights[start:end] = [url_length * scale] + [0] * (end - start - 1)
        return [p // scale for p in _prefix(weights)]
    if name in ("graphemes", "mastodon"):
        weights = _grapheme_marks(text)
        if name == "mastodon":
            for start, end, size in mastodon_count.entities(text):
                weights[start:end] = [url_length if size < 0 else size] + [0] * (end - start - 1)
        return _prefix(weights)
    if name == "utf16":
        return _prefix([2 if ord(ch) > 0xFFFF else 1 for ch in text])
    return list(range(len(text) + 1))


def make_counter(name: str, url_length: int = 23) -> Counter:
    function = COUNTERS[name]
    return lambda text: function(text, url_length)


def fit_measure(count: Counter, limit: int, max_bytes: int | None) -> Counter:
    """One number to compare with `limit` that is within it exactly when the text is within both
    `limit` by `count` and `max_bytes` in UTF-8: max(count, ceil(bytes * limit / max_bytes))."""
    if not max_bytes:
        return count
    return lambda text: max(count(text), -(-utf8_length(text) * limit // max_bytes))


def byte_prefix(text: str) -> list[int]:
    return _prefix([len(ch.encode("utf-8", "surrogatepass")) for ch in text])
