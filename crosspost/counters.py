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

from crosspost.tokens import find_urls

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
    return len(text.encode("utf-16-le")) // 2


COUNTERS: dict[str, Callable[..., int]] = {
    "twitter": twitter_length,
    "graphemes": lambda text, url_length=23: grapheme_length(text),
    "mastodon": mastodon_length,
    "utf16": lambda text, url_length=23: utf16_length(text),
    "chars": lambda text, url_length=23: len(text),
}


def make_counter(name: str, url_length: int = 23) -> Counter:
    function = COUNTERS[name]
    return lambda text: function(text, url_length)
