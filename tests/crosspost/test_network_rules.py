"""Each network's own rules, written from the networks' reference implementations (facts and
numbers from twitter-text's conformance suite, atproto's rich-text tests and Mastodon's
status-length spec; none of their files is copied)."""

from __future__ import annotations

import io
import json
import unicodedata

import grapheme
import pytest

from crosspost import atproto
from crosspost.counters import mastodon_length
from crosspost.model import SourcePost
from crosspost.parse import doc_from_source
from crosspost.rules import load_rules
from crosspost.service import DEFAULT_TARGETS, convert
from crosspost.targets import resolve
from crosspost.tokens import extract_hashtags, extract_mentions, find_tokens, find_urls
from tests.crosspost.conftest import check_parts

RULES = load_rules()


def _stdin(text: str) -> io.StringIO:
    return io.StringIO(text)


def _all_valid(post: SourcePost, targets=DEFAULT_TARGETS):
    result = convert(post, targets=targets)
    assert not result.failed, result.failed
    for name, target, rule in resolve(targets, RULES):
        check_parts(name, target, rule, post, result.targets[name].parts)
    return result


# --- 1. Bluesky: 300 graphemes AND 3,000 UTF-8 bytes ------------------------------------------------
@pytest.mark.parametrize(
    "unit",
    [
        "👨‍👩‍👧‍👦",  # 25 bytes, one grapheme
        "🏳️‍⚧️",  # ZWJ flag: 16 bytes
        "🏴󠁧󠁢󠁳󠁣󠁴󠁿",  # tag-sequence flag (Scotland): 28 bytes
        "🇺🇦🇯🇵",  # regional-indicator flags: 8 bytes each
        "👩🏽‍🔬 ",
    ],
)
def test_bluesky_parts_within_bytes_and_graphemes(unit):
    post = SourcePost(text=(unit * 7 + " ") * 90)
    parts = _all_valid(post, ["bluesky"]).targets["bluesky"].parts
    for part in parts:
        assert grapheme.length(part.text) <= 300
        assert len(part.text.encode("utf-8")) <= 3000
        assert part.to_json()["bytes"] == len(part.text.encode("utf-8"))
    if len(unit.encode()) / grapheme.length(unit) > 10:
        # bytes, not graphemes, bound these parts (the old splitter made 300-grapheme parts of
        # 3-7 KB), and they are used up: no part but the last is under 2,500 bytes
        assert all(len(p.text.encode()) > 2500 for p in parts[:-1])
        assert all(p.length < 300 for p in parts)


# --- 2. Bluesky facets as atproto detects them ------------------------------------------------------
def _facets(text: str) -> list[tuple[str, str, str]]:
    part = convert(SourcePost(text=text), targets=["bluesky"]).targets["bluesky"].parts[0]
    raw = part.text.encode("utf-8")
    out = []
    for facet in part.facets:
        feature = facet["features"][0]
        kind = feature["$type"].rsplit("#", 1)[1]
        span = raw[facet["index"]["byteStart"] : facet["index"]["byteEnd"]].decode("utf-8")
        out.append((kind, span, feature.get("tag") or feature.get("uri")))
    return out


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("its a #double#rainbow", [("#double#rainbow", "double#rainbow")]),
        ("##hashash", [("##hashash", "#hashash")]),
        ("works #with,punctuation", [("#with,punctuation", "with,punctuation")]),
        (
            "strips trailing #punctuation, #like. #this!",
            [("#punctuation", "punctuation"), ("#like", "like"), ("#this", "this")],
        ),
        ("strips #multi_trailing___...", [("#multi_trailing", "multi_trailing")]),
        ("works with #🦋 emoji, and #butter🦋fly", [("#🦋", "🦋"), ("#butter🦋fly", "butter🦋fly")]),
        ("full width ＃ハッシュタグ too", [("＃ハッシュタグ", "ハッシュタグ")]),
        ("body #1 and #1a", [("#1a", "1a")]),
        ("body #" + "a" * 64, [("#" + "a" * 64, "a" * 64)]),
        ("body #" + "a" * 65, []),  # over 64 graphemes: no tag
        ("Индия #महात्मा", [("#महात्मा", "महात्मा")]),
    ],
)
def test_bluesky_tag_facets(text, tags):
    assert [(span, tag) for kind, span, tag in _facets(text) if kind == "tag"] == tags


