"""Text encodings a source can arrive in, before any parser sees it.

- UTF-16 (Windows tools save "Unicode" text that way): transcoded to UTF-8, with a note, so the
  parsers (which read UTF-8) see the same bytes as for a UTF-8 file.
- Double-encoded UTF-8 ("mojibake": UTF-8 bytes read as Latin-1 or Windows-1252 and saved again,
  so "Как" becomes "Ð\x9aÐ°Ðº"): refused with one line. Stored, such text would be unsearchable and
  would overwrite the good copy of the same posts.
"""

from __future__ import annotations

import re

from core.errors import IngestError

# A character that starts a UTF-8 multi-byte sequence when read as Latin-1, then continuation
# bytes as Latin-1 or Windows-1252 show them (C1 controls, ¡-¿, and cp1252's €‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ).
_CP1252_HIGH = "\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u203a\u20ac\u2122"
_MOJIBAKE_RUN = re.compile(
    f"[\u00c2-\u00f4][\u0080-\u00bf{_CP1252_HIGH}]+(?:[\u00c2-\u00f4][\u0080-\u00bf{_CP1252_HIGH}]+)*"
)
MIN_MOJIBAKE_RUNS = 3  # one or two odd pairs can occur in real text; three decodable runs do not


# Windows-1252's characters for bytes 0x80-0x9F; every other byte reads as the Latin-1 character.
_CP1252_BYTE = {
    bytes([b]).decode("cp1252"): b for b in range(0x80, 0xA0) if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)
}


def _redecoded(run: str) -> str | None:
    """The run's characters as the bytes a Latin-1/Windows-1252 reader saw, decoded as UTF-8."""
    try:
        return bytes(_CP1252_BYTE.get(ch, ord(ch)) for ch in run).decode("utf-8")
    except (UnicodeDecodeError, ValueError):
        return None


def _mojibake_runs(text: str, limit: int) -> tuple[int, str | None]:
    """(runs of double-encoded UTF-8 in `text`, up to `limit`; an example such as "Ð\x9aÐ°Ðº → Как")."""
    found = 0
    example = None
    for match in _MOJIBAKE_RUN.finditer(text):
        fixed = _redecoded(match.group())
        # Real double encoding gives back characters outside Latin-1 (Cyrillic, CJK, dashes, quotes).
        if fixed and any(ord(ch) > 0xFF for ch in fixed):
            found += 1
            example = example or f"{match.group()!a} for {fixed!r}"
            if found >= limit:
                break
    return found, example


def check_not_double_encoded(location: str, texts: list[str]) -> None:
    """Refuse a source whose texts are double-encoded: at least three such runs, in at least half
    of its non-ASCII texts (a post quoting one garbled word does not refuse its export)."""
    runs = flagged = non_ascii = 0
    example = None
    for text in texts:
        if text.isascii():
            continue
        non_ascii += 1
        found, first = _mojibake_runs(text, MIN_MOJIBAKE_RUNS)
        if found:
            runs, flagged, example = runs + found, flagged + 1, example or first
    if runs >= MIN_MOJIBAKE_RUNS and 2 * flagged >= non_ascii:
        raise IngestError(
            f"{location}: text is double-encoded UTF-8 (mojibake, e.g. {example}); "
            "re-export it or convert it back to UTF-8 before ingesting"
        )


def utf16_to_utf8(location: str, data: bytes) -> tuple[bytes, str | None]:
    """(UTF-8 bytes, a note) for UTF-16 text (with a BOM, or ASCII-heavy without one); else (data, None)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        codec = "utf-16"
    else:
        head = data[:4096]
        if len(head) < 16 or head.count(0) < len(head) // 4:
            return data, None
        even_nuls, odd_nuls = head[0::2].count(0), head[1::2].count(0)
        if odd_nuls > 0.6 * len(head) // 2 and even_nuls == 0:
            codec = "utf-16-le"
        elif even_nuls > 0.6 * len(head) // 2 and odd_nuls == 0:
            codec = "utf-16-be"
        else:
            return data, None
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        raise IngestError(
            f"{location}: UTF-16 text that does not decode ({exc.reason} at byte {exc.start})"
        ) from exc
    return text.lstrip("\ufeff").encode(
        "utf-8"
    ), f"{location}: UTF-16 text, read as such (UTF-8 is the usual encoding)"
