"""Bad input gets one clear message and writes nothing; odd but valid input converts correctly."""

from __future__ import annotations

import io
import json
import re

import pytest

from core.errors import CrosspostError
from crosspost.model import SourcePost
from crosspost.rules import load_rules
from crosspost.service import DEFAULT_TARGETS, convert
from crosspost.targets import resolve
from rag.store.conversions import list_conversions
from tests.crosspost.conftest import check_parts


def _stdin(text: str) -> io.StringIO:
    return io.StringIO(text)


def test_empty_post():
    with pytest.raises(CrosspostError, match="the post is empty"):
        convert("-", stdin=_stdin("  \n\n "))


def test_media_only_post():
    post = SourcePost(text="", media=[{"photo": "photo_1.jpg"}], origin="https://t.me/c/1")
    with pytest.raises(CrosspostError, match="only media with no caption"):
        convert(post)


def test_only_links_converts_with_a_notice(fake_llm):
    llm = fake_llm()
    result = convert(
        "-",
        stdin=_stdin("https://arxiv.org/abs/2410.02367\nhttps://github.com/thu-ml/SageAttention"),
        llm=llm.config,
    )
    assert llm.requests == []  # nothing to translate
    assert any("only links" in n for n in result.notices)
    assert "https://github.com/thu-ml/SageAttention" in result.targets["x"].parts[0].text


def test_rtl_ltr_mix_and_combining_marks():
    text = "\ufeffМодель \u202bעברית\u202c mixed with \u200fالعربية text, café (e\u0301) и 👩🏽‍🔬 " * 30
    post = SourcePost(text=text)
    result = convert(post, targets=DEFAULT_TARGETS)
    for name, target, rule in resolve(DEFAULT_TARGETS, load_rules()):
        check_parts(name, target, rule, post, result.targets[name].parts)


def test_long_url_alone_fits_everywhere_it_can():
    url = "https://example.com/" + "a" * 600
    result = convert("-", targets=["x", "bluesky", "mastodon"], stdin=_stdin(f"Смотрите {url} вот"))
    assert result.targets["x"].parts[0].length == len("Смотрите  вот") + 23  # X counts any URL as 23
    bluesky = result.targets["bluesky"].parts[0]
    assert (
        bluesky.length < 300 and bluesky.facets[0]["features"][0]["uri"] == url
    )  # shown short, linked in full
    assert result.targets["mastodon"].parts[0].length == len("Смотрите  вот") + 23


def test_url_longer_than_a_threads_post_fails_threads_only():
    """A 620-character URL cannot be a Threads post (UTF-16, no URL shortening): Threads reports
    its own error, the other networks are produced."""
    url = "https://example.com/" + "a" * 600
    result = convert("-", targets=["x", "threads", "mastodon"], stdin=_stdin(f"Смотрите {url}"))
    assert result.failed.keys() == {"threads"}
    assert re.search(
        r"threads: .*cannot be split and does not fit in one part \(limit 500\)", result.failed["threads"]
    )
    assert result.targets["threads"].parts == []
    assert result.targets["x"].parts[0].length == len("Смотрите ") + 23
    data = result.to_json()
    assert data["failed"] == ["threads"] and "error" in data["targets"]["threads"]
    assert "error" not in data["targets"]["x"]


def test_unknown_network():
    with pytest.raises(
        CrosspostError,
        match=r"unknown network 'myspace' \(known: bluesky, linkedin, markdown, mastodon, threads, x\)",
    ):
        convert("-", targets=["x", "myspace"], stdin=_stdin("text"))


def test_permalink_not_in_store(store):
    with pytest.raises(CrosspostError, match=r"https://t.me/nochannel/42 is not in the store"):
        convert("https://t.me/nochannel/42", store=store)
    with pytest.raises(CrosspostError, match=r"https://t.me/nochannel/42 is not in the store"):
        convert("nochannel/42", store=store)


