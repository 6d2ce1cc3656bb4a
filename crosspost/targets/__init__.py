"""The one place cross-post targets are registered: each network is one module in this package.

A target module defines a class with `name` and `convert(doc, rules, permalink) -> list[Part]`
(usually by subclassing `PlainTarget`) and decorates it with `@register`. Its rules come from
the rules table (`crosspost/rules.toml`, overridable), keyed by the same name.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Protocol

from core.errors import CrosspostError
from crosspost.model import Doc
from crosspost.rules import Rules


class Target(Protocol):
    name: str

    def convert(self, doc: Doc, rules: Rules, permalink: str | None) -> list: ...


_TARGETS: dict[str, Target] = {}


def register(cls: type) -> type:
    _TARGETS[cls.name] = cls()
    return cls


def targets() -> dict[str, Target]:
    if not _TARGETS:
        import crosspost.targets as package

        for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if not module.name.startswith("_") and module.name != "base":
                importlib.import_module(f"{package.__name__}.{module.name}")
    return _TARGETS


def resolve(names: list[str], rules: dict[str, Rules]) -> list[tuple[str, Target, Rules]]:
    """(name, target, rules) for each requested name; unknown names fail before any work."""
    known = targets()
    out = []
    for name in names:
        name = name.strip().lower()
        if not name:
            continue
        rule = rules.get(name)
        base = rule.base if rule and rule.base else name
        if base not in known or (name not in known and rule is None):
            choices = sorted(set(known) | {n for n, r in rules.items() if r.base in known})
            raise CrosspostError(f"unknown network {name!r} (known: {', '.join(choices)})")
        out.append((name, known[base], rule or rules.get(base) or Rules()))
    if not out:
        raise CrosspostError("no target network given (use --to x,bluesky,...)")
    return out
