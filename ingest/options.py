"""How to read a source beyond its bytes: the exporter's time zone (`--tz`) and, for a full-account
Telegram export, which chats to take (`--chat`). Parsers read them from `RawSource.options`; the
store keeps them per source so `ingest --all` reads every source the way it was first read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import IngestError

_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.I)


def parse_tz(value: str) -> tzinfo:
    """`Europe/Moscow`, `UTC`, `+03:00`, `UTC+3`, `-0800` → a tzinfo; anything else: one-line error."""
    text = value.strip()
    if text.upper() in ("UTC", "GMT", "Z"):
        return UTC
    match = _OFFSET.match(text)
    if match:
        sign, hours, minutes = match.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        if delta > timedelta(hours=14):
            raise IngestError(f"--tz {value!r}: an offset is at most 14 hours")
        return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise IngestError(
            f"--tz {value!r}: unknown time zone (give an IANA name such as Europe/Moscow, or an offset such as +03:00)"
        ) from None


@dataclass(frozen=True)
class ReadOptions:
    tz: str | None = None  # the exporter's zone, for dates written without one (old exports)
    chats: tuple[str, ...] = ()  # full-account exports: only the chats with these names (or ids)

    def __post_init__(self) -> None:
        if self.tz is not None:
            parse_tz(self.tz)  # refuse a bad zone before anything is read

    @property
    def zone(self) -> tzinfo | None:
        return parse_tz(self.tz) if self.tz else None

    def stored(self) -> dict[str, Any]:
        """The form the store keeps (empty when nothing was given)."""
        result: dict[str, Any] = {}
        if self.tz:
            result["tz"] = self.tz
        if self.chats:
            result["chats"] = list(self.chats)
        return result

    @classmethod
    def from_stored(cls, value: dict[str, Any] | None) -> ReadOptions:
        value = value or {}
        return cls(tz=value.get("tz"), chats=tuple(value.get("chats") or ()))


def local_to_aware(value: datetime, zone: tzinfo | None) -> datetime:
    """A zone-less export date: in `zone` when the user named the exporter's zone, else UTC."""
    if value.tzinfo is not None:
        return value
    return value.replace(tzinfo=zone or UTC)


def no_zone_note(location: str, what: str) -> str:
    return (
        f"{location}: {what} carry no time zone (an old export); stored as UTC. If the exporting "
        "computer's clock was in another zone, re-ingest with --tz ZONE (e.g. --tz Europe/Moscow or --tz +03:00)"
    )
