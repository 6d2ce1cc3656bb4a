"""Turning source text into a `Doc`: Telegram text + entities (UTF-16 offsets), plain text, or Markdown.

Bare URLs, @mentions and #hashtags that carry no entity (page dumps, pasted text) are detected
here too, so every source yields the same structure.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt

from crosspost.model import Block, Doc, Line, SourcePost, Span
from crosspost.tokens import EMAIL, extract_hashtags, find_mentions, find_urls

PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")


@dataclass
class _Attr:
    bold: bool = False
    italic: bool = False
    code: bool = False
    pre: bool = False
    url: str | None = None
    kind: str = "text"
    language: str | None = None

    def span(self, text: str) -> Span:
        return Span(text, self.bold, self.italic, self.code and not self.pre, self.url, self.kind)

    def key(self) -> tuple:
        return (self.bold, self.italic, self.code, self.pre, self.url, self.kind)


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n\n")


def _utf16_to_index(text: str) -> list[int]:
    """Map from UTF-16 offset to code point index (len = UTF-16 length + 1)."""
    table: list[int] = []
    for index, ch in enumerate(text):
        table.append(index)
        if ord(ch) > 0xFFFF:
            table.append(index)
    table.append(len(text))
    return table


def doc_from_entities(text: str, entities: list[dict[str, Any]] | None = None) -> Doc:
    """A Telegram message (text + Bot-API entities, offsets in UTF-16 code units) as a `Doc`."""
    table = _utf16_to_index(text)
    attrs = [_Attr() for _ in text]
    for entity in entities or []:
        try:
            offset, length = int(entity["offset"]), int(entity["length"])
        except (KeyError, TypeError, ValueError):
            continue
        if offset < 0 or length <= 0 or offset >= len(table) - 1:
            continue
        start, end = table[offset], table[min(offset + length, len(table) - 1)]
        kind = entity.get("type")
        for i in range(start, end):
            a = attrs[i]
            if kind == "bold":
                a.bold = True
            elif kind == "italic":
                a.italic = True
            elif kind == "code":
                a.code = True
            elif kind == "pre":
                a.pre, a.language = True, entity.get("language")
            elif kind == "text_link" and entity.get("url"):
                a.url = str(entity["url"])
            elif kind in ("url", "mention", "hashtag", "email", "cashtag"):
                a.kind = "url" if kind == "url" else kind
    _detect_plain_tokens(text, attrs)
    return _build(text, attrs)


def _detect_plain_tokens(text: str, attrs: list[_Attr]) -> None:
    found = [(s, e, "url") for s, e in find_urls(text)]
    found += [(s, e, "mention") for s, e in find_mentions(text)]
    found += [(m.start(), m.end(), "email") for m in EMAIL.finditer(text)]
    found += [(s, e, "hashtag") for s, e in extract_hashtags(text)]
    for start, end, kind in sorted(found):
        chunk = attrs[start:end]
        if all(a.kind == "text" and not a.code and not a.pre and a.url is None for a in chunk):
            for a in chunk:
                a.kind = kind


def _build(text: str, attrs: list[_Attr]) -> Doc:
    text = text.replace("\r\n", " \n").replace("\r", "\n")  # same length: offsets stay valid
    blocks: list[Block] = []
    i = 0
    while i < len(text):
        j = i
        pre = attrs[i].pre
        while j < len(text) and attrs[j].pre == pre:
            j += 1
        if pre:
            code = text[i:j].strip("\n")
            if code.strip():
                blocks.append(Block("code", [[Span(code)]], language=attrs[i].language))
        else:
            blocks.extend(_paragraphs(text, attrs, i, j))
        i = j
    return Doc(blocks)


def _paragraphs(text: str, attrs: list[_Attr], start: int, end: int) -> list[Block]:
    blocks = []
    cursor = start
    for match in [*PARAGRAPH_BREAK.finditer(text, start, end), None]:
        stop = match.start() if match else end
        lines = _lines(text, attrs, cursor, stop)
        if lines:
            blocks.append(Block("paragraph", lines))
        if match:
            cursor = match.end()
    return blocks


def _lines(text: str, attrs: list[_Attr], start: int, end: int) -> list[Line]:
    lines: list[Line] = []
    line_start = start
    for index in [*(k for k in range(start, end) if text[k] == "\n"), end]:
        a, b = line_start, index
        while a < b and text[a] in " \t":
            a += 1
        while b > a and text[b - 1] in " \t\u00a0":
            b -= 1
        if a < b:
            lines.append(_spans(text, attrs, a, b))
        line_start = index + 1
    return lines


def _spans(text: str, attrs: list[_Attr], start: int, end: int) -> Line:
    spans: Line = []
    i = start
    while i < end:
        j = i + 1
        while j < end and attrs[j].key() == attrs[i].key():
            j += 1
        spans.append(attrs[i].span(text[i:j]))
        i = j
    return merge_spans(spans)


def merge_spans(spans: Line) -> Line:
    out: Line = []
    for span in spans:
        if not span.text:
            continue
        if out and out[-1].same_marks(span) and span.kind in ("text",) and not span.url:
            out[-1] = out[-1].with_text(out[-1].text + span.text)
        else:
            out.append(span)
    return out


# --- Markdown ---------------------------------------------------------------------------------
_MD = MarkdownIt("commonmark", {"linkify": False}).enable("strikethrough")


def doc_from_markdown(text: str) -> Doc:
    """Markdown (headings, lists, emphasis, code, links) as a `Doc`; list items get Unicode bullets."""
    tokens = _MD.parse(normalize_newlines(text))
    blocks: list[Block] = []
    list_stack: list[list[int | None]] = []  # [next number or None for bullets]
    pending_prefix = ""
    heading = False
    for tok in tokens:
        if tok.type == "bullet_list_open":
            list_stack.append([None])
        elif tok.type == "ordered_list_open":
            list_stack.append([int(tok.attrs.get("start", 1) or 1)])
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            list_stack.pop()
        elif tok.type == "list_item_open":
            number = list_stack[-1][0] if list_stack else None
            indent = "  " * (len(list_stack) - 1)
            pending_prefix = indent + ("• " if number is None else f"{number}. ")
            if number is not None:
                list_stack[-1][0] = number + 1
        elif tok.type == "heading_open":
            heading = True
        elif tok.type in ("fence", "code_block"):
            code = tok.content.rstrip("\n")
            if code.strip():
                blocks.append(Block("code", [[Span(code)]], language=(tok.info or "").strip() or None))
        elif tok.type == "inline":
            lines = _inline_lines(tok.children or [])
            if not lines:
                continue
            if pending_prefix:
                lines[0] = merge_spans([Span(pending_prefix), *lines[0]])
                pending_prefix = ""
                if blocks and blocks[-1].kind == "paragraph" and getattr(blocks[-1], "_list", False):
                    blocks[-1].lines.extend(lines)
                    continue
                block = Block("paragraph", lines)
                block._list = True  # type: ignore[attr-defined]  # consecutive items share a block
                blocks.append(block)
                continue
            blocks.append(Block("heading" if heading else "paragraph", lines))
            heading = False
        elif tok.type == "heading_close":
            heading = False
    # Bare URLs, mentions and hashtags inside plain spans become tokens, as in Telegram text.
    for block in blocks:
        if block.kind != "code":
            block.lines = [_retokenize(line) for line in block.lines]
    return Doc([b for b in blocks if b.lines])


def _inline_lines(children: list) -> list[Line]:
    lines: list[Line] = [[]]
    bold = italic = False
    url: str | None = None
    for child in children:
        kind = child.type
        if kind == "text":
            lines[-1].append(Span(child.content, bold, italic, False, url))
        elif kind == "code_inline":
            lines[-1].append(Span(child.content, bold, italic, True, url))
        elif kind in ("softbreak", "hardbreak"):
            lines.append([])
        elif kind == "strong_open":
            bold = True
        elif kind == "strong_close":
            bold = False
        elif kind == "em_open":
            italic = True
        elif kind == "em_close":
            italic = False
        elif kind == "link_open":
            url = str(child.attrs.get("href") or "") or None
        elif kind == "link_close":
            url = None
        elif kind == "image":
            alt = child.content or "image"
            lines[-1].append(Span(alt, url=str(child.attrs.get("src") or "") or None))
        elif kind in ("html_inline",):
            lines[-1].append(Span(child.content, bold, italic, False, url))
    out = []
    for line in lines:
        line = merge_spans(line)
        if line and not "".join(s.text for s in line).strip():
            continue
        if line:
            out.append(line)
    return out


def _retokenize(line: Line) -> Line:
    out: Line = []
    for span in line:
        if span.code or span.url or span.kind != "text":
            out.append(span)
            continue
        attrs = [_Attr() for _ in span.text]
        _detect_plain_tokens(span.text, attrs)
        i = 0
        while i < len(span.text):
            j = i + 1
            while j < len(span.text) and attrs[j].kind == attrs[i].kind:
                j += 1
            out.append(Span(span.text[i:j], span.bold, span.italic, False, None, attrs[i].kind))
            i = j
    return merge_spans(out)


# Characters X rejects outright (twitter-text's invalid set) and that no network shows anyway.
_INVALID = str.maketrans("", "", "\ufeff\ufffe\uffff")


def _clean(text: str) -> str:
    return unicodedata.normalize("NFC", text.translate(_INVALID))


def doc_from_source(post: SourcePost) -> Doc:
    text = normalize_newlines(post.text) if post.markdown or not post.entities else post.text
    doc = doc_from_markdown(text) if post.markdown else doc_from_entities(text, post.entities)
    # NFC after the entities are placed (their offsets refer to the original text): networks
    # count composed characters, and "e" + U+0301 must not be cut between its two code points.
    for block in doc.blocks:
        block.lines = [[s.with_text(_clean(s.text)) for s in line] for line in block.lines]
    doc.blocks = [b for b in doc.blocks if any(s.text.strip() for line in b.lines for s in line)]
    return doc
