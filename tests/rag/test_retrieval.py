"""Search as a user sees it: stemming, cross-lingual queries, fusion, collapse, filters, languages."""

from __future__ import annotations

from datetime import date

import pytest

from rag.retrieve import FusionWeights
from rag.service import RagConfig, RagService
from rag.text import detect_language, expand_terms, tokenize
from tests.rag.conftest import MINILM, add_posts


def urls(hits):
    return [h.url for h in hits]


def test_russian_word_forms_match_through_stemming(service):
    # "квантизованных" in the post, "квантизованные" / "квантизации" in queries
    assert service.search("квантизованные модели DeepSeek", k=1)[0].url == "https://t.me/kpd/101"
    assert service.search("кэша потоков", k=1)[0].url == "https://t.me/kpd/102"


def test_english_question_finds_russian_post(service):
    hits = service.search("exposure bias in diffusion models", k=3)
    assert hits[0].url == "https://t.me/c_research/7"
    hits = service.search("durian in Singapore", k=2)
    assert hits[0].url == "https://t.me/kpd/103"


def test_hit_json_shape(service):
    hit = service.search("SageAttention", k=1)[0]
    data = hit.to_json()
    assert list(data) == ["rank", "score", "text", "post_id", "channel", "date", "url", "title"]
    assert data["rank"] == 1 and data["channel"] == "awesome_dl" and data["date"].startswith("2025-03-01")
    assert data["url"] == "https://t.me/awesome_dl/50" and data["title"] is None
    assert "SageAttention" in data["text"]


def test_dense_only_and_bm25_only_modes_differ_and_hybrid_keeps_the_best(service):
    # a paraphrase with no shared words: only the dense retriever can find it
    paraphrase = "making the softmax(QK) kernel quicker with 8-bit integers"
    assert service.search(paraphrase, k=1, mode="dense")[0].url == "https://t.me/awesome_dl/50"
    assert service.search(paraphrase, k=6, mode="hybrid")[0].url == "https://t.me/awesome_dl/50"
    # an exact Russian term: BM25 finds it, and hybrid keeps it first despite the English-only model
    assert service.search("Дуриан", k=1, mode="bm25")[0].url == "https://t.me/kpd/103"
    assert service.search("Дуриан", k=1, mode="hybrid")[0].url == "https://t.me/kpd/103"


def test_weighted_fusion_respects_the_foreign_language_weight(service):
    retriever = service.retriever()
    query = "Дуриан дорого"
    lexical_first = retriever.search(query, k=1, mode="bm25")[0].url
    retriever.weights = FusionWeights(dense_foreign=0.0)
    assert retriever.search(query, k=1)[0].url == lexical_first


def test_chunks_of_one_post_collapse_into_one_hit(store, data_dir, shared_model):
    long_text = "\n\n".join(
        f"Абзац {i}: квантизация весов GPTQ, группы по 128, и ещё немного текста." * 3 for i in range(40)
    )
    add_posts(
        store,
        [("kpd", 1, "2025-01-01", long_text), ("kpd", 2, "2025-01-02", "Про квантизацию GPTQ коротко.")],
    )
    rag = RagService(RagConfig(data_dir=data_dir, embedding_model=MINILM), store)
    rag.sync()
    assert len(rag.retriever().gen.lexical) > 5  # the long post is many chunks
    hits = rag.search("квантизация GPTQ", k=5)
    assert sorted(urls(hits)) == ["https://t.me/kpd/1", "https://t.me/kpd/2"]


def test_near_duplicate_posts_are_shown_once(store, data_dir, shared_model):
    text = "Forwarded: как LLaMA 3.1 работает с изображениями, ViT-H/14 энкодер и кросс-аттеншн."
    add_posts(
        store,
        [
            ("a", 1, "2025-01-01", text),
            ("b", 2, "2025-01-02", text),
            ("c", 3, "2025-01-03", "Совсем другой пост про дуриан."),
        ],
    )
    rag = RagService(RagConfig(data_dir=data_dir, embedding_model=MINILM), store)
    rag.sync()
    hits = rag.search("LLaMA 3.1 изображения", k=3)
    assert len([h for h in hits if "LLaMA" in h.text]) == 1


def test_channel_and_date_filters(service):
    hits = service.search("модели", k=10, channel="c_research")
    assert hits and {h.channel for h in hits} == {"c_research"}
    hits = service.search("модели", k=10, since=date(2025, 4, 9))
    assert hits and all(h.date.date() >= date(2025, 4, 9) for h in hits)
    # a narrow filter still returns its best match, even when it is not in the global top
    hits = service.search("GPTQ", k=1, channel="awesome_dl")
    assert urls(hits) == ["https://t.me/awesome_dl/50"]
    assert service.search("GPTQ", k=5, channel="no_such_channel") == []
    hits = service.search("модели", k=10, since=date(2024, 1, 1), until=date(2024, 12, 31))
    assert {h.channel for h in hits} == {"c_research"}


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Как работает квантизация GPTQ?", "ru"),
        ("How does GPTQ quantization work?", "en"),
        ("Что такое KV-cache в vLLM и FlashAttention?", "ru"),
        ("量化是什么", "zh"),  # core.lang: ISO codes (was "other" before issue 16)
        ("12345 ???", "und"),
        ("Які моделі квантизації підтримує ця бібліотека і скільки пам'яті їм потрібно?", "ru"),
    ],
)
def test_language_detection(text, lang):
    """Retrieval's view: any Cyrillic text is "ru" (one stemmer, the ru<->en glossary)."""
    assert detect_language(text) == lang


def test_a_ukrainian_question_is_answered_in_the_cyrillic_branch_not_in_english():
    from rag.answer import language_of

    assert language_of("Які моделі квантизації підтримує ця бібліотека?") == "ru"


def test_glossary_expands_both_ways():
    assert "дистилляц" in expand_terms(tokenize("distillation"), "en")
    assert "quantiz" in expand_terms(tokenize("квантизация"), "ru")


def test_papers_are_searchable_with_title_and_link(service, store):
    from rag.store.models import Paper

    with store.session() as s:
        s.add(
            Paper(
                dedupe_key="arxiv:2410.02367",
                arxiv_id="2410.02367",
                title="SageAttention2: Efficient Attention",
                abstract="We quantize Q and K to INT4 and P, V to FP8 with smoothing of outliers.",
                content_hash="p1",
            )
        )
    service.sync()
    hits = service.search("INT4 quantization of Q and K with outlier smoothing", k=3)
    paper = next(h for h in hits if h.title)
    assert paper.to_json()["title"] == "SageAttention2: Efficient Attention"
    assert paper.url == "https://arxiv.org/abs/2410.02367" and paper.post_id is None and paper.channel is None
    assert service.search("модели", k=5, channel="kpd") and all(
        h.title is None for h in service.search("INT4", k=5, channel="kpd")
    )


def test_until_a_date_includes_that_whole_day(store):
    """`--until 2025-04-28` means on or before that day: a post at 15:00 on the 28th is in."""
    from rag.chunking import sync_chunks
    from rag.store.chunks import filtered_chunk_ids

    add_posts(store, [("late_ch", 7, "2025-04-28T15:00:00", "Пост, опубликованный днём двадцать восьмого.")])
    sync_chunks(store)
    assert filtered_chunk_ids(store, None, None, date(2025, 4, 28))
    assert filtered_chunk_ids(store, None, date(2025, 4, 28), date(2025, 4, 28))
    assert filtered_chunk_ids(store, None, None, date(2025, 4, 27)) == []
