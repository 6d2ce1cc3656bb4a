"""Bluesky: 300 graphemes and 3,000 UTF-8 bytes per post; links, tags (and, online, mentions) are
facets with UTF-8 byte offsets. A text link keeps its anchor text and a long URL is shown
shortened, as the Bluesky app does, both linked in full; everything else is faceted as the app
would detect it in the posted text (`crosspost.atproto`). Mentions stay plain text: a mention
facet needs the handle resolved to a DID, which needs the network, and each part says so.
"""

from __future__ import annotations

from crosspost import atproto
from crosspost.render import Link, PlainStyle, Rendered, shorten_url
from crosspost.split import Piece
from crosspost.targets import register
from crosspost.targets.base import Part, PlainTarget

SHOWN_URL = 30  # characters of a URL shown before "…"
MENTION_NOTE = (
    "mentions kept as plain text (a Bluesky mention facet needs the handle resolved to a DID, "
    "which needs the network): {}"
)


def _byte(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def link_facet(text: str, start: int, end: int, uri: str) -> dict:
    return {
        "index": {"byteStart": _byte(text, start), "byteEnd": _byte(text, end)},
        "features": [{"$type": "app.bsky.richtext.facet#link", "uri": uri}],
    }


def tag_facet(text: str, start: int, end: int, tag: str | None = None) -> dict:
    return {
        "index": {"byteStart": _byte(text, start), "byteEnd": _byte(text, end)},
        "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": tag or text[start + 1 : end]}],
    }


@register
class Bluesky(PlainTarget):
    name = "bluesky"
    style = PlainStyle(link_facets=True, shorten_urls=SHOWN_URL)

    def original_link(self, permalink: str) -> Rendered:
        shown = shorten_url(permalink, SHOWN_URL)
        return Rendered(shown, links=[Link(0, len(shown), permalink)], protected=[(0, len(shown))])

    def convert(self, doc, rules, permalink) -> list[Part]:
        parts = super().convert(doc, rules, permalink)
        for part in parts:
            mentions = [f.value for f in atproto.detect(part.text) if f.kind == "mention"]
            if mentions:
                part.notes.append(MENTION_NOTE.format(", ".join("@" + m for m in dict.fromkeys(mentions))))
                part.unresolved_mentions = mentions
        return parts

    def facets(
        self, rendered: Rendered, piece: Piece, text: str, link: Rendered | None, link_at: int
    ) -> list:
        detected = atproto.detect(text)
        auto = {f.start: f for f in detected if f.kind == "link"}
        shift = len(piece.lead) - piece.start
        known: list[tuple[int, int, str]] = []
        for item in rendered.links:
            start, end = max(item.start, piece.start), min(item.end, piece.end)
            if start >= end:
                continue
            start, end = start + shift, end + shift
            if item.shown:
                # a URL shown as typed is linked only where the app would link it, as it would
                found = auto.get(start)
                if found is None:
                    continue
                start, end, uri = found.start, found.end, found.value
            else:  # an anchor or a shortened URL: split across parts, each keeps its link
                uri = item.url
            known.append((start, end, uri))
        if link is not None:
            known += [(link_at + item.start, link_at + item.end, item.url) for item in link.links]
        facets = [link_facet(text, a, b, uri) for a, b, uri in known]
        taken = [(a, b) for a, b, _ in known]
        for found in detected:
            if found.kind == "mention" or any(a < found.end and found.start < b for a, b in taken):
                continue
            if found.kind == "link":
                facets.append(link_facet(text, found.start, found.end, found.value))
            else:
                facets.append(tag_facet(text, found.start, found.end, found.value))
            taken.append((found.start, found.end))
        facets.sort(key=lambda f: f["index"]["byteStart"])
        return facets
