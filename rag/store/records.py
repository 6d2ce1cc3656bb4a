"""Plain records that parsers produce and the store consumes (the ingest → store contract)."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.tme import post_url


def normalize_text(text: str) -> str:
    """Normalization used for content hashes: NFC, collapsed whitespace, case-folded."""
    text = unicodedata.normalize("NFC", text)
    return re.sub(r"\s+", " ", text).strip().casefold()


def content_hash(text: str) -> str:
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()[:32]


@dataclass
class PostRecord:
    """One channel post as a parser found it. `channel` is the Telegram username when known."""

    channel: str
    text: str
    message_id: int | None = None
    date: datetime | None = None
    edited: datetime | None = None
    author: str | None = None
    channel_title: str | None = None
    # Telegram text entities: [{"type": "text_link", "offset": 0, "length": 4, "url": ...}, ...]
    # offsets in UTF-16 code units, as the Bot API and exports give them.
    entities: list[dict[str, Any]] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    forwarded_from: str | None = None
    reply_to: int | None = None  # a message of this same channel
    # A reply to a message in another chat: {"chat": peer id such as "channel1234" or None when the
    # export does not say which, "message_id": id in that chat or None}; `reply_to` is then None.
    reply_to_other: dict[str, Any] | None = None
    views: int | None = None
    reactions: dict[str, int] = field(default_factory=dict)
    media: list[dict[str, Any]] = field(default_factory=list)
    # `PaperRecord.key`s of papers this post mentions (the batch carries their stubs).
    paper_keys: list[str] = field(default_factory=list)

    @property
    def permalink(self) -> str | None:
        if self.message_id is None or not self.channel or self.channel.startswith("_"):
            return None
        return post_url(self.channel, self.message_id)

    # (text, its hash): ingest asks for the hash three times per post (dedupe, key, upsert), and
    # normalizing the text is the single largest cost of a first ingest (measured 16% of it).
    _hash_of: tuple[str, str] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def content_hash(self) -> str:
        cached = self._hash_of
        if cached is None or cached[0] is not self.text:
            cached = self._hash_of = (self.text, content_hash(self.text))
        return cached[1]

    @property
    def key(self) -> str:
        """Upsert key inside a channel: the message id when known, else the content hash."""
        return f"id:{self.message_id}" if self.message_id is not None else f"hash:{self.content_hash}"


@dataclass
class PaperRecord:
    """A paper: from a PDF or text file, or a stub for an arXiv id / DOI found in a post."""

    title: str | None = None
    authors: list[str] = field(default_factory=list)
    arxiv_id: str | None = None
    doi: str | None = None
    url: str | None = None
    abstract: str | None = None
    full_text: str | None = None
    source_file: str | None = None

    @property
    def key(self) -> str:
        if self.arxiv_id:
            return f"arxiv:{self.arxiv_id}"
        if self.doi:
            return f"doi:{self.doi.lower()}"
        return f"hash:{content_hash((self.title or '') + (self.full_text or self.abstract or ''))}"

    @property
    def content_hash(self) -> str:
        return content_hash(
            "\n".join([self.title or "", ", ".join(self.authors), self.abstract or "", self.full_text or ""])
        )


@dataclass
class SourceBatch:
    """Everything one source produced: the unit of one ingest transaction."""

    location: str
    format: str
    posts: list[PostRecord] = field(default_factory=list)
    papers: list[PaperRecord] = field(default_factory=list)
    skipped: int = 0  # records the parser saw but could not use (service messages, empty posts)
    # Things the user should know that did not stop the source (repaired text, dates without zone).
    notes: list[str] = field(default_factory=list)


@dataclass
class IngestSummary:
    """Counts of one ingest, each meaning one thing (posts and papers together):

    new / updated / unchanged: stored records created, changed, or already as given;
    merged: copies of a post that a source of the same run had just created (a preview and the
    full page of one post), so a first ingest into an empty store reports no "updated";
    dropped: records never stored (service messages, empty or unreadable messages);
    failed: sources that could not be ingested at all (the CLI exits 2 iff this is non-zero).
    """

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0
    dropped: int = 0
    failed: int = 0
    changed_post_ids: list[int] | None = None
    # Which stored posts a source created, changed or matched unchanged: `add` uses them to tell
    # an update of a post created earlier in the same run (a merge) from a real update.
    new_post_ids: list[int] = field(default_factory=list)
    updated_post_ids: list[int] = field(default_factory=list)
    unchanged_post_ids: list[int] = field(default_factory=list)

    def add(self, other: IngestSummary) -> None:
        fresh = set(self.new_post_ids)
        again_updated = sum(1 for i in other.updated_post_ids if i in fresh)
        again_unchanged = sum(1 for i in other.unchanged_post_ids if i in fresh)
        self.new += other.new
        self.updated += other.updated - again_updated
        self.unchanged += other.unchanged - again_unchanged
        self.merged += other.merged + again_updated + again_unchanged
        self.dropped += other.dropped
        self.failed += other.failed
        self.changed_post_ids = (self.changed_post_ids or []) + (other.changed_post_ids or [])
        self.new_post_ids += other.new_post_ids
        self.updated_post_ids += other.updated_post_ids
        self.unchanged_post_ids += other.unchanged_post_ids

    def line(self) -> str:
        text = f"new {self.new}, updated {self.updated}, unchanged {self.unchanged}"
        if self.merged:
            text += f", merged {self.merged} (copies of one post)"
        if self.dropped:
            text += f", dropped {self.dropped} (service, empty or unreadable messages)"
        if self.failed:
            text += f", failed {self.failed} source{'s' if self.failed != 1 else ''}"
        return text
