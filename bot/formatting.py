"""Telegram HTML: escaping, rendering answers and their sources, splitting below the message limit.

Telegram's HTML mode accepts a small tag set and requires `<`, `>`, `&` escaped in text. Model
output is never trusted as HTML: it is escaped whole, and only our own tags are added. Long texts
are split below 4,096 characters at paragraph boundaries (then lines, sentences, words); a split
inside a tag closes the open tags at the end of the part and reopens them in the next one, so
every part is valid HTML on its own.
"""

from __future__ import annotations

import html
import re

from bot.texts import t
from core.text import CITATION, citation_numbers, utf16_len
from core.tme import find_post_link
from rag.types import Answer, Citation

TELEGRAM_LIMIT = 4096
_TOKEN = re.compile(r"(<[^>]*>)|(&#?\w+;)|([^<&]+)|([<&])")
_PIECE = re.compile(r"[^\s]*\s*|\s+")
_SENTENCE_END = re.compile(r"[.!?…][)\]»\"']*\s+$")
_TAG_NAME = re.compile(r"</?\s*([a-zA-Z][\w-]*)")


def escape(text: str) -> str:
    return html.escape(text, quote=False)


def attr(value: str) -> str:
    return html.escape(value, quote=True)


def link(url: str | None, label: str) -> str:
    return f'<a href="{attr(url)}">{escape(label)}</a>' if url else escape(label)


def source_label(citation: Citation) -> str:
    """'@channel/123 · 2025-04-28' for posts, the title for papers, else the URL. A post without a
    permalink (page dumps) also gets its first words, so a reader can find it in the channel."""
    title, url, channel, lead = citation.title, citation.url, citation.channel, citation.lead
    date_text = citation.date.date().isoformat() if citation.date else ""
    if title:
        label = title
    elif channel and url and (post := find_post_link(url)):
        label = f"@{channel}/{post.message_id}"
    elif channel:
        label = f"@{channel}"
    else:
        label = url or "?"
    label = f"{label} · {date_text}" if date_text else label
    if lead and not title and not (url and find_post_link(url)):
        label = f"{label} · «{lead}»"
    return label


def render_answer(answer: Answer, lang: str) -> str:
    """The final answer message as Telegram HTML: text with linked [n] markers, then the sources."""
    citations = answer.citations
    urls = {c.n: c.url for c in citations}
    body = escape(answer.answer.strip())

    def _link_markers(match: re.Match[str]) -> str:
        numbers = citation_numbers(match.group(1))
        return "".join(link(urls.get(n), f"[{n}]") if urls.get(n) else f"[{n}]" for n in numbers)

    body = CITATION.sub(_link_markers, body)
    lines = []
    if body:
        lines.append(body)
    if answer.notice:
        lines.append(f"<i>{escape(answer.notice)}</i>")
    if citations:
        items = [f"{c.n}. {link(c.url, source_label(c))}" for c in citations]
        lines.append(f"<b>{escape(t(lang, 'sources_title'))}</b>\n" + "\n".join(items))
    return "\n\n".join(lines)


def render_quotes(citations: list[Citation], lang: str) -> str:
    """The "Sources" button's expansion: each source with its quote in a blockquote."""
    if not citations:
        return escape(t(lang, "no_quotes"))
    blocks = []
    for c in citations:
        quote = c.quote.strip()
        head = f"{c.n}. {link(c.url, source_label(c))}"
        blocks.append(f"{head}\n<blockquote>{escape(quote)}</blockquote>" if quote else head)
    return "\n\n".join(blocks)


# --- splitting --------------------------------------------------------------------------------
def _pieces(source: str) -> list[tuple[str, str | None, int]]:
    """(text, tag name or None, break priority after it): tags and entities are atomic."""
    out: list[tuple[str, str | None, int]] = []
    for tag, entity, text, stray in _TOKEN.findall(source):
        if tag:
            name = _TAG_NAME.match(tag)
            out.append((tag, name.group(1).lower() if name else None, -1))
        elif entity or stray:
            out.append((entity or escape(stray), None, -1))
        else:
            for piece in _PIECE.findall(text):
                if not piece:
                    continue
                if "\n\n" in piece:
                    priority = 3
                elif "\n" in piece:
                    priority = 2
                elif _SENTENCE_END.search(piece):
                    priority = 1
                elif piece[-1].isspace():
                    priority = 0
                else:
                    priority = -1
                out.append((piece, None, priority))
    return out


def _hard_split(pieces: list[tuple[str, str | None, int]], size: int) -> list[tuple[str, str | None, int]]:
    """Cut words longer than `size` (a pasted hash or URL) into fixed slices."""
    out: list[tuple[str, str | None, int]] = []
    for text, name, priority in pieces:
        if name is None and len(text) > size and not text.startswith("&"):
            chunks = [text[i : i + size] for i in range(0, len(text), size)]
            out.extend((c, None, -1) for c in chunks[:-1])
            out.append((chunks[-1], None, priority))
        else:
            out.append((text, name, priority))
    return out


def _closing(stack: list[tuple[str, str]]) -> str:
    return "".join(f"</{name}>" for name, _ in reversed(stack))


def split_html(source: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Split Telegram HTML into parts of at most `limit` UTF-16 units, each well-formed.

    Greedy: fill a part, then cut at the best boundary seen so far (paragraph > line >
    sentence > word > anywhere), preferring the latest boundary of the best kind.
    """
    source = source.strip()
    if utf16_len(source) <= limit:
        return [source] if source else []
    pieces = _hard_split(_pieces(source), max(16, limit // 4))
    parts: list[str] = []
    stack: list[tuple[str, str]] = []  # open tags: (name, the opening tag as written)
    start = 0
    while start < len(pieces):
        prefix = "".join(tag for _, tag in stack)
        cur_stack = list(stack)
        body = prefix
        length = utf16_len(prefix)
        best: tuple[int, int, list[tuple[str, str]], str] | None = None  # (priority, index, stack, body)
        index = start
        while index < len(pieces):
            text, name, priority = pieces[index]
            new_stack = cur_stack
            if name is not None:
                if text.startswith("</"):
                    if cur_stack and cur_stack[-1][0] == name:
                        new_stack = cur_stack[:-1]
                elif not text.endswith("/>"):
                    new_stack = [*cur_stack, (name, text)]
            piece_len = utf16_len(text)
            if length + piece_len + utf16_len(_closing(new_stack)) > limit and index > start:
                break
            body += text
            length += piece_len
            cur_stack = new_stack
            # A boundary in the first third of a part would leave a stub: count it as a word break.
            effective = priority if length >= limit // 3 else min(priority, 0)
            if best is None or effective >= best[0]:
                best = (effective, index, cur_stack, body)
            index += 1
        if index >= len(pieces):
            best = (99, len(pieces) - 1, cur_stack, body)
        assert best is not None
        _, last, stack, body = best
        part = (body.rstrip() + _closing(stack)).strip() if stack else body.strip()
        if re.sub(r"<[^>]*>", "", part).strip():
            parts.append(part)
        start = last + 1
    return parts


def plain_preview(text: str, limit: int = TELEGRAM_LIMIT - 96) -> str:
    """Streaming preview text (no parse mode): the tail is cut with an ellipsis past the limit."""
    text = text.strip()
    return text if utf16_len(text) <= limit else text[: limit - 1].rstrip() + "…"
