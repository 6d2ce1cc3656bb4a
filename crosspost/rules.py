"""The rules table: per-network limits and options, bundled in `rules.toml`, overridable by a
user TOML or YAML file (only the fields given change). A malformed file is one clear error.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from core.errors import CrosspostError
from crosspost.counters import COUNTERS

DEFAULTS_FILE = Path(__file__).with_name("rules.toml")
NETWORK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")  # stored as Conversion.target (32 chars)


@dataclass(frozen=True)
class Rules:
    limit: int | None = None
    max_bytes: int | None = None  # a second limit in UTF-8 bytes (Bluesky's record: 3,000)
    counter: str = "chars"
    url_length: int = 23
    min_part: int = 0
    numbering: bool = True
    link_original: bool = True
    style: str = ""
    # A network defined only in the user's file renders like this registered one (e.g. a second
    # Mastodon instance with another limit: `[fosstodon]` + `base = "mastodon"`).
    base: str | None = None


_TYPES: dict[str, tuple[type, ...]] = {
    "limit": (int, type(None)),
    "max_bytes": (int, type(None)),
    "counter": (str,),
    "url_length": (int,),
    "min_part": (int,),
    "numbering": (bool,),
    "link_original": (bool,),
    "style": (str,),
    "base": (str,),
}


def _read_table(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CrosspostError(f"rules file {path}: cannot read ({exc.strerror})") from exc
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            table = yaml.safe_load(raw) or {}
        else:
            table = tomllib.loads(raw)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise CrosspostError(f"rules file {path}: malformed ({str(exc).splitlines()[0]})") from exc
    if not isinstance(table, dict):
        raise CrosspostError(f"rules file {path}: expected a table of networks, got {type(table).__name__}")
    return table


def _apply(base: Rules, values: Any, where: str) -> Rules:
    if not isinstance(values, dict):
        raise CrosspostError(f"{where}: expected a table of settings, got {values!r}")
    known = {f.name for f in fields(Rules)}
    changes = {}
    for key, value in values.items():
        if key not in known:
            raise CrosspostError(f"{where}: unknown setting {key!r} (known: {', '.join(sorted(known))})")
        if key in ("limit", "max_bytes") and value in ("none", "null", 0):
            value = None
        if not isinstance(value, _TYPES[key]) or (isinstance(value, bool) and bool not in _TYPES[key]):
            raise CrosspostError(f"{where}: {key} = {value!r} has the wrong type")
        if key == "counter" and value not in COUNTERS:
            raise CrosspostError(f"{where}: unknown counter {value!r} (known: {', '.join(COUNTERS)})")
        if (
            key in ("limit", "max_bytes", "url_length", "min_part")
            and value is not None
            and value < 1
            and key != "min_part"
        ):
            raise CrosspostError(f"{where}: {key} must be positive, got {value}")
        changes[key] = value
    rules = replace(base, **changes)
    if rules.limit is not None and rules.min_part >= rules.limit:
        rules = replace(rules, min_part=rules.limit // 3)
    return rules


def load_rules(override: Path | None = None) -> dict[str, Rules]:
    """Rules per network name: the bundled defaults, then the user's file on top."""
    table = {
        name: _apply(Rules(), values, f"{DEFAULTS_FILE} [{name}]")
        for name, values in _read_table(DEFAULTS_FILE).items()
    }
    if override is not None:
        for name, values in _read_table(Path(override)).items():
            if not NETWORK_NAME.match(str(name)):
                raise CrosspostError(
                    f"rules file {override}: network name {name!r} must be 1-32 lowercase letters, digits, - or _"
                )
            where = f"rules file {override} [{name}]"
            start = table.get(name)
            if start is None:
                # A new network named after a registered one (`base = "mastodon"`) starts from that
                # network's rules (limit, counter, URL weight...); only the fields given change.
                base = values.get("base") if isinstance(values, dict) else None
                if base is not None and not isinstance(base, str):
                    raise CrosspostError(f"{where}: base = {base!r} has the wrong type")
                if base is not None and base not in table:
                    raise CrosspostError(
                        f"{where}: base {base!r} is not a network (known: {', '.join(table)})"
                    )
                start = replace(table[base], base=None) if base else Rules()
            table[name] = _apply(start, values, where)
    return table
