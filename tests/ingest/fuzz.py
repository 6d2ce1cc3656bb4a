"""Shared checks for the property tests: a parser given any bytes either returns a well-formed
batch or raises IngestError with one line; never another exception."""

from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

from core.errors import IngestError
from ingest.clean import clean_text, utf16_len
from ingest.registry import RawSource
from rag.store.records import SourceBatch


def check_parser(parser, data: bytes, name: str = "fuzzed.html") -> SourceBatch | None:
    source = RawSource(name, data, path=Path(name))
    parser.detect(source)  # must not raise either
    try:
        batch = parser.parse(source)
    except IngestError as exc:
        assert str(exc).strip() and "\n" not in str(exc)
        return None
    for post in batch.posts:
        assert post.text == clean_text(post.text)
        units = utf16_len(post.text)
        for entity in post.entities:
            assert entity["length"] > 0 and entity["offset"] >= 0
            assert entity["offset"] + entity["length"] <= units
    return batch


def mutations(valid: bytes) -> st.SearchStrategy[bytes]:
    """`valid` truncated anywhere (optionally re-closed with </html>) or with a few bytes replaced."""
    truncated = st.tuples(st.integers(0, len(valid)), st.booleans()).map(
        lambda t: valid[: t[0]] + (b"</html>" if t[1] else b"")
    )
    flipped = st.lists(
        st.tuples(st.integers(0, max(len(valid) - 1, 0)), st.binary(min_size=1, max_size=4)),
        min_size=1,
        max_size=6,
    ).map(lambda edits: _apply(valid, edits))
    return st.one_of(truncated, flipped)


def _apply(valid: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    data = bytearray(valid)
    for position, replacement in edits:
        data[position : position + len(replacement)] = replacement
    return bytes(data)


def html_soup(fragments: list[str]) -> st.SearchStrategy[str]:
    """Random sequences of markup fragments the parsers look for, plus arbitrary text."""
    return st.lists(st.one_of(st.sampled_from(fragments), st.text(max_size=12)), max_size=40).map("".join)
