"""Mastodon: 500 characters by default (set `limit` per instance in the rules file), URLs count 23."""

from crosspost.targets import register
from crosspost.targets.base import PlainTarget


@register
class Mastodon(PlainTarget):
    name = "mastodon"
