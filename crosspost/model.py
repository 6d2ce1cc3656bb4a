"""The structured intermediate form every source becomes and every target renders from.

A `Doc` is a list of blocks (paragraphs, lists, headings, code blocks); each block holds lines of
`Span`s with their marks (bold/italic/code), text-link URLs and kinds (url, mention, hashtag).
This module only holds data: parsing lives in `crosspost.parse`, rendering in `crosspost.render`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Span:
    text: str
    bold: bool = False
    italic: bool = False
    code: bool = False
    url: str | None = None  # target of a text link (anchor text in `text`)
    kind: str = "text"  # "text" | "url" | "mention" | "hashtag" | "email"

    def with_text(self, text: str) -> Span:
        return replace(self, text=text)

    def same_marks(self, other: Span) -> bool:
        return (self.bold, self.italic, self.code, self.url, self.kind) == (
            other.bold,
            other.italic,
            other.code,
            other.url,
            other.kind,
        )


Line = list[Span]


@dataclass
class Block:
    kind: str  # "paragraph" | "list" | "heading" | "code"
    lines: list[Line] = field(default_factory=list)
    language: str | None = None  # code blocks

    def plain(self) -> str:
        return "\n".join("".join(span.text for span in line) for line in self.lines)


@dataclass
class Doc:
    blocks: list[Block] = field(default_factory=list)

    def plain(self) -> str:
        """The text without markup: what a reader sees, blocks separated by a blank line."""
        return "\n\n".join(block.plain() for block in self.blocks)

    def spans(self) -> list[Span]:
        return [span for block in self.blocks for line in block.lines for span in line]

    def link_urls(self) -> list[str]:
        urls = [s.url if s.url else s.text for s in self.spans() if s.url or s.kind == "url"]
        return list(dict.fromkeys(urls))


@dataclass
class SourcePost:
    """A post to convert, whatever it came from (store, Telegram export, text file, stdin).

    `entities` are Telegram text entities with offsets in UTF-16 code units (Bot API style);
    `markdown=True` means `text` is Markdown to parse instead.
    """

    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)
    permalink: str | None = None
    channel: str | None = None
    message_id: int | None = None
    date: datetime | None = None
    media: list[dict[str, Any]] = field(default_factory=list)
    markdown: bool = False
    origin: str = "text"  # what to call the source in messages and JSON
    post_id: int | None = None  # the store's id, when it came from the store
    repaired: int = 0  # lone UTF-16 surrogates replaced by U+FFFD while reading the source