@pytest.mark.parametrize(
    ("text", "links"),
    [
        ("website.com.jpg", []),
        ("something-cool.jpg", []),
        ("e.g. not a link", []),
        ("a example.com/index.php php link", [("example.com/index.php", "https://example.com/index.php")]),
        ("a trailing bsky.app: colon", [("bsky.app", "https://bsky.app")]),
        ("parenthentical (https://foo.com)", [("https://foo.com", "https://foo.com")]),
        (
            "except for https://foo.com/thing_(cool)",
            [("https://foo.com/thing_(cool)", "https://foo.com/thing_(cool)")],
        ),
    ],
)
def test_bluesky_link_facets(text, links):
    assert [(span, uri) for kind, span, uri in _facets(text) if kind == "link"] == links


def test_bluesky_mentions_stay_text_and_the_json_says_so():
    result = convert("-", targets=["bluesky"], stdin=_stdin("спасибо @alice.bsky.social и @bob.test за код"))
    data = result.to_json()["targets"]["bluesky"]
    part = data["parts"][0]
    assert "@alice.bsky.social" in part["text"]
    assert not any("mention" in f["features"][0]["$type"] for f in part.get("facets", []))
    assert part["unresolved_mentions"] == ["alice.bsky.social", "bob.test"]
    assert any("resolved to a DID" in note and "@alice.bsky.social" in note for note in data["notices"])
    assert [(f.kind, f.value) for f in atproto.detect("not@right (@handle.com)")] == [
        ("mention", "handle.com")
    ]


# --- 3. hashtags, URLs and mentions per twitter-text, in every script -------------------------------
@pytest.mark.parametrize(
    "tag",
    [
        "#महात्मा",  # Devanagari with virama and vowel signs (combining marks)
        "#हिंदी",
        "#ภาษาไทย",  # Thai vowel marks
        "#العربية",
        "#عید_نوروز",
        "#שלום",
        "#צה״ל",  # Hebrew gershayim
        "#ශ්‍රී_ලංකා",  # Sinhala with ZWJ
        "#བོད་ཡིག",  # Tibetan tsheg
        "#ភាសាខ្មែរ",  # Khmer coeng
        "#日本語",
        "#ハッシュ・タグ",  # katakana middle dot
        "＃全角",
        "#café",
        "#e\u0301te\u0301",  # combining acute accents
    ],
)
def test_hashtags_whole_in_every_script(tag):
    tag = unicodedata.normalize("NFC", tag)  # as every source is read (e + U+0301 is é)
    text = f"тема {tag} дальше"
    assert [text[a:b] for a, b in extract_hashtags(text)] == [tag]
    doc = doc_from_source(SourcePost(text=text))
    assert any(s.kind == "hashtag" and s.text == tag for s in doc.spans())


@pytest.mark.parametrize(
    ("text", "hashtags"),
    [
        ("#hashtag#", []),  # followed by another hash sign
        ("#tag1 #tag2", ["#tag1", "#tag2"]),
        ("#123", []),  # no letter
        ("&#nbsp;", []),
        ("http://example.com/#anchor", []),  # inside a URL
    ],
)
def test_hashtag_boundaries(text, hashtags):
    assert [text[a:b] for a, b in extract_hashtags(text)] == hashtags


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        ("http://localhost:8000/v1 is a server", []),  # no TLD: no URL
        ("http://twitter.com/これは日本語です。example.com中国語", ["http://twitter.com/", "example.com"]),
        (
            "\u2066\u202atest abcdef.com پاکستان http://twitter.com/\u202c\u2069",
            ["abcdef.com", "http://twitter.com/"],
        ),
        ("see https://arxiv.org/abs/2410.02367, then", ["https://arxiv.org/abs/2410.02367"]),
        (
            "(https://ru.wikipedia.org/wiki/Квантование_(обработка_сигналов)),Сегодня",
            ["https://ru.wikipedia.org/wiki/Квантование_(обработка_сигналов)"],
        ),
    ],
)
def test_urls_as_twitter_text(text, urls):
    assert [text[a:b] for a, b in find_urls(text)] == urls


