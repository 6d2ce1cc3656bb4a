"""Bluesky: 300 graphemes; links are facets (UTF-8 byte offsets), so a text link keeps its anchor
text and a long bare URL is shown shortened, as the Bluesky app does; hashtags become tag facets.
"""

from __future__ import annotations

from crosspost.render import Link, PlainStyle, Rendered, render_plain, shorten_url
from crosspost.split import Piece
from crosspost.targets import register
from crosspost.targets.base import PlainTarget

SHOWN_URL = 30  # characters of a URL shown before "…"


def _byte(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def link_facet(text: str, start: int, end: int, uri: str) -> dict:
    return {
        "index": {"byteStart": _byte(text, start), "byteEnd": _byte(text, end)},
        "features": [{"$type": "app.bsky.richtext.facet#link", "uri": uri}],
    }


def tag_facet(text: str, start: int, end: int) -> dict:
    return {
        "index": {"byteStart": _byte(text, start), "byteEnd": _byte(text, end)},
        "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": text[start + 1 : end]}],
    }


@register
class Bluesky(PlainTarget):
    name = "bluesky"
    style = PlainStyle(link_facets=True, shorten_urls=SHOWN_URL)

    def render(self, doc) -> Rendered:
        return render_plain(doc, self.style)

    def original_link(self, permalink: str) -> Rendered:
        shown = shorten_url(permalink, SHOWN_URL)
        return Rendered(shown, links=[Link(0, len(shown), permalink)], protected=[(0, len(shown))])

    def facets(
        self, rendered: Rendered, piece: Piece, text: str, link: Rendered | None, link_at: int
    ) -> list:
        facets = []
        for item in rendered.links:
            start, end = max(item.start, piece.start), min(item.end, piece.end)
            if start < end:  # a long anchor split across parts keeps its link in both
                facets.append(link_facet(text, start - piece.start, end - piece.start, item.url))
        for start, end in rendered.tags:
            if piece.start <= start and end <= piece.end:
                facets.append(tag_facet(text, start - piece.start, end - piece.start))
        if link is not None:
            for item in link.links:
                facets.append(link_facet(text, link_at + item.start, link_at + item.end, item.url))
        return facets
