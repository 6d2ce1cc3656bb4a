"""Property tests: random posts with emoji (ZWJ sequences, flags), URLs, CJK, RTL, Indic, mentions,
hashtags in every script, code spans and code blocks, numbers with units. For every network, every
part is within its limit by that network's counter (Bluesky's 3,000 bytes too), nothing protected
is cut, and the parts concatenate back to the post."""

from __future__ import annotations

import re
import unicodedata

import grapheme
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crosspost.model import SourcePost
from crosspost.parse import doc_from_source
from crosspost.rules import load_rules
from crosspost.targets import resolve
from tests.crosspost.conftest import check_parts


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


NETWORKS = ["x", "bluesky", "mastodon", "threads", "linkedin", "markdown"]
RULES = load_rules()
RESOLVED = resolve(NETWORKS, RULES)

words = st.sampled_from(
    [
        "квантизация",
        "модель",
        "attention",
        "быстрее",
        "Flash",
        "SageAttention2",
        "по-тихому",
        "т.е.",
        "模型",
        "注意力机制",
        "日本語のテキスト",
        "שלום",
        "مرحبا",
        "é́",
        "naïve",
        "A_quant",
        "x²",
        "Ω",
        "👍",
        "🔥",
        "📌",
        "1️⃣",
        "👨‍👩‍👧‍👦",
        "🏳️‍🌈",
        "👍🏽",
        "🧑‍💻",
        "‍",
        "a" * 40,
        "🇺🇦🇯🇵🇧🇷",
        "🏴󠁧󠁢󠁳󠁣󠁴󠁿",
        "🏳️‍⚧️",
        "👩🏿‍❤️‍💋‍👨🏻",
        "महात्मा",
        "ශ්‍රී",
        "ภาษาไทย",
        "བོད་ཡིག",
        "\u200fעברית\u200e",
        "한국어",
    ]
)
urls = st.builds(
    lambda host, path: f"https://{host}/{path}",
    st.sampled_from(["arxiv.org", "github.com", "t.me", "huggingface.co", "example.com"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-/.", min_size=1, max_size=90).map(
        lambda p: p.strip("./") or "x"
    ),
)
mentions = st.from_regex(r"@[a-z][a-z0-9_]{3,12}", fullmatch=True)
hashtags = st.one_of(
    st.from_regex(r"#[a-zа-я][a-zа-я0-9_]{1,12}", fullmatch=True),
    st.sampled_from(["#महात्मा", "＃日本語", "#צה״ל", "#ភាសាខ្មែរ", "#🦋", "#with,punct", "##x"]),
)
code = st.from_regex(r"`[a-z_]{1,8}\([a-z, ]{0,10}\)`", fullmatch=True)
numbers = st.sampled_from(["2.1 раза", "16 GB", "256px", "2 308 токенов", "80,2%", "5 ms", "H100", "1/2/4"])
punct = st.sampled_from([".", ",", ";", ":", "!", "?", " —", "…", ")"])
token = st.one_of(words, words, words, urls, mentions, hashtags, code, numbers, punct)
separator = st.sampled_from([" ", " ", " ", " ", "\n", "\n\n", "\n📌 ", "\n- "])


@st.composite
def posts(draw) -> str:
    tokens = draw(st.lists(token, min_size=draw(st.sampled_from([1, 40, 120])), max_size=350))
    pieces = []
    for tok in tokens:
        pieces.append(tok)
        pieces.append(draw(separator))
    return "".join(pieces)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=posts(), permalink=st.sampled_from([None, "https://t.me/some_channel/123"]))
def test_every_network_valid(text, permalink):
    post = SourcePost(text=text, permalink=permalink)
    doc = doc_from_source(post)
    if not doc.plain().strip():
        return
    for name, target, rules in RESOLVED:
        parts = target.convert(doc, rules, permalink)
        check_parts(name, target, rules, post, parts)
        if name == "bluesky":  # every URL is linked in full, even when shown shortened
            uris = {f["features"][0].get("uri") for p in parts for f in p.facets}
            assert {u for u in doc.link_urls() if u.startswith("https://")} <= uris
        if name in ("x", "mastodon", "threads"):
            # plain text renders as itself, so the parts give back the original post
            joined = " ".join(p.body for p in parts)
            assert _squash(joined) == _squash(unicodedata.normalize("NFC", text))
        if permalink and name != "markdown":
            link_shown = "t.me/some_channel/123"
            assert link_shown in parts[0].text


@settings(max_examples=25, deadline=None)
@given(word=st.text(alphabet="0123456789abcdef", min_size=300, max_size=700))
def test_word_longer_than_a_post_is_split_at_graphemes(word):
    """A hash longer than a tweet cannot break at spaces: it is cut into parts that all fit."""
    post = SourcePost(text=f"commit {word} done")
    doc = doc_from_source(post)
    for name, target, rules in RESOLVED[:2]:
        parts = target.convert(doc, rules, None)
        check_parts(name, target, rules, post, parts)
        assert "".join(p.body for p in parts).replace(" ", "") == f"commit{word}done"


@settings(max_examples=20, deadline=None)
@given(n=st.integers(min_value=20, max_value=140))
def test_zwj_emoji_counted_as_networks_count_them(n):
    """A family emoji is 7 code points but one grapheme for Bluesky and weight 2 on X."""
    family = "👨‍👩‍👧‍👦"
    post = SourcePost(text=" ".join([family] * n))
    doc = doc_from_source(post)
    for name, target, rules in RESOLVED[:2]:
        parts = target.convert(doc, rules, None)
        check_parts(name, target, rules, post, parts)
        for part in parts:
            assert grapheme.length(part.body.replace(" ", "")) == part.body.count(family)
    x_parts = RESOLVED[0][1].convert(doc, RULES["x"], None)
    assert x_parts[0].length == (3 * n - 1 if n <= 93 else x_parts[0].length)


code_lines = st.lists(
    st.sampled_from(
        [
            "x = quantize(w, bits=4)  # 4-bit",
            "    return torch.matmul(a, b)",
            "for i in range(16):",
            "print('模型', '👨‍👩‍👧‍👦')",
            "",
            "y = " + "0" * 60,
        ]
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=posts(), code=code_lines, after=st.sampled_from(["", "Итог: быстрее в 2.1 раза."]))
def test_code_blocks_split_between_lines(before, code, after):
    """Markdown with a fenced block of any length: every network gets valid parts, and a part cut
    inside the block carries whole lines between its own fences."""
    body = "\n".join(code)
    post = SourcePost(text=f"{before}\n\n```python\n{body}\n```\n\n{after}", markdown=True)
    doc = doc_from_source(post)
    for name, target, rules in RESOLVED:
        parts = target.convert(doc, rules, None)
        check_parts(name, target, rules, post, parts)