def test_neither_file_nor_link():
    with pytest.raises(CrosspostError, match="neither a file nor a post link"):
        convert("no/such/file.txt")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("g.txt", "квантизация quantization\n", r"glossary .*g\.txt line 1: expected 'term = translation'"),
        ("g.toml", "[[[", r"glossary .*g\.toml: malformed"),
        ("g.yaml", "- a\n- b\n", r"glossary .*g\.yaml: expected a mapping"),
    ],
)
def test_malformed_glossary(tmp_path, store, fake_llm, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    llm = fake_llm()
    with pytest.raises(CrosspostError, match=message):
        convert("-", llm=llm.config, glossary_file=path, store=store, stdin=_stdin("Привет"))
    assert llm.requests == [] and list_conversions(store) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[x]\nlimit = 'lots'\n", r"\[x\]: limit = 'lots' has the wrong type"),
        ("[x]\nlimt = 100\n", r"\[x\]: unknown setting 'limt'"),
        ("[x\n", "malformed"),
        ("[mastodon]\ncounter = 'words'\n", "unknown counter 'words'"),
    ],
)
def test_malformed_rules(tmp_path, content, message):
    path = tmp_path / "rules.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CrosspostError, match=message):
        convert("-", rules_file=path, stdin=_stdin("text"))


def test_rules_override_and_new_instance(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(
        "mastodon:\n  limit: 120\nfosstodon:\n  base: mastodon\n  limit: 1000\n", encoding="utf-8"
    )
    text = "Пост про модели и квантизацию, довольно длинный. " * 20
    result = convert("-", targets=["mastodon", "fosstodon"], rules_file=path, stdin=_stdin(text))
    assert all(p.length <= 120 and p.limit == 120 for p in result.targets["mastodon"].parts)
    assert len(result.targets["fosstodon"].parts) == 1 and result.targets["fosstodon"].parts[0].limit == 1000


def test_telegram_export_message(tmp_path):
    export = {
        "name": "Awesome DL",
        "type": "public_channel",
        "id": 1,
        "messages": [
            {"id": 7, "type": "service", "action": "pin_message", "text": ""},
            {
                "id": 30,
                "type": "message",
                "date": "2025-04-20T10:00:00",
                "text_entities": [
                    {"type": "bold", "text": "Новый бот"},
                    {"type": "plain", "text": " для кросс-постинга, "},
                    {"type": "text_link", "text": "пример", "href": "https://www.tgoop.com/fminxyz/30"},
                    {"type": "plain", "text": " и "},
                    {"type": "mention", "text": "@fminxyz"},
                ],
            },
        ],
    }
    path = tmp_path / "result.json"
    path.write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    result = convert(f"{path}#30", targets=["x", "bluesky", "markdown"])
    assert (
        result.targets["x"].parts[0].text
        == "Новый бот для кросс-постинга, пример (https://www.tgoop.com/fminxyz/30) и @fminxyz"
    )
    bluesky = result.targets["bluesky"].parts[0]
    assert bluesky.text == "Новый бот для кросс-постинга, пример и @fminxyz"
    facet = bluesky.facets[0]
    start, end = facet["index"]["byteStart"], facet["index"]["byteEnd"]
    assert bluesky.text.encode()[start:end].decode() == "пример"  # UTF-8 byte offsets
    assert (
        result.targets["markdown"]
        .parts[0]
        .text.startswith("**Новый бот** для кросс-постинга, [пример](https://www.tgoop.com/fminxyz/30)")
    )
    path2 = tmp_path / "two.json"
    export["messages"].append({"id": 31, "type": "message", "text": "ещё"})
    path2.write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(CrosspostError, match=r"holds 2 messages; pick one with .*two\.json#<id>"):
        convert(str(path2))
    with pytest.raises(CrosspostError, match="no message with id 99"):
        convert(f"{path}#99")


def test_markdown_file_keeps_structure(tmp_path):
    path = tmp_path / "post.md"
    path.write_text(
        "# Title\n\nSome **bold** text with [a link](https://example.com/x).\n\n- one\n- two\n\n"
        "```python\nprint('hi')\n```\n",
        encoding="utf-8",
    )
    result = convert(str(path), targets=["markdown", "linkedin", "x"])
    md = result.targets["markdown"].parts[0].text
    assert "# Title" in md and "**bold**" in md and "[a link](https://example.com/x)" in md
    assert "- one\n- two" in md and "```python\nprint('hi')\n```" in md
    linkedin = result.targets["linkedin"].parts[0].text
    assert (
        "• one\n• two" in linkedin and "**" not in linkedin and "a link (https://example.com/x)" in linkedin
    )
