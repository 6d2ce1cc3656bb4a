"""What every plain-text network shares: render the `Doc`, split by the network's counter,
number the parts, put the link to the original post in the first one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.errors import CrosspostError
from crosspost.counters import byte_prefix, fit_measure, make_counter, prefix_lengths, utf8_length
from crosspost.model import Doc
from crosspost.render import PlainStyle, Rendered, render_plain
from crosspost.rules import Rules
from crosspost.split import Piece, split_text


@dataclass
class Part:
    text: str
    length: int
    limit: int | None
    body: str = ""  # the slice of the rendered post this part carries (no numbering, no link)
    facets: list[dict[str, Any]] = field(default_factory=list)
    size_bytes: int | None = None  # UTF-8 bytes, where the network also limits those
    max_bytes: int | None = None
    notes: list[str] = field(default_factory=list)  # what the network will show differently
    unresolved_mentions: list[str] = field(default_factory=list)  # Bluesky handles left as text

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "length": self.length, "limit": self.limit}
        if self.max_bytes:
            out["bytes"], out["max_bytes"] = self.size_bytes, self.max_bytes
        if self.facets:
            out["facets"] = self.facets
        if self.unresolved_mentions:
            out["unresolved_mentions"] = self.unresolved_mentions
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
        measure = fit_measure(count, rules.limit, rules.max_bytes)
        try:
            pieces = self._split(rendered, rules, measure, extra)
        except CrosspostError as exc:
            if rules.max_bytes:  # the count shown folds in the bytes: say what the two limits are
                raise CrosspostError(
                    f"{exc} (a part may hold {rules.limit} graphemes and {rules.max_bytes} UTF-8 bytes)"
                ) from exc
            raise
        parts = []
        for number, piece in enumerate(pieces, 1):
            body = rendered.text[piece.start : piece.end]
            text = piece.lead + body + piece.trail + (extra if number == 1 else "")
            if rules.numbering and len(pieces) > 1:
                text += f"\n{number}/{len(pieces)}"
            if measure(text) > rules.limit:  # the splitter measured it; this is a bug, not user error
                raise AssertionError(f"{self.name}: part {number} has length {measure(text)} > {rules.limit}")
            part = Part(text, count(text), rules.limit, body, max_bytes=rules.max_bytes)
            if rules.max_bytes:
                part.size_bytes = utf8_length(text)
            part.facets = self.facets(
                rendered, piece, text, link if number == 1 else None, len(piece.lead + body + piece.trail) + 2
            )
            parts.append(part)
        return parts

    def _split(self, rendered: Rendered, rules: Rules, measure, extra: str) -> list[Piece]:
        return split_text(
            rendered.text,
            rendered.protected,
            measure,
            rules.limit,
            min_part=rules.min_part,
            numbering=rules.numbering,
            first_extra=extra,
            network=self.name,
            estimate=_estimator(rendered.text, rules),
            code=rendered.code,
        )

    def facets(
        self, rendered: Rendered, piece: Piece, text: str, link: Rendered | None, link_at: int
    ) -> list:
        return []


def _estimator(text: str, rules: Rules):
    """`estimate(a, b)` for the splitter: the network's count of text[a:b] from prefix sums (and,
    with `max_bytes`, the same fold of the UTF-8 bytes as `fit_measure`)."""
    prefix = prefix_lengths(rules.counter, text, rules.url_length)
    if len(prefix) != len(text) + 1:
        return None
    if not rules.max_bytes:
        return lambda a, b: prefix[b] - prefix[a]
    limit, max_bytes, nbytes = rules.limit or 1, rules.max_bytes, byte_prefix(text)
    return lambda a, b: max(prefix[b] - prefix[a], -(-(nbytes[b] - nbytes[a]) * limit // max_bytes))
