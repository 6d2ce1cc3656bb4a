"""The small shared rules (core/): one t.me link parser, one citation marker, one language rule,
one network list. Each was written several ways before; these pin the one behaviour left."""

from __future__ import annotations

import pytest

from core.lang import detect_language
from core.text import CITATION, citation_numbers, grapheme_length, utf16_len
from core.tme import (
    PostRef,
    channel_name,
    chat_key,
    display_channel,
    find_post_link,
    is_internal_key,
    parse_post_link,
    title_key,
)


@pytest.mark.parametrize(
    "link",
    [
        "https://t.me/quant_chan/42",
        "t.me/quant_chan/42",
        "http://www.t.me/quant_chan/42/",
        "https://t.me/s/quant_chan/42",
        "https://telegram.me/quant_chan/42?single",
        "HTTPS://T.ME/quant_chan/42",
        "tgoop.com/quant_chan/42",
    ],
)
def test_post_links_in_every_written_form(link):
    assert parse_post_link(link) == PostRef("quant_chan", 42)
    assert find_post_link(f"see ({link}) here") == PostRef("quant_chan", 42)


@pytest.mark.parametrize(
    "text",
    [
        "https://t.me/c/123456/7",  # a private chat's link: nobody else can open it
        "https://t.me/ab/7",  # shorter than any username
        "https://t.me/" + "a" * 65 + "/7",
        "https://t.me/quant_chan",  # a channel, not a post
        "https://example.com/t.me/quant_chan/42",
        "quant_chan/42",  # the short form only where asked for
    ],
)
def test_not_a_post_link(text):
    assert parse_post_link(text) is None


def test_short_reference_only_when_asked():
    assert parse_post_link("@quant_chan/42", short=True) == PostRef("quant_chan", 42)
    assert parse_post_link("12/34", short=True) is None  # usernames start with a letter
    assert PostRef("quant_chan", 42).url == "https://t.me/quant_chan/42"


def test_channel_names_and_store_keys():
    assert channel_name("@quant_chan") == channel_name("https://t.me/s/quant_chan/5") == "quant_chan"
    assert channel_name("Concise Research") == "Concise Research"  # a title filter stays a title
    assert is_internal_key(title_key("Quant")) and is_internal_key(chat_key(-100222))
    assert not is_internal_key("quant_chan")
    assert display_channel(title_key("Quant"), "Quant") == "Quant"
    assert display_channel("quant_chan", "Quant") == "quant_chan"


def test_citation_markers():
    found = [citation_numbers(m.group(1)) for m in CITATION.finditer("a [1], b [2, 3][4] c [100] [x]")]
    assert found == [[1], [2, 3], [4], [100]]


def test_text_measures():
    family = "👨\u200d👩\u200d👧\u200d👦"
    assert utf16_len(family) == 11 and grapheme_length(family) == 1
    assert utf16_len("абв") == 3


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Как работает квантизация GPTQ?", "ru"),
        ("Что такое KV-cache в vLLM и FlashAttention?", "ru"),  # 3 Cyrillic words of 7
        ("How does GPTQ quantization work?", "en"),
        ("Це їхня ґанок і є", "uk"),
        ("量化是什么", "zh"),
        ("これは量子化です", "ja"),
        ("12345 ???", "und"),
    ],
)
def test_one_language_rule(text, lang):
    assert detect_language(text) == lang


def test_crosspost_and_rag_detect_the_same_way():
    from crosspost.translate import detect_language as post_language
    from rag.text import detect_language as query_language

    for text in ("Как работает квантизация GPTQ?", "How does GPTQ quantization work?", "量化是什么"):
        assert post_language(text) == query_language(text) == detect_language(text)
    # a post is judged by its prose: the model names and the link do not make it English
    assert post_language("Вышел SageAttention3 https://github.com/thu-ml/SageAttention") == "ru"


def test_one_network_list():
    import tomllib
    from importlib import resources

    from crosspost import DEFAULT_TARGETS, NETWORKS
    from crosspost.targets import targets

    rules = tomllib.loads(resources.files("crosspost").joinpath("rules.toml").read_text())
    assert set(NETWORKS) == set(targets()) == set(rules) and DEFAULT_TARGETS == list(NETWORKS)
