"""Bluesky rich-text facets as the Bluesky app detects them (atproto's `RichText.detectFacets`,
packages/api/src/rich-text/detection.ts and util.ts), on the text of one post. Offsets here are
code points; `crosspost.targets.bluesky` turns them into the UTF-8 byte offsets facets carry.

- links: `http(s)://` up to the next space, or a bare domain whose last label is a known TLD
  (`website.com.jpg` is not a link: `jpg` is no TLD); after `^`, a space or `(`; one trailing
  `.,;:!?` and an unmatched `)` are not part of the link; a bare domain links to `https://...`.
- tags: `#` or full-width `＃` after `^` or a space, up to the next space or zero-width character;
  at least one character that is not a digit or punctuation; trailing punctuation is dropped
  (`#with,punctuation` keeps its comma, `#tag!!` does not); `##hashash` is the tag `#hashash`;
  a tag longer than 64 graphemes is no tag.
- mentions: `@handle.with.tld` after `^`, a space or `(`. A mention facet must carry the account's
  DID, which only the network can resolve: offline they are reported, not turned into facets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import grapheme
import regex

from crosspost.tokens import TLDS

MENTION = re.compile(r"(^|\s|\()@([a-zA-Z0-9.-]+)\b", re.ASCII)
LINK = re.compile(r"(^|\s|\()((?:https?://\S+)|(?P<domain>[a-z][a-z0-9]*(?:\.[a-z0-9]+)+)\S*)", re.I | re.M)
_ZW = "\u00ad\u2060\u200a\u200b\u200c\u200d\u20e2"
TAG = regex.compile(rf"(^|\s)[#＃]((?!\ufe0f)[^\s{_ZW}]*[^\d\s\p{{P}}{_ZW}]+[^\s{_ZW}]*)?")
TRAILING_PUNCTUATION = regex.compile(r"\p{P}+$")
MAX_TAG_GRAPHEMES = 64


@dataclass(frozen=True)
class Found:
    start: int
    end: int
    kind: str  # "link" | "tag" | "mention"
    value: str  # the URI, the tag (without #), or the handle


def valid_domain(host: str) -> bool:
    return "." in host and host.rsplit(".", 1)[1].lower() in TLDS


def detect(text: str) -> list[Found]:
    found: list[Found] = []
    for match in MENTION.finditer(text):
        handle = match.group(2)
        if valid_domain(handle) or handle.endswith(".test"):
            found.append(Found(match.start(2) - 1, match.end(2), "mention", handle))
    for match in LINK.finditer(text):
        uri, start = match.group(2), match.start(2)
        if not uri.lower().startswith("http"):
            if not match.group("domain") or not valid_domain(match.group("domain")):
                continue
            uri = "https://" + uri
        end = match.end(2)
        if uri[-1] in ".,;:!?":
            uri, end = uri[:-1], end - 1
        if uri.endswith(")") and "(" not in uri:
            uri, end = uri[:-1], end - 1
        found.append(Found(start, end, "link", uri))
    for match in TAG.finditer(text):
        tag = match.group(2)
        if not tag:
            continue
        tag = TRAILING_PUNCTUATION.sub("", tag.strip())
        if not tag or grapheme.length(tag) > MAX_TAG_GRAPHEMES:
            continue
        start = match.start() + len(match.group(1))
        found.append(Found(start, start + 1 + len(tag), "tag", tag))
    return found
