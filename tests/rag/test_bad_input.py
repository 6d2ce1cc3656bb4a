"""Bad queries and an empty store: clear errors or sensible results, never a crash."""

from __future__ import annotations

import pytest

from core.errors import RetrievalError
from rag.service import RagConfig, RagService
from rag.text import MAX_QUERY_CHARS, clean_query
from tests.rag.conftest import MINILM


@pytest.mark.parametrize("query", ["", "   ", "\n\t ", "\x00\x01\x02", "\u200b\u200e"])
def test_empty_queries_are_rejected_with_a_message(service, query):
    with pytest.raises(RetrievalError, match="empty query"):
        service.search(query)
    with pytest.raises(RetrievalError, match="empty query"):
        service.ask(query)


def test_a_100k_character_query_is_cut_and_still_finds_the_post(service):
    query = "SageAttention FlashAttention2 " + "бла " * 25_000
    assert len(query) > 100_000
    assert len(clean_query(query)) <= MAX_QUERY_CHARS
    assert service.search(query, k=1)[0].url == "https://t.me/awesome_dl/50"


def test_control_characters_are_ignored(service):
    hits = service.search("Sage\x00Attention\x1b[31m\u202e FlashAttention2\x7f", k=1)
    assert clean_query("Sage\x00Attention\x1b[31m") == "Sage Attention [31m"
    assert hits and hits[0].channel == "awesome_dl"


@pytest.mark.parametrize(
    "query", ["量化模型的速度有多快", "ქართული ტექსტი მოდელებზე", "🤖🔥🚀", "مرحبا بالعالم", "12345"]
)
def test_scripts_the_stemmers_do_not_know_still_search(service, query):
    hits = service.search(query, k=3)
    assert len(hits) <= 3  # dense retrieval still answers; nothing raises
    answer = service.ask(query)
    assert answer.abstained  # and nothing in the corpus is about it


def test_empty_store_says_what_to_do(store, data_dir, shared_model):
    rag = RagService(RagConfig(data_dir=data_dir, embedding_model=MINILM), store)
    with pytest.raises(RetrievalError, match=r"^nothing ingested yet: run research-bot ingest$"):
        rag.search("GPTQ")
    with pytest.raises(RetrievalError, match="nothing ingested yet"):
        rag.ask("Что такое GPTQ?")
    assert rag.sync() == 0


@pytest.mark.parametrize("k", [0, -3, 10_000])
def test_odd_k_is_clamped(service, k):
    hits = service.search("модели", k=k)
    assert 1 <= len(hits) <= 100


def test_posts_of_stopwords_only_index_and_search(store, data_dir, shared_model):
    from tests.rag.conftest import add_posts

    add_posts(store, [("kpd", 1, "2025-01-01", "пост"), ("kpd", 2, "2025-01-02", "и а но")])
    rag = RagService(RagConfig(data_dir=data_dir, embedding_model=MINILM), store)
    assert rag.sync() == 2
    assert len(rag.search("пост", k=2)) == 2  # BM25 has nothing to match; the dense side still ranks
    add_posts(store, [("kpd", 3, "2025-01-03", "Квантизация GPTQ")])
    rag.sync()
    assert rag.search("GPTQ", k=1)[0].url == "https://t.me/kpd/3"
