"""Threads (Meta): 500 characters, counted as UTF-16 units (an emoji never counts less)."""

from crosspost.targets import register
from crosspost.targets.base import PlainTarget


@register
class Threads(PlainTarget):
    name = "threads"
