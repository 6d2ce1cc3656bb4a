"""LLM answers within the served model's context: the context length comes from the endpoint's
/v1/models (or a setting), and the prompt is cut to the sources' best sentences to fit it, so the
request is made instead of failing."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from rag.answer import budgeted_messages, estimate_tokens
from rag.llm import context_from_models
from rag.sentences import SentenceScorer
from rag.service import RagConfig, RagService
from rag.types import Hit
from tests.fakes.openai_endpoint import FakeOpenAI

FILLER = "Это предложение ничего не говорит о вопросе и нужно только для длины поста. "
ANSWER = "SageAttention быстрее FlashAttention2 примерно в 2.1 раза на RTX4090."


def _embed(texts):
    out = np.array([[t.count("SageAttention") + 0.1, 1.0] for t in texts], dtype=np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _hit(n: int, text: str) -> Hit:
    return Hit(n, 1.0, text, n, "kpd", datetime(2025, 4, 1, tzinfo=UTC), f"https://t.me/kpd/{n}", None)


@pytest.mark.parametrize(
    "cards,model,expected",
    [
        ([{"id": "default", "max_model_len": 4096}], "default", 4096),
        ([{"id": "a", "context_length": 8192}, {"id": "b", "context_length": 2048}], "b", 2048),
        ([{"id": "only", "meta": {"n_ctx": 3000}}], "other-name", 3000),  # llama.cpp
        ([{"id": "a", "max_model_len": 4096}, {"id": "b"}], "c", None),  # ambiguous: unknown
        ([{"id": "default", "max_model_len": "big"}], "default", None),
    ],
)
def test_context_length_from_the_models_list(cards, model, expected):
    assert context_from_models(cards, model) == expected


def test_sources_are_cut_to_their_best_sentences_to_fit_the_budget():
    post = FILLER * 10 + ANSWER + " " + FILLER * 10
    hits = [_hit(1, post), _hit(2, FILLER * 15), _hit(3, FILLER * 15)]
    question = "Насколько SageAttention быстрее?"
    scorer = SentenceScorer(_embed)
    vector = _embed([question])[0]
    full, n_full = budgeted_messages(question, hits)
    fitted, n = budgeted_messages(question, hits, budget_tokens=700, scorer=scorer, vector=vector)
    assert n_full == 3
    assert sum(estimate_tokens(m["content"]) for m in fitted) <= 700
    assert sum(estimate_tokens(m["content"]) for m in full) > 700
    assert ANSWER in fitted[-1]["content"]  # the answering sentence survives the cut
    assert n >= 1 and fitted[-1]["content"].count("</source>") == n


def test_a_tiny_context_drops_the_weakest_sources_and_old_turns_first():
    hits = [_hit(i, ANSWER + " " + FILLER * 8) for i in (1, 2, 3, 4, 5)]
    history = [("старый вопрос " * 50, "старый ответ " * 50)] * 3
    messages, n = budgeted_messages(
        "Насколько SageAttention быстрее?", hits, history, budget_tokens=400, scorer=SentenceScorer(_embed)
    )
    assert n < 5 and '<source n="1"' in messages[-1]["content"]
    assert len(messages) < 2 + 2 * len(history)  # old turns went before the sources did


def test_the_service_reads_the_context_from_the_endpoint_and_fits_the_prompt(service):
    with FakeOpenAI() as llm:
        llm.models = [{"id": "default", "object": "model", "max_model_len": 900}]
        llm.replies = [{"text": "SageAttention быстрее FlashAttention2 в 2.1 раза [1]."}]
        rag = RagService(
            RagConfig(
                data_dir=service.config.data_dir,
                embedding_model=service.config.embedding_model,
                llm_base_url=llm.base_url,
                translate_queries=False,
            ),
            service.store,
        )
        rag._embedder = service.embedder()
        try:
            answer = rag.ask("Насколько SageAttention быстрее FlashAttention2?")
        finally:
            rag.close()
        body = llm.requests[-1]
        prompt = sum(estimate_tokens(m["content"]) for m in body["messages"])
        assert prompt + body["max_tokens"] <= 900
        assert answer.mode == "llm" and answer.citations and answer.citations[0].n == 1
