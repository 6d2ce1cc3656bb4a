"""Plain result records of retrieval and answering; `to_json()` gives the CLI contract's shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# What the result records' `to_json()` give (the CLI's --json shapes).
JSONValue = str | int | float | bool | None | list["JSONValue"] | dict[str, "JSONValue"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass
class Hit:
    rank: int
    score: float
    text: str  # the chunk's text
    post_id: int | None
    channel: str | None
    date: datetime | None
    url: str | None  # post permalink or paper URL
    title: str | None  # paper title (paper chunks) or None
    chunk_id: int = 0
    paper_id: int | None = None
    # Evidence for abstention: share of the query's terms in the chunk, cosine of the query and chunk.
    coverage: float = 0.0
    cosine: float = 0.0
    post_text: str | None = None  # the whole post (quotes may come from another chunk of it)
    lead: str | None = None  # the post's first words, for citing a post without a permalink
    sentence_cosine: float = 0.0  # the best sentence of the post against the question
    lexical: float = 0.0  # the chunk's BM25 score relative to the best BM25 hit (0..1)

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "rank": self.rank,
            "score": round(float(self.score), 6),
            "text": self.text,
            "post_id": self.post_id,
            "channel": self.channel,
            "date": _iso(self.date),
            "url": self.url,
            "title": self.title,
        }


@dataclass
class Citation:
    n: int
    url: str | None
    channel: str | None
    date: datetime | None
    quote: str
    post_id: int | None = None
    title: str | None = None
    lead: str | None = None  # the post's first words

    @property
    def source(self) -> str:
        """What a reader can find the source by: the permalink, else channel, date (when known)
        and the post's first words (a page dump's posts have no permalink and often no date)."""
        if self.url:
            return self.url
        parts = [self.title or self.channel or "?"]
        if self.date:
            parts.append(self.date.date().isoformat())
        if self.lead and not self.title:
            parts.append(f"«{self.lead}»")
        return ", ".join(parts)

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "n": self.n,
            "url": self.url,
            "channel": self.channel,
            "date": _iso(self.date),
            "quote": self.quote,
            "source": self.source,
        }


@dataclass
class Answer:
    answer: str
    mode: str  # "llm" | "extractive"
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    notice: str | None = None  # e.g. "LLM unreachable, showing quotes"
    query: str | None = None  # the standalone query actually searched (after follow-up rewriting)
    # Citation numbers the model used that did not check out: {"n": 7, "problem": "no such source"}.
    flagged: list[dict[str, int | str]] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)  # what retrieval returned (evaluation, not the JSON shape)

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "answer": self.answer,
            "mode": self.mode,
            "abstained": self.abstained,
            "citations": [c.to_json() for c in self.citations],
            "notice": self.notice,
        }