def test_scheme_run_without_tld_is_kept_whole_but_not_a_url():
    text = "endpoint http://localhost:8000/v1 here"
    kinds = {text[t.start : t.end]: t.kind for t in find_tokens(text)}
    assert kinds["http://localhost:8000/v1"] == "uri"


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ("の@usernameに到着を待っている", ["@username"]),
        ("RT@username hi", ["@username"]),
        ("RT:@username hi", ["@username"]),
        ("email foo@bar.com", []),
        ("@user@user", []),
        ("@userñ accented", []),
        ("@" + "a" * 21, ["@" + "a" * 20]),
        ("list @user/list-name", ["@user/list-name"]),
    ],
)
def test_mentions_as_twitter_text(text, mentions):
    assert [text[a:b] for a, b in extract_mentions(text)] == mentions


# --- 4. Mastodon's counter (Mastodon's status-length spec, 500 limit) --------------------------------
@pytest.mark.parametrize(
    ("text", "fits"),
    [
        ("a" * 476 + " " + "http://" + "b" * 30 + ".com/example", True),  # URL counts 23
        ("a" * 476 + "http://" + "b" * 30 + ".com/example", False),  # glued: no URL entity
        ("http://example.com/valid?" + "#foo?" * 1000, False),  # over 4,096: counts in full
        ("a" * 475 + " @alice@" + "b" * 30 + ".com", True),  # remote mention counts as @alice
        ("@alice@" + "b" * 500 + ".com", False),  # domain over 253: counts in full
        ("✨" * 500, True),
        ("🏳️‍⚧️" * 500, True),
    ],
)
def test_mastodon_counts_as_mastodon(text, fits):
    assert (mastodon_length(text) <= 500) is fits


def test_mastodon_url_glued_to_punctuation_stops_at_the_parenthesis():
    url = "https://ru.wikipedia.org/wiki/Квантование_(обработка_сигналов)"
    text = f"Смотрите ({url}),Сегодня вышла статья"
    assert mastodon_length(text) == grapheme.length(text) - len(url) + 23
    assert (
        mastodon_length("see https://example.com/a,word") == len("see ") + 23
    )  # Mastodon's path takes ",word"


# --- 5. one network's failure does not abort the others ---------------------------------------------
def test_code_block_longer_than_a_part_is_split_between_lines():
    code = "\n".join(f"def layer_{i}(x):\n    return quantize(x, bits={i % 8 + 1})" for i in range(30))
    post = SourcePost(text=f"Код квантизации:\n\n```python\n{code}\n```\n\nВот и всё.", markdown=True)
    result = _all_valid(post)
    parts = result.targets["x"].parts
    assert len(parts) > 3
    code_lines = set(code.split("\n"))
    for part in parts:
        body = part.text.rsplit("\n", 1)[0] if len(parts) > 1 else part.text  # drop "i/n"
        if "```python" in body:  # every part inside the block opens and closes its fence
            inside = body[body.index("```python") + len("```python\n") :]
            assert inside.endswith("\n```") or "\n```\n" in inside
            for line in inside.split("\n```")[0].split("\n"):
                assert line in code_lines  # whole lines only
    joined = "".join(p.body for p in parts)
    assert joined.count("def layer_") == 30


def test_inline_code_longer_than_a_part_is_cut_at_spaces_with_its_own_backticks():
    flags = " ".join(f"--flag{i}=value{i}" for i in range(40))
    post = SourcePost(text=f"Запуск: `{flags}` и всё. А `short code` остаётся целым.")
    result = convert(post, targets=["x", "bluesky", "mastodon", "threads"])
    assert not result.failed
    for name, target in result.targets.items():
        parts = target.parts
        assert len(parts) > 1 and all(p.length <= p.limit for p in parts)
        bodies = [p.text.rsplit("\n", 1)[0] for p in parts]  # without "i/n"
        for body in bodies:
            assert body.count("`") % 2 == 0, (name, body)  # every piece opens and closes its span
        pieces = [b.split("`")[1] for b in bodies if b.count("`") >= 2 and "--flag" in b]
        assert " ".join(pieces) == flags, name
        assert "`short code`" in bodies[-1]


