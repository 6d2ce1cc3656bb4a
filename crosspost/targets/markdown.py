"""Long-form Markdown (Medium, dev.to, Habr): headings, lists, links and code kept; one part."""

from __future__ import annotations

from core.errors import CrosspostError
from crosspost.counters import make_counter
from crosspost.model import Doc
from crosspost.render import render_markdown
from crosspost.rules import Rules
from crosspost.targets import register
from crosspost.targets.base import Part


@register
class Markdown:
    name = "markdown"

    def convert(self, doc: Doc, rules: Rules, permalink: str | None) -> list[Part]:
        text = render_markdown(doc, permalink if rules.link_original else None)
        count = make_counter(rules.counter, rules.url_length)
        length = count(text)
        if rules.limit is not None and length > rules.limit:
            raise CrosspostError(f"markdown: the article is {length} long, over the limit {rules.limit}")
        return [Part(text, length, rules.limit, text)]
