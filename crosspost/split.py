"""Splitting rendered text into parts that each fit a network's limit by its own counter.

Breaks are ranked: paragraph, line, sentence, clause, word, then grapheme (only for a "word" that
alone is longer than a part, e.g. a hash). A break never falls inside a protected range (URL,
mention, hashtag, code span, number with its unit) nor inside a grapheme cluster (ZWJ emoji,
combining marks). Each part is the longest that fits at the coarsest level whose part is not
shorter than `min_part`; every part is measured with its `i/n` suffix (and, for the first part,
the link to the original post) before it is accepted.

Code blocks (rendered between ``` fences) are split between their lines, never inside one unless a
single line is longer than a part (then at spaces); a part that ends inside a block closes the
fence and the next part reopens it (with the language), and both fences are counted. An inline
`code span` is kept whole unless it alone is longer than a part: then, as a last resort, it is cut
at a space and each piece gets its own backticks. So only a single token (a URL, a long word)
longer than the limit can make a network fail.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import CrosspostError
from crosspost.tokens import find_tokens, grapheme_starts

SENTENCE_END = re.compile(r"[.!?…。！？][\"'»”)\]]*$")
CLAUSE_END = re.compile(r"[,;:，；：][\"'»”)\]]*$")
DASHES = "—–"
LEVELS = ("paragraph", "line", "sentence", "clause", "word", "grapheme")


@dataclass(frozen=True)
class Piece:
    start: int  # body range in the rendered text
    end: int
    lead: str = ""  # a code fence reopened before the body
    trail: str = ""  # a code fence closed after it


@dataclass(frozen=True)
class CodeRange:
    """A fenced code block in the rendered text: fence_open + content + fence_close."""

    start: int
    content_start: int  # after "```lang\n"
    content_end: int  # before "\n```"
    end: int
    fence_open: str  # "```lang\n"
    fence_close: str  # "\n```"


@dataclass(frozen=True)
class _Break:
    end: int  # the part before ends here
    next: int  # the next part starts here
    level: int


def find_breaks(
    text: str, protected: list[tuple[int, int]], code: list[CodeRange] | None = None
) -> tuple[list[_Break], list[int]]:
    """All allowed breaks (sorted by position) and the lower bound of any counter's length
    for each prefix (graphemes outside URLs count 1, a URL counts at least 1)."""
    blocked = bytearray(len(text) + 1)
    ranges = list(protected) + [t.span for t in find_tokens(text, units=True)]
    in_code = bytearray(len(text) + 1)
    for block in code or []:
        ranges += [(block.start, block.content_start), (block.content_end, block.end)]
        in_code[block.content_start : block.content_end] = b"\x01" * (block.content_end - block.content_start)
    for start, end in ranges:
        if end - start > 1:
            blocked[start + 1 : end] = b"\x01" * (end - start - 1)
    starts = grapheme_starts(text)
    is_start = bytearray(len(text) + 1)
    for s in starts:
        is_start[s] = 1
    is_start[len(text)] = 1

    low = [0] * (len(text) + 1)
    url_cover = bytearray(len(text) + 1)
    for token in find_tokens(text, units=False):
        if token.kind == "url":
            url_cover[token.start + 1 : token.end] = b"\x01" * (token.end - token.start - 1)
    for i in range(len(text)):
        low[i + 1] = low[i] + (1 if is_start[i] and not url_cover[i] else 0)

    breaks: list[_Break] = []
    i = 0
    line_start = 0
    n = len(text)
    while i < n:
        if text[i].isspace():
            j = i
            while j < n and text[j].isspace():
                j += 1
            if in_code[i] and in_code[j - 1]:
                # inside a code block: between lines (indentation kept), else at spaces
                if "\n" in text[i:j]:
                    brk = _Break(i, i + text[i:j].rindex("\n") + 1, 1)
                else:
                    brk = _Break(i, j, 4)
                if i > 0 and not blocked[i] and not blocked[brk.next]:
                    breaks.append(brk)
            else:
                level = _ws_level(text, i, j, line_start)
                if level is not None and i > 0 and j < n and not blocked[i] and not blocked[j]:
                    breaks.append(_Break(i, j, level))
            if "\n" in text[i:j]:
                line_start = j
            i = j
            continue
        if i > 0 and is_start[i] and not blocked[i] and not text[i - 1].isspace():
            breaks.append(_Break(i, i, 5))
        i += 1
    return breaks, low


def _ws_level(text: str, a: int, b: int, line_start: int) -> int | None:
    gap = text[a:b]
    before = text[line_start:a]
    if "\n" in gap:
        if 0 < len(before) <= 40 and not re.search(r"[.!?…:;,)»\"]$", before):
            return 4  # after a short title line ("📊 Данные"): keep the title with its section
        return 0 if gap.count("\n") >= 2 else 1
    if not re.search(r"\s", before) and len(before) <= 4:
        return None  # never leave a bullet ("📌", "1.", "•") alone at the end of a part
    if SENTENCE_END.search(before):
        return 2
    if CLAUSE_END.search(before) or text[b : b + 1] in DASHES or before[-1:] in DASHES:
        return 3
    return 4


def split_text(
    text: str,
    protected: list[tuple[int, int]],
    count: Callable[[str], int],
    limit: int,
    *,
    min_part: int = 0,
    numbering: bool = True,
    first_extra: str = "",
    network: str = "",
    estimate: Callable[[int, int], int] | None = None,
    code: list[CodeRange] | None = None,
) -> list[Piece]:
    """Body ranges of the parts; `text` must be non-empty after stripping. `estimate(a, b)` (see
    `counters.prefix_lengths`) approximates the length of `text[a:b]` and speeds up the search;
    every part is still measured with `count`."""
    breaks, low = find_breaks(text, protected, code)
    a, b = _strip(text, 0, len(text))
    if low[b] - low[a] <= limit and count(text[a:b] + first_extra) <= limit:
        return [Piece(a, b)]
    inline = [c for c in _inline_code(text, protected) if count(text[c.start : c.end]) > limit]
    fences = _Fences([*(code or []), *inline])
    fallback = _inside_breaks(text, inline)
    estimate_n = 9
    while True:
        suffix = f"\n{estimate_n}/{estimate_n}" if numbering else ""
        pieces = _greedy(
            text,
            breaks,
            low,
            estimate,
            count,
            limit,
            min_part,
            suffix,
            first_extra,
            network,
            fences,
            fallback,
        )
        if len(pieces) <= estimate_n or not numbering:
            return pieces
        estimate_n = estimate_n * 10 + 9


def _inline_code(text: str, protected: list[tuple[int, int]]) -> list[CodeRange]:
    """Inline code spans (`...`) with a space inside: the only protected ranges that may be cut
    (and only those longer than a part, see `split_text`)."""
    spans = {t.span for t in find_tokens(text, units=False) if t.kind == "code"}
    spans |= {(a, b) for a, b in protected if b - a > 2 and text[a] == "`" and text[b - 1] == "`"}
    return [
        CodeRange(a, a + 1, b - 1, b, "`", "`")
        for a, b in sorted(spans)
        if "`" not in text[a + 1 : b - 1] and any(ch.isspace() for ch in text[a + 1 : b - 1])
    ]


def _inside_breaks(text: str, spans: list[CodeRange]) -> list[_Break]:
    breaks = []
    for span in spans:
        i = span.content_start + 1
        while i < span.content_end - 1:
            if text[i].isspace():
                j = i
                while j < span.content_end - 1 and text[j].isspace():
                    j += 1
                breaks.append(_Break(i, j, 4))
                i = j
            else:
                i += 1
    return breaks


class _Fences:
    """The fence to reopen at a part's start and to close at its end when it falls inside code."""

    def __init__(self, code: list[CodeRange]) -> None:
        self.code = code

    def lead(self, a: int) -> str:
        return next((c.fence_open for c in self.code if c.content_start < a < c.content_end), "")

    def trail(self, b: int) -> str:
        return next((c.fence_close for c in self.code if c.content_start < b < c.content_end), "")


