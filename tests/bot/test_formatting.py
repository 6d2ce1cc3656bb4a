"""Telegram HTML: escaping model output, answers with source links, splitting below the limit."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.formatting import escape, render_answer, split_html, utf16_len
from rag.types import Answer, Citation
from tests.bot.harness import check_html

WORDS = st.sampled_from(
    [
        "квантизация",
        "attention",
        "a<b",
        "R&D",
        "😀👍🏽",
        "https://arxiv.org/abs/2410.02367",
        "x" * 40,
        "end.",
        "вопрос?",
        "中文字符",
        '"q"',
    ]
)


@st.composite
def html_documents(draw):
    paragraphs = []
    for _ in range(draw(st.integers(1, 25))):
        words = [escape(w) for w in draw(st.lists(WORDS, min_size=1, max_size=60))]
        tag = draw(st.sampled_from([None, "b", "i", "blockquote", "code"]))
        text = " ".join(words)
        if tag == "blockquote":  # a tag spanning several lines
            text = text.replace(" end. ", " end.\n")
        if draw(st.booleans()):
            text = f'<a href="https://t.me/c/{len(paragraphs)}">{text}</a>'
        paragraphs.append(f"<{tag}>{text}</{tag}>" if tag else text)
    return "\n\n".join(paragraphs)


def plain(html: str) -> str:
    return re.sub(r"\s+", "", check_html(html).text)


@settings(max_examples=60, deadline=None)
@given(html_documents(), st.sampled_from([200, 700, 4096]))
def test_split_parts_are_valid_within_limit_and_lose_nothing(document, limit):
    parts = split_html(document, limit)
    for part in parts:
        assert utf16_len(part) <= limit
        assert check_html(part).errors == []
    assert "".join(plain(p) for p in parts) == plain(document)


def test_split_prefers_paragraph_boundaries():
    paragraphs = [f"Paragraph {i}. " + "Some words here. " * 20 for i in range(12)]
    parts = split_html("\n\n".join(paragraphs), 1000)
    for part in parts:
        assert part.startswith("Paragraph") and part.endswith("Some words here.")


def test_short_text_is_one_part_and_empty_is_none():
    assert split_html("hello") == ["hello"]
    assert split_html("  \n ") == []


def test_answer_escapes_model_output_and_links_citations():
    answer = Answer(
        'Use <script>alert(1)</script> & "quotes" [1], see also [2, 3].',
        "llm",
        False,
        citations=[
            Citation(1, 'https://t.me/chan/5?a="x"&b=1', "chan", datetime(2025, 1, 2, tzinfo=UTC), "q"),
            Citation(2, "https://arxiv.org/abs/2401.00001", None, None, "q", title="A <Paper>"),
            Citation(3, None, "chan", None, "q"),
        ],
    )
    html = render_answer(answer, "en")
    parsed = check_html(html)
    assert parsed.errors == []
    assert "<script>" in parsed.text and "<script>" not in html
    assert parsed.links.count('https://t.me/chan/5?a="x"&b=1') == 2  # marker [1] and the source line
    assert "1. @chan/5 · 2025-01-02" in parsed.text
    assert "2. A <Paper>" in parsed.text
    assert "[3]" in parsed.text  # a source without a URL stays a plain number


def test_a_post_without_permalink_is_labelled_with_its_first_words():
    """Page dumps have no t.me links: the reader finds the post by channel, date and first words."""
    from datetime import datetime

    from bot.formatting import source_label
    from rag.types import Citation

    dumped = Citation(1, None, "seeallochnaya", datetime(2025, 4, 28), "q", lead="Вышла SageAttention2")
    assert source_label(dumped) == "@seeallochnaya · 2025-04-28 · «Вышла SageAttention2»"
    linked = Citation(2, "https://t.me/seeallochnaya/123", "seeallochnaya", None, "q", lead="Вышла")
    assert source_label(linked) == "@seeallochnaya/123"
