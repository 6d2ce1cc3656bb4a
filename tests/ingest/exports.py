"""Builders of small real-shaped Telegram Desktop JSON exports for tests and benchmarks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def message(mid: int, text: Any, *, ts: int = 1745873640, **extra: Any) -> dict[str, Any]:
    entities = extra.pop("text_entities", None)
    if entities is None:
        entities = (
            [{"type": "plain", "text": text}]
            if isinstance(text, str)
            else [p if isinstance(p, dict) else {"type": "plain", "text": p} for p in text]
        )
    return {
        "id": mid,
        "type": "message",
        "date": "2025-04-28T23:54:00",
        "date_unixtime": str(ts),
        "from": "КПД",
        "from_id": "channel1234",
        "text": text,
        "text_entities": entities,
        **extra,
    }


def write_export(path: Path, messages: list[dict[str, Any]], name: str = "КПД") -> Path:
    export = {"name": name, "type": "public_channel", "id": 1234, "messages": messages}
    path.write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    return path
