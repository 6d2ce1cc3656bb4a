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

from rag.text import normalize_token, split_sentences, stem, tokenize

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


# --- a number asked for: is it in the posts? -------------------------------------------------
# "Сколько долларов стоило…", "How much memory…", "how long…": the question asks for an amount whose
# unit a post has to write next to the number. Only such units are checked: a count of anything
# ("сколько шагов", "how many blocks", "во сколько раз") is often written without its noun
# ("их 16, а на файнтюне — 64"), so its absence proves nothing. Measured with benchmarks/fusion.py:
# checking every counted noun caught no more off-corpus questions on the tune half but abstained
# on 5 of 59 answerable questions of the report half ("Сколько набрала…", "how much faster…").
_QUANTITY_ASKED = re.compile(
    r"(?:\bсколько|\bскольки[хм]|\bhow (?:many|much))\s+(?P<counted>(?:[^\W\d_][\w-]*\s*){1,2})"
    r"|(?P<time>\bhow long\b|\bсколько времени\b|\bкак долго\b)",
    re.I,
)
_TIME = (
    "час",
    "hour",
    "дн",
    "ден",
    "day",
    "week",
    "недел",
    "минут",
    "minut",
    "секунд",
    "second",
    "sec",
    "сек",
)
# The amounts checked, as stems (as `tokenize` makes them) -> the words and units a post writes them
# with, both languages. A stem matches a post's stem when one starts with the other.
_UNITS = {
    "paramet": ("параметр", "b", "m", "млрд", "миллиард", "миллион", "млн", "billion", "million"),
    "параметр": ("paramet", "b", "m", "млрд", "миллиард", "миллион", "млн", "billion", "million"),
    "памят": ("memori", "gb", "гб", "vram", "mb", "мб", "гигабайт"),
    "memori": ("памят", "gb", "гб", "vram", "mb", "мб", "гигабайт"),
    "доллар": ("dollar", "usd", "$"),
    "dollar": ("доллар", "usd", "$"),
    "секунд": _TIME,
    "second": _TIME,
    "час": _TIME,
    "hour": _TIME,
    "дне": _TIME,
    "ден": _TIME,
    "day": _TIME,
    "time": _TIME,
}
# A number as a value: "64", "80,2", "6.5%", "405B", "80Gb", "$5", "2x"; not a version inside a name
# ("V3", "SD3.5", "DiT-XL/2").
_VALUE = re.compile(r"(?<![\w.\-/])\$?\d+(?:[.,]\d+)?(?P<unit>%|[a-zа-яё]{1,3})?(?![\w\-/])", re.I)
_WORDS = re.compile(r"[^\W\d_][\w-]*|%|\$")


def counted_terms(question: str) -> list[str] | None:
    """The words and units of the amount a question asks for ("Сколько долларов…" -> доллар,
    dollar, usd, $); None when it asks for no amount with a unit (see _UNITS)."""
    match = _QUANTITY_ASKED.search(question)
    if not match:
        return None
    terms = ["time"] if match.group("time") else tokenize(match.group("counted"))
    out: list[str] = []
    for term in terms:
        if term in _UNITS:
            out.extend(w for w in (term, *_UNITS[term]) if w not in out)
    return out or None


def _same_stem(a: str, b: str) -> bool:
    return a == b or (min(len(a), len(b)) >= 3 and (a.startswith(b) or b.startswith(a)))


def gives_quantity(terms: list[str], texts: list[str]) -> bool:
    """True when a sentence of one of `texts` gives a number in the asked unit (one of `terms`):
    glued to it ("80GB", "7B", "$5") or in the two words after it ("630 миллионами параметров",
    "4 секунды"). A number in another unit does not count ("…миллионов параметров требуют 80Gb"
    gives memory, not parameters)."""
    for text in texts:
        for sentence in sentences_of(text):
            for value in _VALUE.finditer(sentence):
                units = [value.group("unit") or ""]
                if value.group(0).startswith("$"):
                    units.append("$")
                units += _WORDS.findall(sentence[value.end() :])[:2]
                stems = {stem(normalize_token(u)) if u not in ("%", "$") else u for u in units if u}
                if any(_same_stem(s, t) for s in stems for t in terms):
                    return True
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
