"""The one redaction function for secrets in text that leaves the process (logs, errors, messages).

`redact(text)` masks what can be recognised without knowing it: passwords in URLs
(`scheme://user:PASS@host`), secret-looking query parameters (`?api-key=…`, `token=`, `key=`,
`password=`, `secret=`, `sig=`…), Telegram bot tokens (`123456:AA…`, also inside
`/bot<token>/` API paths). Exact secrets the process knows (the configured bot token, API keys,
the webhook secret) are registered once at the edge with `register_secret` and masked wherever they
appear. `install_log_redaction` applies the same function to every log record of the process,
its arguments and its traceback. Pure string work: no imports from the rest of the project.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Iterable

MASK = "***"

# scheme://user:password@host — the password part (user kept: it helps to debug, it is no secret).
# Pasted passwords hold `/`, `#`, `?` or `@` unencoded (SQLAlchemy reads up to the last `@`), so
# the password runs to the first `@` that is followed by a host and then the end of the authority.
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[a-zA-Z][\w+.-]*://[^\s:/@?#]*:)(?P<secret>\S{1,256}?)(?=@[^\s@/?#'\"]*(?:[/?#\s'\"]|$))"
)
# scheme://token@host (no colon): a bare credential in the userinfo.
_URL_USER_ONLY = re.compile(r"(?P<head>\b[a-zA-Z][\w+.-]*://)(?P<secret>[^\s:/@?#]{16,})(?=@)")
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&;](?:[\w.-]*(?:key|token|secret|password|passwd|pwd|sig|signature|auth|credential)"
    r"[\w.-]*)=)(?P<secret>[^&#\s'\"]+)",
    re.IGNORECASE,
)
# Bot API tokens: <bot id>:<35 url-safe characters> (BotFather's format), bare or in /bot<token>/.
_BOT_TOKEN = re.compile(r"(?P<head>(?<![\w-])(?:bot)?\d{5,}:)(?P<secret>[\w-]{30,})")

_known: set[str] = set()
_known_lock = threading.Lock()


def register_secret(*values: str | None) -> None:
    """Remember exact secrets (tokens, keys) to mask wherever they appear; short values are ignored
    because masking every "abc" would garble ordinary text."""
    with _known_lock:
        for value in values:
            if value and len(value.strip()) >= 6:
                _known.add(value.strip())


def redact(text: object, extra: Iterable[str] = ()) -> str:
    """`text` as a string with every recognisable or registered secret replaced by `***`."""
    out = str(text)
    with _known_lock:
        exact = sorted({*_known, *(e for e in extra if e and len(e) >= 6)}, key=len, reverse=True)
    for secret in exact:
        out = out.replace(secret, MASK)
    for pattern in (_URL_PASSWORD, _URL_USER_ONLY, _QUERY_SECRET, _BOT_TOKEN):
        out = pattern.sub(lambda m: m.group("head") + MASK, out)
    return out


_installed = False


def install_log_redaction() -> None:
    """Redact every log record of the process when it is created: message, arguments and the
    traceback text (pre-rendered into `exc_text`, which formatters then use as is). A record
    factory rather than a handler filter, so it covers every handler, including ones added later
    and records of libraries such as aiogram and aiohttp, whose errors can quote URLs with the bot
    token. Idempotent."""
    global _installed
    with _known_lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: logging reports it later, unredacted args dropped
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    logging.setLogRecordFactory(factory)
