"""The bundled corpus' real posts (SageAttention, the cross-posting bot, Qwen-Image) convert for every network."""

from __future__ import annotations

import pytest

from crosspost.rules import load_rules
from crosspost.service import DEFAULT_TARGETS, convert
from crosspost.targets import resolve
from tests.crosspost.conftest import check_parts, find_post

POSTS = {
    "sageattention": "⚡️SageAttention — brand new attention",
    "crosspost_bot": "Автоматизация контента в соцсетях",
}


@pytest.mark.parametrize("which", [*POSTS, "qwen_image"])
def test_real_post_valid_for_every_target(corpus_store, which):
    if which == "qwen_image":
        source = "https://t.me/quant_prune_distill/520"  # by permalink, from the store
        post = find_post(corpus_store, "🔬 Метод\n\n🏢 Архитектура")
    else:
        source = post = find_post(corpus_store, POSTS[which])
    result = convert(source, targets=DEFAULT_TARGETS, lang="en", store=corpus_store, llm=None)
    assert set(result.targets) == set(DEFAULT_TARGETS)
    assert result.source_lang == "ru"
    assert any("translation skipped" in n for n in result.notices)
    rules = load_rules()
    for name, target, rule in resolve(DEFAULT_TARGETS, rules):
        target_result = result.targets[name]
        assert not target_result.translated
        check_parts(name, target, rule, post, target_result.parts)
    x = result.targets["x"].parts
    assert len(x) > 1  # these posts are long: X gets a thread
    if which == "qwen_image":
        assert "https://t.me/quant_prune_distill/520" in x[0].text  # first part links the original
        assert result.source == "https://t.me/quant_prune_distill/520"
    if which == "crosspost_bot":
        everything = "\n".join(p.text for p in x)
        assert "@fminxyz" in everything and "https://www.tgoop.com/fminxyz/30" in everything
        bluesky = result.targets["bluesky"].parts
        uris = [f["features"][0].get("uri") for p in bluesky for f in p.facets]
        assert "https://www.tgoop.com/fminxyz/30" in uris
    if which == "sageattention":
        md = result.targets["markdown"].parts[0].text
        assert md.startswith("# ⚡️SageAttention — brand new attention")
        assert "## Результат" in md and "- ➤ Делаем фьюзинг" in md
        linkedin = result.targets["linkedin"].parts
        assert all(p.length <= 3000 for p in linkedin)


def test_first_part_is_the_hook(corpus_store):
    post = find_post(corpus_store, POSTS["sageattention"])
    result = convert(post, targets=["x"], store=None)
    first = result.targets["x"].parts[0].text
    # the title and the opening sentence, cut at a sentence end, not mid-clause
    assert first.startswith("⚡️SageAttention — brand new attention\nFlash Attention бустит")
    assert first.split("\n")[1].rstrip().endswith(".")
