"""Extractive answers that contain the answer: sentences chosen by meaning (a stand-in encoder here)
and by what the question asks for, the sentence before a quote that starts with a reference, and
citations a reader can follow without a permalink (issue 15, item 5)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from rag.answer import abstain, extractive_answer
from rag.sentences import SentenceScorer, question_type, starts_with_reference
from rag.types import Citation, Hit

VOCAB = ["exposure", "диффуз", "шум", "токен", "быстр", "модел", "llama", "памят"]


def embed(texts: list[str]) -> np.ndarray:
    """A bag-of-stems stand-in for the dense model: deterministic, no weights."""
    out = np.zeros((len(texts), len(VOCAB) + 1), dtype=np.float32)
    for i, text in enumerate(texts):
        low = text.casefold()
        out[i, :-1] = [low.count(v) for v in VOCAB]
        out[i, -1] = 0.3  # every text shares a little, like real embeddings do
        out[i] /= np.linalg.norm(out[i])
    return out


SCORER = SentenceScorer(embed)

EXPOSURE = (
    "В авторегрессионной генерации текста существует проблема exposure bias. Суть в том что модель учится "
    "генерировать следующий токен при условии реальных токенов.\n"
    "Подобный эффект происходит и во время семплирования из диффузионных моделей, где шум накапливается. "
    "Это приводит к известному парадоксу.\n"
    "Методы проверяют только на CIFAR10. Код есть."
)
HOGWILD = (
    "Hogwild! inference: несколько потоков пишут общий KV-кэш.\n"
    "Модель выбрали потому, что она достаточно хорошая.\n"
    "Модель Qwen/QwQ-32B влезает на 1 GPU."
)


def hit(text: str, *, url: str | None = None, channel: str = "Concise Research", date=None, rank=1) -> Hit:
    return Hit(
        rank=rank,
        score=1.0,
        text=text,
        post_id=rank,
        channel=channel,
        date=date,
        url=url,
        title=None,
        post_text=text,
        lead=" ".join(text.split()[:8]) + "…",
    )


def test_quote_includes_the_sentence_a_reference_points_back_to():
    question = "Бывает ли exposure bias в диффузионных моделях и при чём тут шум?"
    vector = embed([question])[0]
    answer = extractive_answer(question, [hit(EXPOSURE)], scorer=SCORER, vector=vector)
    quote = answer.citations[0].quote
    assert "Подобный эффект" in quote
    # "Подобный эффект ..." alone says nothing: the sentence it refers to comes first
    assert quote.index("Суть в том") < quote.index("Подобный эффект")


@pytest.mark.parametrize(
    "question,kind",
    [
        ("Сколько кадров подают на файнтюне?", "number"),
        ("How many visual tokens does one image produce?", "number"),
        ("Во сколько раз SageAttention быстрее?", "number"),
        ("На какой модели проверяли Hogwild?", "name"),
        ("Which model was used for the experiments?", "name"),
        ("Как называется код квантизации?", "name"),
        ("Почему диффузия похожа на авторегрессию?", None),
    ],
)
def test_question_type(question, kind):
    assert question_type(question) == kind


def test_a_which_model_question_gets_the_sentence_with_the_name():
    question = "На какой модели проверяли метод?"
    answer = extractive_answer(question, [hit(HOGWILD)], scorer=SCORER, vector=embed([question])[0])
    assert "QwQ-32B" in answer.citations[0].quote


def test_reference_detection():
    assert starts_with_reference("Подобный эффект происходит и в диффузии.")
    assert starts_with_reference("«Это приводит к парадоксу»")
    assert starts_with_reference("This makes it faster.")
    assert not starts_with_reference("Диффузия способна моделировать распределение.")


def test_a_citation_without_permalink_names_channel_date_and_first_words():
    when = datetime(2025, 4, 10, tzinfo=UTC)
    bare = Citation(1, None, "КПД", when, "цитата", lead="Метод Hogwild! inference: несколько потоков…")
    assert bare.source == "КПД, 2025-04-10, «Метод Hogwild! inference: несколько потоков…»"
    undated = Citation(2, None, "Concise Research", None, "q", lead="Residual Learning in Diffusion Models")
    assert undated.source == "Concise Research, «Residual Learning in Diffusion Models»"
    linked = Citation(3, "https://t.me/quant_prune_distill/475", "quant_prune_distill", None, "q")
    assert linked.source == "https://t.me/quant_prune_distill/475"
    assert bare.to_json()["source"] == bare.source


def test_abstention_lists_the_nearest_posts_by_what_identifies_them():
    answer = abstain(
        "Какой рецепт борща?",
        [hit(EXPOSURE), hit(HOGWILD, url="https://t.me/kpd/7", rank=2)],
        mode="extractive",
    )
    assert answer.abstained and answer.answer.startswith("В корпусе нет ответа")
    lines = answer.answer.splitlines()
    assert "Concise Research, «В авторегрессионной генерации" in lines[1]
    assert "https://t.me/kpd/7" in lines[2]


def test_a_second_source_is_quoted_only_when_it_is_nearly_as_close():
    question = "Бывает ли exposure bias в диффузии?"
    vector = embed([question])[0]
    unrelated = hit("Llama 4 вышла, памяти нужно много.", rank=2)
    answer = extractive_answer(question, [hit(EXPOSURE), unrelated], scorer=SCORER, vector=vector)
    assert [c.n for c in answer.citations] == [1]
