"""Rendering a `Doc` as plain text (the short networks, LinkedIn) or as Markdown (long form).

Plain rendering returns the text plus where its links are (for Bluesky facets) and which ranges
must never be split (URLs, mentions, hashtags, code). Bold/italic have no plain-text form and are
dropped; inline code keeps its backticks and a code block its ``` fences (the splitter may cut a
long block between lines, closing and reopening the fence); a text link becomes `anchor (URL)`
unless the network can carry the URL behind the anchor (Bluesky facets).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from crosspost.model import Block, Doc, Line, Span
from crosspost.split import CodeRange

DASH_BULLET = re.compile(r"^(\s*)[-*+](\s+)")
TEXT_BULLET = re.compile(r"^\s*(?:\\?[-*+]|[•‣▪◦])\s+")  # dropped in Markdown, where "- " is the bullet
BULLET_LINE = re.compile(r"^\s*(?:[-*+•‣▪◦➤→–—]|\d{1,2}[.)]|\d\ufe0f?\u20e3|[^\w\s]{1,3})\s")
URLISH = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|www\.)\S+$", re.I)


@dataclass(frozen=True)
class Link:
    start: int
    end: int
    url: str
    shown: bool = True  # the text shows this URL in full (not an anchor, not shortened)


@dataclass
class Rendered:
    text: str
    links: list[Link] = field(default_factory=list)  # anchor or URL ranges and their targets
    protected: list[tuple[int, int]] = field(default_factory=list)
    tags: list[tuple[int, int]] = field(default_factory=list)  # hashtag ranges
    code: list[CodeRange] = field(default_factory=list)  # fenced code blocks


@dataclass(frozen=True)
class PlainStyle:
    link_facets: bool = False  # keep the anchor text and carry the URL as a facet (Bluesky)
    shorten_urls: int | None = None  # show long bare URLs shortened, full URL in the facet
    unicode_bullets: bool = False  # "- item" -> "• item" (LinkedIn)


def _groups(line: Line) -> list[list[Span]]:
    """Consecutive spans that share one text-link URL belong to one link."""
    groups: list[list[Span]] = []
    for span in line:
        if groups and span.url and groups[-1][0].url == span.url:
            groups[-1].append(span)
        else:
            groups.append([span])
    return groups


def shorten_url(url: str, limit: int) -> str:
    shown = re.sub(r"^[a-z][a-z0-9+.-]*://(www\.)?", "", url, flags=re.I)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


class _Writer:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.out = Rendered("")

    def write(
        self,
        text: str,
        *,
        protect: bool = False,
        link: str | None = None,
        tag: bool = False,
        shown: bool = False,
    ) -> None:
        start = self.size
        self.parts.append(text)
        self.size += len(text)
        if protect and text:
            self.out.protected.append((start, self.size))
        if link and text:
            self.out.links.append(Link(start, self.size, link, shown))
        if tag and text:
            self.out.tags.append((start, self.size))

    def done(self) -> Rendered:
        self.out.text = "".join(self.parts)
        return self.out


def render_plain(doc: Doc, style: PlainStyle = PlainStyle()) -> Rendered:
    w = _Writer()
    for b, block in enumerate(doc.blocks):
        if b:
            w.write("\n\n")
        for n, line in enumerate(block.lines):
            if n:
                w.write("\n")
            if block.kind == "code":
                _plain_code(w, "".join(s.text for s in line), block.language)
                continue
            _plain_line(w, line, style)
    return w.done()


def _plain_code(w: _Writer, code: str, language: str | None) -> None:
    fence = "````" if "```" in code else "```"
    opening, closing = f"{fence}{language or ''}\n", f"\n{fence}"
    start = w.size
    w.write(opening, protect=True)
    w.write(code)
    w.write(closing, protect=True)
    w.out.code.append(CodeRange(start, start + len(opening), w.size - len(closing), w.size, opening, closing))


def _plain_line(w: _Writer, line: Line, style: PlainStyle) -> None:
    first = True
    for group in _groups(line):
        anchor = "".join(s.text for s in group)
        if first and style.unicode_bullets:
            anchor = DASH_BULLET.sub(r"\1•\2", anchor)
        first = False
        span = group[0]
        url = span.url
        if url:
            if anchor.strip() == url.strip() or URLISH.match(anchor.strip()):
                _plain_url(w, anchor if not style.shorten_urls else url, style)
            elif style.link_facets:
                w.write(anchor, link=url)
            else:
                w.write(anchor + " (")
                _plain_url(w, url, style)
                w.write(")")
        elif span.code:
            w.write(f"`{anchor}`", protect=True)
        elif span.kind == "url":
            _plain_url(w, anchor, style)
        elif span.kind == "hashtag":
            w.write(anchor, protect=True, tag=True)
        elif span.kind in ("mention", "email", "cashtag"):
            w.write(anchor, protect=True)
        else:
            w.write(anchor)


def _plain_url(w: _Writer, url: str, style: PlainStyle) -> None:
    target = url if re.match(r"^[a-z][a-z0-9+.-]*://", url, re.I) else "https://" + url
    if style.shorten_urls and len(url) > style.shorten_urls:
        w.write(shorten_url(url, style.shorten_urls), protect=True, link=target)
    else:
        w.write(url, protect=True, link=target if style.link_facets else None, shown=True)


# --- Markdown -------------------------------------------------------------------------------------
_MD_ESCAPE = re.compile(r"([\\`*_\[\]<>])")


def _md_escape(text: str) -> str:
    return _MD_ESCAPE.sub(r"\\\1", text)


def _md_span(span: Span) -> str:
    if span.code:
        fence = "``" if "`" in span.text else "`"
        return f"{fence}{span.text}{fence}"
    if span.kind in ("url", "email"):
        return f"<{span.text}>" if span.kind == "url" and "://" in span.text else span.text
    text = _md_escape(span.text)
    core = text.strip()
    if not core:
        return text
    lead, trail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()) :]
    if span.bold:
        core = f"**{core}**"
    if span.italic:
        core = f"*{core}*"
    return lead + core + trail


def _md_line(line: Line) -> str:
    out = []
    for group in _groups(line):
        inner = "".join(_md_span(s) for s in group)
        url = group[0].url
        out.append(f"[{inner}]({url.replace(')', '%29').replace(' ', '%20')})" if url else inner)
    return "".join(out)


def is_bullet_line(text: str) -> bool:
    """`- x`, `• x`, `1. x`, `1️⃣ x`, or a line led by a pictograph (📌, 🎯, ➤, 🔥) and a space."""
    match = BULLET_LINE.match(text)
    if not match:
        return False
    marker = match.group(0).strip()
    if marker[0] in "-*+•‣▪◦➤→–—" or marker[0].isdigit():
        return True
    return any(unicodedata.category(ch) == "So" for ch in marker)


def is_heading_line(text: str, *, standalone: bool = False) -> bool:
    """Short, no closing punctuation, not a link; `standalone` (a block of its own) may start with
    an emoji ("📊 Данные"), which inside a block would make it a list item instead."""
    text = text.strip()
    return (
        0 < len(text) <= 70
        and text[-1] not in '.,;:!?…)»"'
        and (standalone or not is_bullet_line(text))
        and not re.match(r"^(?:[-*+•]|\d{1,2}[.)])\s", text)
        and not URLISH.match(text)
    )


def render_markdown(doc: Doc, original: str | None = None) -> str:
    """Long-form Markdown: a title, `##` headings for standalone short lines, lists, links, code."""
    out: list[str] = []
    for index, block in enumerate(doc.blocks):
        if block.kind == "code":
            code = block.plain()
            fence = "````" if "```" in code else "```"
            out.append(f"{fence}{block.language or ''}\n{code}\n{fence}")
            continue
        if block.kind == "heading" or (
            len(block.lines) == 1
            and is_heading_line(block.plain(), standalone=True)
            and index + 1 < len(doc.blocks)
        ):
            # a heading of several lines (a setext heading over a paragraph) is one line in Markdown
            title = " ".join(_md_line(line).strip() for line in block.lines)
            out.append(("# " if index == 0 else "## ") + title.lstrip("#").strip())
            continue
        out.extend(_md_block(block, title=index == 0))
    if original:
        out.append(f"*Originally posted in Telegram: <{original}>*")
    return "\n\n".join(out) + "\n"


def _md_block(block: Block, *, title: bool) -> list[str]:
    chunks: list[str] = []
    bullets: list[tuple[str, str]] = []  # (list item, the line as a paragraph)

    def flush() -> None:
        # A lone line led by an emoji ("💡 So I decided...") is a paragraph, not a one-item list.
        if len(bullets) == 1 and not re.match(r"^\s*(?:[-*+•‣▪◦]|\d{1,2}[.)])\s", bullets[0][1]):
            chunks.append(bullets[0][1])
        elif bullets:
            chunks.append("\n".join(item for item, _ in bullets))
        bullets.clear()

    for n, line in enumerate(block.lines):
        plain = "".join(s.text for s in line)
        if is_bullet_line(plain):
            text = _md_line(line).strip()
            if re.match(r"^(\d{1,2})[.)]\s+", plain.strip()):
                bullets.append((text, text))
            else:
                bullets.append(("- " + TEXT_BULLET.sub("", text, count=1), text))
            continue
        flush()
        rendered = _md_line(line).strip()
        if n == 0 and title and len(block.lines) > 1 and is_heading_line(plain):
            rendered = "# " + rendered
        elif 0 < n < len(block.lines) - 1 and len(plain) <= 40 and is_heading_line(plain):
            rendered = "## " + rendered  # a short standalone line inside a block is a section title
        chunks.append(rendered)
    flush()
    return chunks
