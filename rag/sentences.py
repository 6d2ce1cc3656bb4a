"""Sentence-level evidence: a post's sentences scored against a question with the same dense model
that retrieves (cached vectors), plus what the question asks for (a number, a name).

Used twice: to re-score the top posts after fusion (the best sentence of a post says more about
whether it answers the question than its ~900-character chunk) and to pick the quote of an
extractive answer. Pure functions plus a `SentenceScorer` around an embedder and its cache; no
store, no index.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rag.text import split_sentences, tokenize

MAX_SENTENCE_CHARS = 400  # longer "sentences" (lists glued into one line) are cut for scoring
MAX_SENTENCES = 80  # per post; a 7,000-character post has ~60

# A quote that starts like this continues the sentence before it ("Подобный эффект происходит и ...").
_REFERENCE = re.compile(
    r"^(подобн\w*|так(ой|ая|ое|ие|им|их)|эт(от|а|о|и|ого|ой|им|их|у)|он[аои]?|его|её|ее|их|там|тут|"
    r"при этом|также|тем не менее|поэтому|кроме того|более того|однако|зато|в (этой|этом|данной|данном)|"
    r"данн\w+|this|these|that|those|such|it|its|they|their|there|however|also|moreover|thus)\b",
    re.I,
)
_NUMBER_QUESTION = re.compile(
    r"\b(сколько|во сколько|насколько|how many|how much|how fast|how long|what (score|ratio|share|percentage)|"
    r"какой (процент|средний|размер)|какую долю|какое отношение|до какого)\b",
    re.I,
)
_NAME_QUESTION = re.compile(
    r"\b(как(ой|ая|ое|ие|ую|им|их) (модел|метод|фреймворк|библиотек|датасет|энкодер|бенчмарк|архитектур|"
    r"код|чекпоинт|верси|подход)\w*|как называется|на как(ой|их) (модел|датасет|бенчмарк)\w*|"
    r"which (models?|methods?|frameworks?|library|libraries|datasets?|encoders?|benchmarks?|architectures?)|"
    r"what (model|method|framework|library|dataset|encoder|benchmark|architecture|text encoder|image encoder)s?)\b",
    re.I,
)
_DIGIT = re.compile(r"\d")
_NAME = re.compile(r"\b[A-Za-z][A-Za-z0-9]*[-./]?[A-Z0-9][\w./-]*|\b[A-Z][a-z]+[A-Z]\w*")


def question_type(question: str) -> str | None:
    """'number' for how many / сколько, 'name' for which model / какая модель, else None."""
    if _NUMBER_QUESTION.search(question):
        return "number"
    if _NAME_QUESTION.search(question):
        return "name"
    return None


def fits_type(sentence: str, kind: str | None) -> bool:
    if kind == "number":
        return bool(_DIGIT.search(sentence))
    if kind == "name":
        return bool(_NAME.search(sentence))
    return False


def starts_with_reference(sentence: str) -> bool:
    return bool(_REFERENCE.match(sentence.lstrip("«\"'(—–- ")))


def sentences_of(text: str) -> list[str]:
    """The post's sentences for scoring (duplicates, e.g. a preview captured twice, once)."""
    out = list(dict.fromkeys(s for s in split_sentences(text) if len(tokenize(s)) >= 2 or _DIGIT.search(s)))
    return out[:MAX_SENTENCES] or ([text.strip()[:MAX_SENTENCE_CHARS]] if text.strip() else [])


@dataclass
class Scored:
    index: int
    text: str
    cosine: float
    score: float


# Weights of the sentence score beside the cosine (chosen on the tune half of
# tests/data/realistic_qa.jsonl with benchmarks/fusion.py; see the numbers there).
LEXICAL_WEIGHT = 0.15  # share of the question's terms in the sentence
TYPE_WEIGHT = 0.04  # the sentence has what the question asks for (a number, a name)


class SentenceScorer:
    """Cosine of a question vector with each sentence of a text; sentence vectors come from
    `embed(texts) -> (n, dim)` (the service passes the cached passage encoder)."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray]):
        self._embed = embed

    def vectors(self, sentences: list[str]) -> np.ndarray:
        return self._embed([s[:MAX_SENTENCE_CHARS] for s in sentences])

    def score(self, question: str, query_vector: np.ndarray | None, text: str) -> list[Scored]:
        sentences = sentences_of(text)
        if not sentences:
            return []
        if query_vector is not None:
            cosines = self.vectors(sentences) @ query_vector  # (n,)
        else:
            cosines = np.zeros(len(sentences), dtype=np.float32)
        terms = set(tokenize(question))
        kind = question_type(question)
        out = []
        for i, (sentence, cosine) in enumerate(zip(sentences, cosines.tolist(), strict=True)):
            overlap = len(terms & set(tokenize(sentence))) / len(terms) if terms else 0.0
            bonus = TYPE_WEIGHT if fits_type(sentence, kind) else 0.0
            out.append(Scored(i, sentence, float(cosine), float(cosine) + LEXICAL_WEIGHT * overlap + bonus))
        return out

    def best_cosine(self, query_vector: np.ndarray, text: str) -> float:
        sentences = sentences_of(text)
        if not sentences:
            return 0.0
        return float(np.max(self.vectors(sentences) @ query_vector))
