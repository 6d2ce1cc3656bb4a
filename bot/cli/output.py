"""Making user-controlled text safe to print on a terminal: every CLI print of post text, file
names, queries, titles, notices and errors goes through `safe` (rich markup on) or `plain`
(markup off); cross-post parts, printed to be copied, through `inert` (no secret masking).

Posts, file names and uploaded files are untrusted (SECURITY.md): text like `[/x]` would be read
as rich markup (a MarkupError traceback, or styling/links the author chose), and escape sequences
(`ESC [ … m` colours, `ESC ] 8 ; ; URL` OSC-8 hyperlinks, cursor moves, `\\r` overwrites, bidi
overrides) would be executed by the terminal. `plain` removes those; `safe` also escapes markup.
Secrets are masked too (`rag.redact`), since errors can quote URLs and settings.
"""

from __future__ import annotations

import re

from rich.markup import escape

from rag.redact import redact

# OSC (ESC ] … BEL | ESC \), CSI (ESC [ params final), other two-byte ESC sequences, and their
# 8-bit C1 forms (0x9B CSI, 0x9D OSC), which some terminals honour in UTF-8 mode too.
_SEQUENCES = re.compile(
    r"\x1b\][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b[ -/]*[0-~]?"
    r"|\x9d[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
)
# Remaining C0 controls except tab and newline, DEL, C1, and bidi/direction overrides.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def inert(text: object) -> str:
    """`text` without terminal control sequences or characters, otherwise exact (for markup=False):
    content meant to be copied as is, such as cross-post parts, whose `?key=` URLs are the post's."""
    return _CONTROLS.sub("", _SEQUENCES.sub("", str(text)))


def plain(text: object) -> str:
    """`inert(text)` with secrets masked (for markup=False)."""
    return inert(redact(text))


def safe(text: object) -> str:
    """`plain(text)` with rich markup escaped, to embed in a markup string."""
    return escape(plain(text))


def json_safe(dumped: str) -> str:
    """A `json.dumps(..., ensure_ascii=False)` string with C1 and bidi controls written as \\u
    escapes (JSON already escapes C0): still the same JSON value, harmless on a terminal."""
    return re.sub(
        r"[\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]", lambda m: f"\\u{ord(m.group()):04x}", dumped
    )
