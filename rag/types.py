"""Plain result records of retrieval and answering; `to_json()` gives the CLI contract's shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


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

    def to_json(self) -> dict:
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

    def to_json(self) -> dict:
        return {
            "n": self.n,
            "url": self.url,
            "channel": self.channel,
            "date": _iso(self.date),
            "quote": self.quote,
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
    flagged: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "answer": self.answer,
            "mode": self.mode,
            "abstained": self.abstained,
            "citations": [c.to_json() for c in self.citations],
        }
