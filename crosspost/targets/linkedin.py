"""LinkedIn: 3,000 characters of plain text (no Markdown), line breaks kept, Unicode bullets."""

from crosspost.render import PlainStyle
from crosspost.targets import register
from crosspost.targets.base import PlainTarget


@register
class LinkedIn(PlainTarget):
    name = "linkedin"
    style = PlainStyle(unicode_bullets=True)
