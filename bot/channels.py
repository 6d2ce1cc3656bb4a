"""Which channels' live posts the bot may ingest, and under which stored identity (by chat id).

Anyone can create a channel, give it any title and add the bot to it, so a channel post is
untrusted until it passes `LiveChannels.admit`:
- with `TELEGRAM_CHANNELS` set, only those channels (usernames or numeric chat ids);
- without it, only channels an admin enabled with `/watch` (kept in `live_channels.json` in the
  data dir, so it survives restarts).
A channel is then identified by its Telegram chat id, never by its title: the first admitted post
binds the chat id to a store key (its username, or `_chat:<id>` when it has none; Telegram
usernames cannot start with `_`), and every later post of that chat id uses the same key. A
configured username that shows up under a different chat id (the name was released and taken by
someone else) is refused. Knows nothing of the store beyond that key.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.tme import chat_key

log = logging.getLogger(__name__)
FILE_NAME = "live_channels.json"


@dataclass(frozen=True)
class Admission:
    key: str | None  # the store key (username or _chat:<id>); None when refused
    reason: str  # why refused (for the one log line), or "" when admitted


class LiveChannels:
    """The admitted channels: {chat id: {"key", "title", "watched_by", "at"}}, persisted as JSON."""

    def __init__(self, data_dir: Path, configured: list[str] | None = None):
        self.path = Path(data_dir) / FILE_NAME
        self.configured_ids = {int(c) for c in configured or [] if c.lstrip("-").isdigit()}
        self.configured_names = {
            c.lower().lstrip("@") for c in configured or [] if not c.lstrip("-").isdigit()
        }
        self._lock = threading.Lock()
        self._channels: dict[int, dict[str, Any]] = self._load()

    # --- persistence ------------------------------------------------------------------------
    def _load(self) -> dict[int, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {int(chat_id): dict(entry) for chat_id, entry in data.get("channels", {}).items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, AttributeError) as exc:  # unreadable: admit nothing, say so once
            log.error("cannot read %s (%s): no channel is watched until it is fixed", self.path, exc)
            return {}

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"channels": {str(k): v for k, v in sorted(self._channels.items())}}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".live_channels.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, ensure_ascii=False, indent=1)
        os.replace(tmp, self.path)  # atomic: a crash leaves the old file or the new one

    # --- admin ------------------------------------------------------------------------------
    def watch(self, chat_id: int, username: str | None, title: str | None, by: int) -> str:
        """Admit a channel from now on (an admin's /watch); returns its store key."""
        with self._lock:
            entry = self._channels.get(chat_id) or {"key": self._new_key(chat_id, username)}
            entry.update(title=title, watched_by=by, at=datetime.now(UTC).isoformat(timespec="seconds"))
            self._channels[chat_id] = entry
            self._save()
            return str(entry["key"])

    def unwatch(self, chat_id: int) -> bool:
        with self._lock:
            entry = self._channels.get(chat_id)
            if entry is None or entry.get("watched_by") is None:
                return False
            entry["watched_by"] = None  # keep the key: the stored posts stay bound to this chat id
            self._save()
            return True

    def watched(self) -> list[tuple[int, dict[str, Any]]]:
        with self._lock:
            return [(k, dict(v)) for k, v in self._channels.items() if v.get("watched_by") is not None]

    # --- live posts -------------------------------------------------------------------------
    def admit(self, chat_id: int, username: str | None) -> Admission:
        """The store key for a post of this chat, or a refusal with its reason."""
        username = (username or "").lstrip("@") or None
        with self._lock:
            entry = self._channels.get(chat_id)
            if self.configured_ids or self.configured_names:
                by_name = username is not None and username.lower() in self.configured_names
                if chat_id not in self.configured_ids and not by_name:
                    return Admission(None, "not in TELEGRAM_CHANNELS")
                if entry is None and by_name and username and self._key_taken(username):
                    return Admission(None, f"@{username} is bound to another chat id (name re-used?)")
            elif entry is None or entry.get("watched_by") is None:
                return Admission(None, "not watched (an admin can enable it with /watch)")
            if entry is None:
                entry = {"key": self._new_key(chat_id, username), "watched_by": None}
                self._channels[chat_id] = entry
                self._save()
            return Admission(entry["key"], "")

    def _key_taken(self, username: str) -> bool:
        return any(e["key"].lower() == username.lower() for e in self._channels.values())

    def _new_key(self, chat_id: int, username: str | None) -> str:
        if username and not self._key_taken(username):
            return username
        return chat_key(chat_id)
