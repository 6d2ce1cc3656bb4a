"""X (Twitter): 280 weighted characters counted by twitter-text; threads numbered `i/n`."""

from crosspost.targets import register
from crosspost.targets.base import PlainTarget


@register
class X(PlainTarget):
    name = "x"
