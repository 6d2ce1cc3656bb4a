"""The services the front ends depend on, as Protocols: what a handler or command may call, with
the real result types (`rag.types.Answer`, `crosspost.service.ConversionResult`).

The real classes satisfy them (`rag.service.RagService`, `bot.services.CrosspostService`); the
tests' fakes implement them and return the same result types, so a fake cannot drift into a
look-alike. A question goes handler -> `Answers.stream_answer` -> RagService -> the LLM client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

from rag.types import Answer, JSONValue

if TYPE_CHECKING:  # crosspost.service loads twitter-text and openai (~2-4 s): only when converting
    from crosspost.model import SourcePost
    from crosspost.service import ConversionResult


class Answers(Protocol):
    """Cited answers with per-chat memory (`memory_key`: one conversation)."""

    def stream_answer(self, question: str, *, memory_key: str | None = None) -> AsyncIterator[str | Answer]:
        """Text deltas as they are produced, then exactly one final `Answer`."""
        ...

    def forget(self, memory_key: str | None) -> None: ...


class IndexUpkeep(Protocol):
    """Bringing the search indexes in step with the store after an ingest."""

    def sync(self) -> int: ...

    def reindex(self) -> dict[str, JSONValue]: ...


class RagServices(Answers, IndexUpkeep, Protocol):
    """Everything the bot asks of retrieval (RagService as the bot sees it)."""

    def close(self) -> None: ...


class CrossPoster(Protocol):
    """A post (a `https://t.me/<channel>/<id>` link read from the store, or a message's text and
    entities) as parts per network. `fresh=True` translates again instead of reusing the stored
    translation."""

    def convert(
        self, source: str | SourcePost, *, lang: str | None = None, fresh: bool = False
    ) -> ConversionResult: ...
