"""What every plain-text network shares: render the `Doc`, split by the network's counter,
number the parts, put the link to the original post in the first one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crosspost.counters import make_counter, prefix_lengths
from crosspost.model import Doc
from crosspost.render import PlainStyle, Rendered, render_plain
from crosspost.rules import Rules
from crosspost.split import Piece, split_text
from rag.errors import CrosspostError


@dataclass
class Part:
    text: str
    length: int
    limit: int | None
    body: str = ""  # the slice of the rendered post this part carries (no numbering, no link)
    facets: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "length": self.length, "limit": self.limit}
        if self.facets:
            out["facets"] = self.facets
        return out


class PlainTarget:
    name = "plain"
    style = PlainStyle()

    def render(self, doc: Doc) -> Rendered:
        return render_plain(doc, self.style)

    def original_link(self, permalink: str) -> Rendered:
        return (
            render_plain(Doc(), self.style)
            if not permalink
            else Rendered(permalink, protected=[(0, len(permalink))])
        )

    def convert(self, doc: Doc, rules: Rules, permalink: str | None) -> list[Part]:
        rendered = self.render(doc)
        if not rendered.text.strip():
            raise CrosspostError(f"{self.name}: nothing left to post after formatting")
        count = make_counter(rules.counter, rules.url_length)
        link = self.original_link(permalink) if permalink and rules.link_original else None
        extra = "\n\n" + link.text if link else ""
        if rules.limit is None:
            text = rendered.text.strip() + extra
            return [Part(text, count(text), None, rendered.text.strip())]
        pieces = split_text(
            rendered.text,
            rendered.protected,
            count,
            rules.limit,
            min_part=rules.min_part,
            numbering=rules.numbering,
            first_extra=extra,
            network=self.name,
            prefix=prefix_lengths(rules.counter, rendered.text, rules.url_length),
        )
        parts = []
        for number, piece in enumerate(pieces, 1):
            body = rendered.text[piece.start : piece.end]
            text = body + (extra if number == 1 else "")
            if rules.numbering and len(pieces) > 1:
                text += f"\n{number}/{len(pieces)}"
            length = count(text)
            if length > rules.limit:  # the splitter measured it; this is a bug, not user error
                raise AssertionError(f"{self.name}: part {number} has length {length} > {rules.limit}")
            part = Part(text, length, rules.limit, body)
            part.facets = self.facets(rendered, piece, text, link if number == 1 else None, len(body) + 2)
            parts.append(part)
        return parts

    def facets(
        self, rendered: Rendered, piece: Piece, text: str, link: Rendered | None, link_at: int
    ) -> list:
        return []