def _strip(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def _greedy(
    text, breaks, low, estimate, count, limit, min_part, suffix, first_extra, network, fences, fallback=()
) -> list[Piece]:
    pieces: list[Piece] = []
    pos, end_of_text = _strip(text, 0, len(text))
    index = 0  # first break after pos
    cache: dict[tuple[int, int, bool], int] = {}
    tail = {True: count(first_extra + suffix), False: count(suffix)}
    fence_cost = count("```\n") + count("\n```") + max((len(c.fence_open) for c in fences.code), default=0)

    def fits(a: int, b: int, first: bool) -> bool:
        """Exact: the part as it will be posted, measured by the network's counter."""
        if low[b] - low[a] > limit:  # every counter counts at least `low`: no need to measure
            return False
        key = (a, b, first)
        if key not in cache:
            body = fences.lead(a) + text[a:b] + fences.trail(b)
            cache[key] = count(body + (first_extra if first else "") + suffix)
        return cache[key] <= limit

    def estimate_fits(a: int, b: int, first: bool) -> bool:
        if estimate is None:
            return fits(a, b, first)
        extra = fence_cost if fences.code and (fences.lead(a) or fences.trail(b)) else 0
        return estimate(a, b) + extra + tail[first] <= limit

    while pos < end_of_text:
        first = not pieces
        if estimate_fits(pos, end_of_text, first) and fits(pos, end_of_text, first):
            pieces.append(Piece(pos, end_of_text, fences.lead(pos)))
            break
        while index < len(breaks) and breaks[index].end <= pos:
            index += 1
        stop = index
        while stop < len(breaks) and low[breaks[stop].end] - low[pos] <= limit:
            stop += 1
        window = breaks[index:stop]
        # Whether a part fits depends only on where it ends, so one binary search over all
        # candidates finds the farthest fitting end; each level then takes its last break before it.
        farthest = _farthest_fitting(window, lambda brk, p=pos, f=first: estimate_fits(p, brk.end, f))
        chosen: _Break | None = None
        if farthest is not None:
            for level in range(len(LEVELS)):
                best = next((b for b in reversed(window) if b.level <= level and b.end <= farthest.end), None)
                if best is None:
                    continue
                chosen = best
                size = estimate(pos, best.end) if estimate is not None else count(text[pos : best.end])
                if size >= min_part:
                    break
            # The estimate chose; the exact counter decides. Step back while the part does not fit.
            while chosen is not None and not fits(pos, chosen.end, first):
                level = chosen.level
                earlier = [b for b in window if b.end < chosen.end]
                chosen = next((b for b in reversed(earlier) if b.level <= level), None) or (
                    earlier[-1] if earlier else None
                )
        if fallback and (chosen is None or count(text[pos : chosen.end]) < min_part):
            # last resort: a space inside an inline code span longer than a part (which then
            # starts in this part rather than leaving it short)
            after = chosen.end if chosen is not None else pos
            chosen = next(
                (b for b in reversed(fallback) if b.end > after and fits(pos, b.end, first)), chosen
            )
        if chosen is None:
            raise CrosspostError(_too_long_message(text, pos, breaks, index, network, limit, count))
        pieces.append(Piece(pos, chosen.end, fences.lead(pos), fences.trail(chosen.end)))
        pos = chosen.next
    return pieces


def _farthest_fitting(candidates: list[_Break], fits: Callable[[_Break], bool]) -> _Break | None:
    """Binary search for the last fitting candidate (length grows with the end)."""
    lo, hi, best = 0, len(candidates) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        if fits(candidates[mid]):
            best, lo = candidates[mid], mid + 1
        else:
            hi = mid - 1
    return best


def _too_long_message(text, pos, breaks, index, network, limit, count) -> str:
    end = breaks[index].end if index < len(breaks) else len(text)
    piece = text[pos:end]
    shown = piece if len(piece) <= 60 else piece[:57] + "…"
    return (
        f"{network or 'target'}: {shown!r} ({count(piece)} by this network's count) cannot be split and "
        f"does not fit in one part (limit {limit}); shorten it or raise the limit in the rules file"
    )
