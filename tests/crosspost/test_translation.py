"""Translation through a scripted OpenAI-compatible endpoint on 127.0.0.1: protected tokens survive,
a reply that drops a URL is retried and then caught, translations are cached in the store."""

from __future__ import annotations

import re

import pytest

from core.errors import CrosspostError, LLMError
from crosspost.rules import load_rules
from crosspost.service import DEFAULT_TARGETS, convert
from crosspost.targets import resolve
from rag.store.conversions import list_conversions
from tests.crosspost.conftest import fake_translate, find_post

CROSSPOST_BOT = "Автоматизация контента в соцсетях"
SAGE = "⚡️SageAttention — brand new attention"


def _url_placeholder(post, url: str) -> str:
    """The placeholder the URL gets (masking is deterministic), so the fake model can 'forget' it."""
    from crosspost.htmlio import mask_doc
    from crosspost.parse import doc_from_source

    masked = mask_doc(doc_from_source(post), latin_is_foreign=True)
    key = next(k for k, v in masked.values.items() if url in v)
    return f"[[{key}]]"


def _dropping(placeholder: str):
    return lambda user, call: fake_translate(user, call).replace(placeholder, "")


def test_protected_tokens_survive_translation(corpus_store, fake_llm):
    llm = fake_llm()
    post = find_post(corpus_store, CROSSPOST_BOT)
    result = convert(post, targets=DEFAULT_TARGETS, lang="en", store=None, llm=llm.config)
    assert len(llm.requests) == 1
    sent = llm.requests[0]["messages"][1]["content"]
    # What must not change never reaches the model: URLs, mentions, names are placeholders.
    assert "https://www.tgoop.com/fminxyz/30" not in sent and "@fminxyz" not in sent
    assert re.search(r"\[\[\d+\]\]", sent)
    x_text = "\n".join(p.text for p in result.targets["x"].parts)
    assert "https://www.tgoop.com/fminxyz/30" in x_text and "@fminxyz" in x_text
    assert not re.search(r"[А-Яа-яЁё]", x_text), "the fake model replaced every Russian word"
    assert all(t.translated for t in result.targets.values())
    assert not result.notices
    rules = load_rules()
    from crosspost.model import SourcePost
    from crosspost.parse import doc_from_source

    translated = SourcePost(text=result.targets["threads"].parts[0].body)  # sanity: output reparses
    assert doc_from_source(translated).plain()
    for name, _target, rule in resolve(DEFAULT_TARGETS, rules):
        for part in result.targets[name].parts:
            if rule.limit:
                assert part.length <= rule.limit


@pytest.mark.parametrize("prefix", [SAGE, CROSSPOST_BOT, "🔬 Метод\n\n🏢 Архитектура"])
def test_every_protected_token_survives_on_real_posts(corpus_store, fake_llm, prefix):
    from crosspost.parse import doc_from_source
    from crosspost.tokens import find_tokens

    llm = fake_llm()
    post = find_post(corpus_store, prefix)
    plain = doc_from_source(post).plain()
    tokens = {
        plain[t.start : t.end] for t in find_tokens(plain, units=False, terms=True, latin_is_foreign=True)
    }
    assert len(tokens) >= 4
    result = convert(post, targets=DEFAULT_TARGETS, lang="en", llm=llm.config)
    assert all(t.translated for t in result.targets.values())
    linkedin = " ".join(p.body for p in result.targets["linkedin"].parts)
    assert not re.search(r"[А-Яа-яЁё]{2,}", linkedin)  # the fake model translated the words...
    for token in tokens:  # ...and every URL, mention, number, model name came back unchanged
        assert token in linkedin, token
    for name, _target, rule in resolve(DEFAULT_TARGETS, load_rules()):
        for part in result.targets[name].parts:
            assert rule.limit is None or part.length <= rule.limit
    if post.permalink:
        assert post.permalink in result.targets["x"].parts[0].text


def test_glossary_fixes_a_term(tmp_path, fake_llm):
    glossary = tmp_path / "glossary.txt"
    glossary.write_text("# my terms\nквантизация = quantization\n", encoding="utf-8")
    llm = fake_llm()
    result = convert(
        "-",
        targets=["x"],
        llm=llm.config,
        glossary_file=glossary,
        stdin=__import__("io").StringIO("Сегодня квантизация моделей и ещё немного текста."),
    )
    text = result.targets["x"].parts[0].text
    assert "quantization" in text and "word" in text


