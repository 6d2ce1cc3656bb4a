"""Telegram references, one rule each: post links (`https://t.me/<channel>/<id>`) and the store's
channel keys (a username, or an internal `_title:<title>` / `_chat:<id>` key).

Bounds: a public channel's username is 5-32 characters today, but older channels and the store's
test fixtures use shorter names and exports carry up to 64; 3-64 word characters covers both and
still rejects `t.me/c/<id>/<msg>` (private-chat links, which no one else can open).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HOST = r"(?:https?://)?(?:www\.)?(?:t\.me|telegram\.me|tgoop\.com)/(?:s/)?"
_CHANNEL = r"(?P<channel>[A-Za-z0-9_]{3,64})"
# A whole string that is a post link: scheme and www optional, a trailing slash or query allowed.
_LINK = re.compile(rf"^{_HOST}{_CHANNEL}/(?P<id>\d+)/?(?:\?\S*)?$", re.I)
# A post link inside a longer text or URL (citations, model output).
_IN_TEXT = re.compile(rf"(?<![\w.]){_HOST}{_CHANNEL}/(?P<id>\d+)(?![\w])", re.I)
# `<channel>/<id>` or `@<channel>/<id>`: usernames start with a letter, so a path like 12/34 is not one.
_SHORT = re.compile(r"^@?(?P<channel>[A-Za-z][A-Za-z0-9_]{2,63})/(?P<id>\d+)$")
_CHANNEL_LINK = re.compile(rf"^{_HOST}{_CHANNEL}/?$", re.I)

TITLE_KEY_PREFIX = "_title:"  # a channel known only by its title (page dumps); renamed when seen
CHAT_KEY_PREFIX = "_chat:"  # a live channel without a username, keyed by its chat id


@dataclass(frozen=True)
class PostRef:
    channel: str
    message_id: int

    @property
    def url(self) -> str:
        return post_url(self.channel, self.message_id)


def channel_url(channel: str) -> str:
    return f"https://t.me/{channel}"


def post_url(channel: str, message_id: int) -> str:
    return f"{channel_url(channel)}/{message_id}"


def _ref(match: re.Match[str] | None) -> PostRef | None:
    return PostRef(match.group("channel"), int(match.group("id"))) if match else None


def parse_post_link(text: str, *, short: bool = False) -> PostRef | None:
    """The post a whole string links to; `short=True` also takes `<channel>/<id>`."""
    text = text.strip()
    return _ref(_LINK.match(text) or (_SHORT.match(text) if short else None))


def find_post_link(text: str) -> PostRef | None:
    """The first post link inside a text or URL."""
    return _ref(_IN_TEXT.search(text))


def parse_channel_link(text: str) -> str | None:
    """The channel a whole string links to (`https://t.me/name`), or None."""
    match = _CHANNEL_LINK.match(text.strip())
    return match.group("channel") if match else None


def channel_name(ref: str) -> str:
    """A channel as a user writes it (`@name`, `name`, `https://t.me/name[/123]`) -> `name`."""
    ref = ref.strip()
    match = _CHANNEL_LINK.match(ref) or _LINK.match(ref)
    return match.group("channel") if match else ref.lstrip("@")


def title_key(title: str) -> str:
    return TITLE_KEY_PREFIX + title


def chat_key(chat_id: int) -> str:
    return f"{CHAT_KEY_PREFIX}{chat_id}"


def is_internal_key(username: str) -> bool:
    """An internal store key (`_title:`, `_chat:`): no public username, so no permalink."""
    return username.startswith("_")


def display_channel(username: str | None, title: str | None) -> str | None:
    """What a reader sees for a channel: its title when the store knows it by title only."""
    if username and username.startswith(TITLE_KEY_PREFIX):
        return title or username.removeprefix(TITLE_KEY_PREFIX)
    return username
