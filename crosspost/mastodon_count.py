"""Mastodon's status length, as its server counts it (app/validators/status_length_validator.rb).

The text is rewritten before counting graphemes: every URL entity becomes 23 characters and every
mention `@user@domain` becomes `@user`. Which URLs and mentions count is Mastodon's own rule, not
X's, and differs in ways a post notices:
- URLs need a scheme (http, https, dat, dweb, ipfs, ipns, ssb, gopher, gemini); the path takes
  any non-space character but `<>()?` (balanced parentheses, one level nested, are allowed), and
  may not end in `!*"'「」;:=,.$%[]~&|@` (Mastodon's config/initializers/twitter_regex.rb). So a
  URL glued to `),word` ends at the parenthesis, while `/path,word` runs through the word.
- a URL longer than 4,096 characters is not a URL entity (twitter-text's limit) and counts in full;
- a mention whose domain is longer than 253 characters is not one either (app/lib/extractor.rb)
  and counts in full; a mention followed by `@`, an accented Latin letter or `://` is not one.
Host, port and preceding-character rules are twitter-text's, taken from `twitter-text-parser`.
"""

from __future__ import annotations

import re
import warnings

with warnings.catch_warnings():  # twitter-text still imports pkg_resources (setuptools<81 pinned)
    warnings.simplefilter("ignore")
    from twitter_text.regexp.latin_accent_chars import latin_accent_chars
    from twitter_text.regexp.valid_domain import valid_domain
    from twitter_text.regexp.valid_port_number import valid_port_number
    from twitter_text.regexp.valid_tco_url import valid_tco_url
    from twitter_text.regexp.valid_url_preceding_chars import valid_url_preceding_chars

MAX_URL_LENGTH = 4096  # twitter-text's MAX_URL_LENGTH, scheme included
MAX_DOMAIN_LENGTH = 253  # Mastodon's Extractor::MAX_DOMAIN_LENGTH

_UCHARS = (
    "\u00a0-\ud7ff\uf900-\ufdcf\ufdf0-\uffef\U00010000-\U0001fffd\U00020000-\U0002fffd"
    "\U00030000-\U0003fffd\U00040000-\U0004fffd\U00050000-\U0005fffd\U00060000-\U0006fffd"
    "\U00070000-\U0007fffd\U00080000-\U0008fffd\U00090000-\U0009fffd\U000a0000-\U000afffd"
    "\U000b0000-\U000bfffd\U000c0000-\U000cfffd\U000d0000-\U000dfffd\U000e1000-\U000efffd"
    "\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd"
)
_PATH_CHAR = r"[^\s<>()?]"
_BALANCED = rf"\((?:{_PATH_CHAR}+|{_PATH_CHAR}*\({_PATH_CHAR}+\){_PATH_CHAR}*)\)"
_PATH_END = rf"(?:[^\s()?!*\"'「」<>;:=,.$%\[\]~&|@]|{_BALANCED})"
_PATH = rf"(?:{_PATH_CHAR}*(?:{_BALANCED}{_PATH_CHAR}*)*{_PATH_END}|{_PATH_CHAR}+/)"
_QUERY = rf"\?[a-z0-9!?*'();:&=+$/%#\[\]\-_.,~|@\^{_UCHARS}]*[a-z0-9_&=#/\-{_UCHARS}]"
URL = re.compile(
    rf"(?:{valid_url_preceding_chars.pattern})"
    rf"(?P<url>(?P<scheme>(?:https?|dat|dweb|ipfs|ipns|ssb|gopher|gemini)://)?"
    rf"(?P<domain>{valid_domain.pattern})(?::{valid_port_number.pattern})?"
    rf"(?:/{_PATH}*)?(?:{_QUERY})?)",
    re.I,
)
_USERNAME = r"[a-z0-9_]+(?:[.-]+[a-z0-9_]+)*"
MENTION = re.compile(rf"(?<![=/\w])@(?P<user>(?i:{_USERNAME}))(?:@(?P<domain>\w+(?:[.-]+\w+)*))?")
_END_MENTION = re.compile(rf"[@＠{latin_accent_chars.pattern}]|://")


def _idna_length(domain: str) -> int:
    try:
        return len(domain.encode("idna"))
    except UnicodeError:
        return -1


def entities(text: str) -> list[tuple[int, int, int]]:
    """(start, end, counted length) of each URL and mention Mastodon substitutes, in order."""
    found: list[tuple[int, int, int]] = []
    if ":" in text:
        for match in URL.finditer(text):
            if not match.group("scheme"):
                continue
            start, end = match.span("url")
            tco = valid_tco_url.match(text, start, end)
            if tco:
                end = tco.end()
            encoded = _idna_length(match.group("domain"))
            if encoded < 0:
                continue
            if (end - start) + max(0, encoded - len(match.group("domain"))) > MAX_URL_LENGTH:
                continue
            found.append((start, end, -1))  # -1: the rules' URL length
    if "@" in text:
        for match in MENTION.finditer(text):
            if _END_MENTION.match(text, match.end()):
                continue
            domain = match.group("domain")
            if domain and len(domain) > MAX_DOMAIN_LENGTH:
                continue
            found.append((match.start(), match.end(), 1 + len(match.group("user"))))
    found.sort()
    kept: list[tuple[int, int, int]] = []
    for entity in found:  # twitter-text's remove_overlapping_entities: the earlier one wins
        if not kept or entity[0] >= kept[-1][1]:
            kept.append(entity)
    return kept


def countable_text(text: str, url_length: int = 23) -> str:
    """The text Mastodon measures: URLs as `url_length` x's, remote mentions as `@user`."""
    pieces, cursor = [], 0
    for start, end, size in entities(text):
        pieces.append(text[cursor:start])
        pieces.append("x" * url_length if size < 0 else text[start : start + size])
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)
