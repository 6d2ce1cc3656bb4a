"""The one place parsers are registered: each format is one module in `ingest/parsers/`.

A parser module defines a class with `name`, `detect(source)` and `parse(source)` and decorates it
with `@register`. Detection is by content (and file name only as a hint), so misnamed files work.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from core.errors import IngestError
from ingest.options import ReadOptions
from rag.store.records import SourceBatch


@dataclass
class RawSource:
    """A source read into memory once: parsers sniff `head` and parse `data`."""

    location: str  # file path or URL, as the store remembers it
    data: bytes
    channel_hint: str | None = None
    path: Path | None = None
    options: ReadOptions = field(default_factory=ReadOptions)

    @property
    def head(self) -> bytes:
        return self.data[:4096]

    def text(self) -> str:
        try:
            return self.data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise IngestError(f"{self.location}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


class Parser(Protocol):
    name: str

    def detect(self, source: RawSource) -> bool: ...

    def parse(self, source: RawSource) -> SourceBatch: ...


_PARSERS: list[Parser] = []


def register(cls: type) -> type:
    """Class decorator: instantiate and add to the registry (in import order)."""
    _PARSERS.append(cls())
    return cls


_DISCOVERED: list[bool] = []  # set once every parser module was imported


def parsers() -> list[Parser]:
    # A flag, not `not _PARSERS`: importing one parser module directly (ingest.live imports
    # tme_preview) registers it early and must not stop the others from being discovered.
    if not _DISCOVERED:
        import ingest.parsers as package

        for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            importlib.import_module(f"{package.__name__}.{module.name}")
        _DISCOVERED.append(True)
    _PARSERS.sort(key=lambda p: getattr(p, "priority", 50))
    return _PARSERS


def detect(source: RawSource) -> Parser:
    if not source.data.strip():
        raise IngestError(f"{source.location}: empty file")
    if b"\x00" in source.head and not source.head.startswith(b"%PDF"):
        raise IngestError(f"{source.location}: binary file of an unknown format")
    for parser in parsers():
        if parser.detect(source):
            return parser
    raise IngestError(
        f"{source.location}: unknown format (expected one of: {', '.join(p.name for p in parsers())})"
    )


def parser_by_name(name: str) -> Parser:
    for parser in parsers():
        if parser.name == name:
            return parser
    raise IngestError(f"unknown format {name!r} (known: {', '.join(p.name for p in parsers())})")