def test_dropped_url_is_retried_then_caught(corpus_store, fake_llm, tmp_path):
    from rag.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 's.sqlite3'}")
    post = find_post(corpus_store, CROSSPOST_BOT)
    llm = fake_llm(_dropping(_url_placeholder(post, "https://www.tgoop.com/fminxyz/30")))
    with pytest.raises(
        LLMError, match=r"dropped protected tokens twice \(.*https://www\.tgoop\.com/fminxyz/30"
    ):
        convert(post, targets=["x", "bluesky"], llm=llm.config, store=store)
    assert len(llm.requests) == 2  # one retry that names the lost placeholder
    assert "lost these placeholders" in llm.requests[1]["messages"][0]["content"]
    assert list_conversions(store) == []  # nothing half-written
    store.close()


def test_retry_recovers(corpus_store, fake_llm):
    post = find_post(corpus_store, CROSSPOST_BOT)
    drop = _dropping(_url_placeholder(post, "https://www.tgoop.com/fminxyz/30"))
    llm = fake_llm(lambda user, call: drop(user, call) if call == 1 else fake_translate(user, call))
    result = convert(post, targets=["x"], llm=llm.config)
    assert len(llm.requests) == 2
    assert "https://www.tgoop.com/fminxyz/30" in "\n".join(p.text for p in result.targets["x"].parts)


def test_translation_is_stored_and_not_repeated(fake_llm, tmp_path):
    from rag.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 's.sqlite3'}")
    llm = fake_llm()
    text = "Новая модель Qwen-Image вышла: https://arxiv.org/abs/2508.02324 #qwen"
    import io

    first = convert("-", targets=["x", "mastodon"], llm=llm.config, store=store, stdin=io.StringIO(text))
    second = convert("-", targets=["x", "linkedin"], llm=llm.config, store=store, stdin=io.StringIO(text))
    assert len(llm.requests) == 1  # the second run reused the stored translation
    assert second.translation_cached and second.targets["x"].parts[0].text == first.targets["x"].parts[0].text
    history = list_conversions(store)
    assert {row.target for row in history} == {"x", "mastodon", "linkedin"}
    assert history[0].payload["parts"][0]["limit"] in (280, 3000, 500)
    store.close()


def test_without_llm_translation_is_skipped_with_a_notice():
    import io

    result = convert("-", targets=["x"], llm=None, stdin=io.StringIO("Привет, это пост."))
    assert not result.targets["x"].translated
    assert any("translation skipped" in n and "RESEARCH_BOT_LLM_BASE_URL" in n for n in result.notices)


def test_dead_endpoint_is_one_clear_error():
    import io

    from crosspost.llm import LLMConfig

    llm = LLMConfig(base_url="http://127.0.0.1:9/v1", timeout_s=2)
    with pytest.raises(LLMError, match=r"127\.0\.0\.1:9"):
        convert("-", targets=["x"], llm=llm, stdin=io.StringIO("Привет, это пост."))


def test_restyle_never_breaks_limits(fake_llm):
    import io

    # The "stylist" makes every post much longer; parts are re-split and stay within limits.
    llm = fake_llm(lambda user, call: (user + "\n\n") * 4)
    text = "Это пост про https://arxiv.org/abs/2410.02367 и @someone. " * 3
    result = convert(
        "-", targets=["x", "bluesky"], lang="ru", llm=llm.config, restyle=True, stdin=io.StringIO(text)
    )
    assert result.targets["x"].restyled and len(result.targets["x"].parts) > 1
    assert all(p.length <= 280 for p in result.targets["x"].parts)
    assert all(p.length <= 300 for p in result.targets["bluesky"].parts)


def test_restyle_that_drops_a_link_falls_back(fake_llm):
    import io

    llm = fake_llm(lambda user, call: re.sub(r"\[\[\d+\]\]", "", user))
    result = convert(
        "-",
        targets=["x"],
        lang="ru",
        llm=llm.config,
        restyle=True,
        stdin=io.StringIO("Пост со ссылкой https://example.com/a"),
    )
    assert not result.targets["x"].restyled
    assert "https://example.com/a" in result.targets["x"].parts[0].text
    assert any("style adaptation skipped" in n for n in result.notices)


def test_unknown_network_fails_before_the_llm_is_called(fake_llm):
    import io

    llm = fake_llm()
    with pytest.raises(CrosspostError, match="unknown network 'facebook'"):
        convert("-", targets=["x", "facebook"], llm=llm.config, stdin=io.StringIO("Привет"))
    assert llm.requests == []