def test_lone_surrogate_is_repaired_for_every_network(tmp_path):
    result = convert("-", stdin=_stdin("Модель \ud83d быстрее 😀 на 20%"))
    assert not result.failed and set(result.targets) == set(DEFAULT_TARGETS)
    assert any("lone UTF-16 surrogates" in n for n in result.notices)
    assert "Модель \ufffd быстрее 😀" in result.targets["x"].parts[0].text
    export = tmp_path / "one.json"
    export.write_text(
        json.dumps({"id": 3, "type": "message", "text": "пост \ud83d\ude00 и \udc00 конец"}), encoding="utf-8"
    )
    result = convert(str(export), targets=["x", "bluesky"])
    assert result.targets["x"].parts[0].text == "пост 😀 и \ufffd конец"
    assert any("1 broken character" in n for n in result.notices)


def test_failed_network_cli_text_and_json(monkeypatch, capsys):
    from tests.crosspost.test_cli import run

    stdin = "Смотрите https://example.com/" + "a" * 600
    code, out, err = run(monkeypatch, capsys, "crosspost", "-", "--to", "x,threads,mastodon", stdin=stdin)
    assert code == 1
    assert "x · 1 part(s)" in out and "mastodon · 1 part(s)" in out and "threads · failed" in out
    assert "threads:" in err and "limit 500" in err and "Traceback" not in err
    code, out, _ = run(monkeypatch, capsys, "crosspost", "-", "--to", "x,threads", "--json", stdin=stdin)
    data = json.loads(out)
    assert code == 1 and data["failed"] == ["threads"]
    assert data["targets"]["x"]["parts"] and "limit 500" in data["targets"]["threads"]["error"]


# --- issue 15: the README's own examples -------------------------------------------------------------
def test_readme_extra_instance_inherits_the_base_rules(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('[fosstodon]\nbase = "mastodon"\n', encoding="utf-8")
    text = "Пост про квантизацию моделей и внимание, довольно длинный. " * 48  # ~2,800 characters
    result = convert("-", targets=["fosstodon"], rules_file=path, stdin=_stdin(text))
    parts = result.targets["fosstodon"].parts
    assert len(parts) > 5 and all(p.limit == 500 and p.length <= 500 for p in parts)
    assert parts[0].text.endswith(f"1/{len(parts)}")


def test_readme_extra_instance_with_unknown_base(tmp_path):
    from core.errors import CrosspostError

    path = tmp_path / "rules.toml"
    path.write_text('[fosstodon]\nbase = "mastadon"\n', encoding="utf-8")
    with pytest.raises(CrosspostError, match="base 'mastadon' is not a network"):
        convert("-", targets=["fosstodon"], rules_file=path, stdin=_stdin("text"))


@pytest.mark.parametrize(
    "text",
    [
        "Пост про SageAttention2: https://arxiv.org/abs/2410.02367",
        "Новый INT8 kernel для H100 и FlashAttention3: github.com/thu-ml/SageAttention",
        "Коротко: `torch.compile` + QLoRA",
    ],
)
def test_short_russian_with_links_and_model_names_is_russian(text):
    assert convert("-", targets=["mastodon"], stdin=_stdin(text)).source_lang == "ru"


def test_bot_preview_shows_a_networks_own_error():
    from bot.handlers.crosspost import render_preview

    url = "https://example.com/" + "a" * 600
    result = convert("-", targets=["threads", "x"], stdin=_stdin(f"Смотрите {url}"))
    shown = render_preview(result, "threads", "en")
    assert "cannot be split" in shown and "limit 500" in shown
    assert "Смотрите" in render_preview(result, "x", "en")


def test_markdown_heading_of_several_lines_keeps_every_line():
    """A paragraph over a `-` line is a setext heading in CommonMark; none of its lines is lost
    (found by the property test: everything after the first line vanished)."""
    post = SourcePost(text="intro\n\n@ds https://example.com/o\n`code`\nmore text\n- \n\nend", markdown=True)
    text = convert(post, targets=["markdown"]).targets["markdown"].parts[0].text
    assert "## @ds <https://example.com/o> `code` more text" in text
