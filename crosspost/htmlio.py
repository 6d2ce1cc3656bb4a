"""A `Doc` as Telegram-style HTML for the LLM, with protected tokens masked as `[[n]]`, and back.

HTML keeps structure unambiguous through translation (models preserve tags well; literal `*` or
`_` in a post cannot be mistaken for markup). URLs, code, mentions, hashtags, numbers, model
names and glossary terms are replaced by placeholders; `Masked.restore` checks that every one
came back before putting the originals (or the glossary's translation) in place.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from core.text import utf16_len
from crosspost.model import Doc, Span
from crosspost.parse import doc_from_entities
from crosspost.tokens import find_tokens

PLACEHOLDER = re.compile(r"\[\[(\d+)\]\]")


@dataclass
class Masked:
    html: str
    values: dict[int, str] = field(default_factory=dict)  # placeholder id -> HTML to restore

    def missing(self, reply: str) -> list[int]:
        seen = {int(m) for m in PLACEHOLDER.findall(reply)}
        return [key for key in self.values if key not in seen]

    def restore(self, reply: str) -> str:
        return PLACEHOLDER.sub(lambda m: self.values.get(int(m.group(1)), m.group(0)), reply)

    def describe(self, keys: list[int]) -> str:
        return ", ".join(html.unescape(re.sub(r"<[^>]+>", "", self.values[k])) for k in keys[:5])


class _Masker:
    def __init__(self, glossary: dict[str, str], latin_is_foreign: bool) -> None:
        self.values: dict[int, str] = {}
        self.glossary = glossary
        self.latin_is_foreign = latin_is_foreign
        self._glossary_re = (
            re.compile(
                r"(?<!\w)("
                + "|".join(re.escape(t) for t in sorted(glossary, key=len, reverse=True))
                + r")(?!\w)",
                re.I,
            )
            if glossary
            else None
        )
        self._lower = {k.lower(): v for k, v in glossary.items()}

    def hold(self, value_html: str) -> str:
        key = len(self.values) + 1
        self.values[key] = value_html
        return f"[[{key}]]"

    def text(self, text: str) -> str:
        """Escape `text` for HTML, masking protected tokens; adjacent ones share a placeholder."""
        ranges: list[tuple[int, int, str]] = []
        if self._glossary_re:
            for m in self._glossary_re.finditer(text):
                ranges.append((m.start(), m.end(), html.escape(self._lower[m.group(1).lower()], quote=False)))
        taken = bytearray(len(text) + 1)
        for a, b, _ in ranges:
            taken[a:b] = b"\x01" * (b - a)
        for tok in find_tokens(text, units=False, terms=True, latin_is_foreign=self.latin_is_foreign):
            if not any(taken[tok.start : tok.end]):
                ranges.append((tok.start, tok.end, html.escape(text[tok.start : tok.end], quote=False)))
        ranges.sort()
        merged: list[list] = []
        for a, b, value in ranges:
            gap = text[merged[-1][1] : a] if merged else None
            if merged and gap is not None and gap in (" ", ""):
                merged[-1][1] = b
                merged[-1][2] += html.escape(gap, quote=False) + value
            else:
                merged.append([a, b, value])
        out, cursor = [], 0
        for a, b, value in merged:
            out.append(html.escape(text[cursor:a], quote=False))
            out.append(self.hold(value))
            cursor = b
        out.append(html.escape(text[cursor:], quote=False))
        return "".join(out)


def mask_doc(doc: Doc, *, glossary: dict[str, str] | None = None, latin_is_foreign: bool = False) -> Masked:
    m = _Masker(glossary or {}, latin_is_foreign)
    blocks = []
    for block in doc.blocks:
        if block.kind == "code":
            lang = f' class="language-{html.escape(block.language)}"' if block.language else ""
            blocks.append(m.hold(f"<pre><code{lang}>{html.escape(block.plain(), quote=False)}</code></pre>"))
            continue
        lines = []
        for line in block.lines:
            out, i = [], 0
            while i < len(line):
                span = line[i]
                if span.url:
                    j = i
                    while j < len(line) and line[j].url == span.url:
                        j += 1
                    inner = "".join(_span(m, s) for s in line[i:j])
                    out.append(f'<a href="{m.hold(html.escape(span.url))}">{inner}</a>')
                    i = j
                    continue
                out.append(_span(m, span))
                i += 1
            text = "".join(out)
            lines.append(f"<b>{text}</b>" if block.kind == "heading" else text)
        blocks.append("\n".join(lines))
    return Masked("\n\n".join(blocks), m.values)


def doc_to_html(doc: Doc) -> str:
    """The Doc as plain (unmasked) HTML, e.g. to cache a translation."""
    masked = mask_doc(doc)
    return masked.restore(masked.html)


def _span(m: _Masker, span: Span) -> str:
    if span.code:
        return m.hold(f"<code>{html.escape(span.text, quote=False)}</code>")
    if span.kind in ("url", "mention", "hashtag", "email"):
        return m.hold(html.escape(span.text, quote=False))
    text = m.text(span.text)
    if span.italic:
        text = f"<i>{text}</i>"
    if span.bold:
        text = f"<b>{text}</b>"
    return text


class _ToEntities(HTMLParser):
    TAGS = {
        "b": "bold",
        "strong": "bold",
        "i": "italic",
        "em": "italic",
        "code": "code",
        "pre": "pre",
        "a": "text_link",
        "s": "strikethrough",
        "u": "underline",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self._units = 0  # UTF-16 units
        self.open: list[tuple[str, int, dict]] = []
        self.entities: list[dict] = []

    def handle_starttag(self, tag, attrs):
        if tag == "br":
            self.handle_data("\n")
        elif tag in self.TAGS:
            self.open.append((tag, self._units, dict(attrs)))

    def handle_endtag(self, tag):
        for k in range(len(self.open) - 1, -1, -1):
            name, start, attrs = self.open[k]
            if name != tag:
                continue
            del self.open[k]
            if self._units > start:
                kind = self.TAGS[tag]
                if kind == "code" and any(n == "pre" for n, _, _ in self.open):
                    break
                entity = {"type": kind, "offset": start, "length": self._units - start}
                if tag == "a":
                    if not attrs.get("href"):
                        break
                    entity["url"] = attrs["href"]
                self.entities.append(entity)
            break

    def handle_data(self, data):
        self.pieces.append(data)
        self._units += utf16_len(data)


def doc_from_html(text: str) -> Doc:
    parser = _ToEntities()
    parser.feed(text)
    parser.close()
    return doc_from_entities("".join(parser.pieces), parser.entities)
