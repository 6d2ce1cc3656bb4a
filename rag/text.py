"""Text handling shared by the indexes and retrieval: query cleaning (language detection is
`core.lang`'s), tokenization with Russian and English stemming, and bilingual (en↔ru) term expansion.

Pure functions over strings; no store, no models. The same tokenizer runs at index time and at
query time, so a change here needs `research-bot reindex` (the lexical index records
`TOKENIZER_VERSION`).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from functools import lru_cache
from importlib import resources

import Stemmer
from bm25s.stopwords import STOPWORDS_EN, STOPWORDS_RUSSIAN

from core.errors import RetrievalError
from core.lang import CYRILLIC_LANGUAGES
from core.lang import detect_language as _iso_language

TOKENIZER_VERSION = 3  # 3: chunks after the first are indexed with their post's first line
# A query longer than this is cut: BM25 and the embedding model gain nothing from more text
# (the default model reads 256 word pieces), and a 100k-character paste must not stall search.
MAX_QUERY_CHARS = 2000

_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*", re.UNICODE)
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[a-zA-Z]")
_STOP = (
    frozenset(STOPWORDS_EN)
    | frozenset(w.replace("ё", "е") for w in STOPWORDS_RUSSIAN)
    | {
        # question words the stopword lists keep, which match nothing useful in posts
        "which",
        "what",
        "how",
        "why",
        "does",
        "did",
        "post",
        "posts",
        "channel",
        "paper",
        "какой",
        "какая",
        "какие",
        "каком",
        "какую",
        "каких",
        "пост",
        "посте",
        "канал",
        "статья",
        "статье",
        "чем",
        "ли",
        "что",
        "как",
        "где",
        "кто",
        "почему",
        "зачем",
        "сколько",
    }
)


def detect_language(text: str) -> str:
    """The language as retrieval and answers use it: `core.lang`'s code, with all Cyrillic text read
    as "ru" (Ukrainian too: one Cyrillic stemmer, the ru<->en glossary, answers in Russian, as before
    `core.lang` told Ukrainian apart)."""
    code = _iso_language(text)
    return "ru" if code in CYRILLIC_LANGUAGES else code


def clean_query(text: str) -> str:
    """Remove control/format characters, collapse whitespace, cut to MAX_QUERY_CHARS.

    Raises RetrievalError for a query with nothing searchable left.
    """
    if not isinstance(text, str):
        raise RetrievalError("the query must be text")
    chars = [" " if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp") else c for c in text]
    cleaned = re.sub(r"\s+", " ", "".join(chars)).strip()[:MAX_QUERY_CHARS].strip()
    if not cleaned:
        raise RetrievalError("empty query: type some words to search for")
    return cleaned


@lru_cache(maxsize=1)
def _stemmers() -> tuple[Stemmer.Stemmer, Stemmer.Stemmer]:
    return Stemmer.Stemmer("russian"), Stemmer.Stemmer("english")


def normalize_token(token: str) -> str:
    return token.casefold().replace("ё", "е")


def stem(token: str) -> str:
    """Stem by the token's own script: Russian for Cyrillic, English for Latin, else unchanged."""
    ru, en = _stemmers()
    if _CYRILLIC.search(token):
        return ru.stemWord(token)
    if _LATIN.search(token):
        return en.stemWord(token)
    return token


def words(text: str) -> list[str]:
    return [normalize_token(w) for w in _WORD.findall(text)]


def tokenize(text: str, *, keep_stopwords: bool = False) -> list[str]:
    """Normalized, stemmed tokens without stopwords; used for documents and queries alike."""
    out = []
    for word in words(text):
        if not keep_stopwords and word in _STOP:
            continue
        if len(word) == 1 and not word.isdigit():
            continue
        out.append(stem(word))
        if "-" in word:  # "KV-кэше" also matches "кэш", "DeepSeek-R1" also "deepseek"
            out.extend(stem(part) for part in word.split("-") if len(part) > 1 and part not in _STOP)
    return out


@lru_cache(maxsize=1)
def _glossary() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Stemmed en→ru and ru→en term maps from rag/glossary_en_ru.txt (one pair per line)."""
    en_ru: dict[str, list[str]] = {}
    ru_en: dict[str, list[str]] = {}
    text = resources.files("rag").joinpath("glossary_en_ru.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line.strip() or line.startswith("#") or "\t" not in line:
            continue
        en, ru = (part.strip() for part in line.split("\t", 1))
        en_key, ru_key = (
            " ".join(tokenize(en, keep_stopwords=True)),
            " ".join(tokenize(ru, keep_stopwords=True)),
        )
        if en_key and ru_key:
            en_ru.setdefault(en_key, []).extend(ru_key.split())
            ru_en.setdefault(ru_key, []).extend(en_key.split())
    return en_ru, ru_en


def expand_terms(tokens: list[str], language: str) -> list[str]:
    """Translations of the query's stemmed terms (single terms and two-word phrases) through the
    bilingual glossary, so an English question still matches a Russian post and vice versa."""
    en_ru, ru_en = _glossary()
    table = en_ru if language != "ru" else ru_en
    extra: list[str] = []
    grams = tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]
    for gram in grams:
        for term in table.get(gram, ()):
            if term not in tokens and term not in extra:
                extra.append(term)
    return extra


def split_sentences(text: str) -> list[str]:
    """Sentences and list items of a post: split at line breaks and at . ! ? … before a capital."""
    out: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        parts = re.split(r"(?<=[.!?…])\s+(?=[\"«(\[A-ZА-ЯЁ0-9])", line)
        out.extend(p.strip() for p in parts if p.strip())
    return out
