"""Which language a text is written in, by the script of its words: one rule for retrieval
(which stemmer, which glossary direction), answers (reply in the question's language) and
cross-posting (translate or not).

Codes are ISO 639-1 (`ru`, `uk`, `en`, `zh`, `ja`, `ko`, `ar`, `he`, `el`), `und` when no
script can be told. Russian wins at 30% Cyrillic words: Russian posts and questions are full of
English terms and model names ("Что такое KV-cache в vLLM и FlashAttention?" is 3 Cyrillic words
of 7), while English text has no Cyrillic at all. Otherwise the script with the most words wins.
Ukrainian is Cyrillic with more than two of і/ї/є/ґ; Japanese is kana, or Han next to kana.
"""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*", re.UNICODE)
_UKRAINIAN = re.compile(r"[іїєґІЇЄҐ]")
CYRILLIC_SHARE = 0.3
CYRILLIC_LANGUAGES = frozenset({"ru", "uk"})  # what `detect_language` calls Cyrillic text
_CODES = {"LATIN": "en", "HAN": "zh", "HANGUL": "ko", "ARABIC": "ar", "HEBREW": "he", "GREEK": "el"}


def _script(ch: str) -> str:
    script = unicodedata.name(ch, "").split(" ")[0]
    return "HAN" if script == "CJK" else script


def detect_language(text: str) -> str:
    words: dict[str, int] = {}  # script of a word's first letter -> words
    seen: set[str] = set()  # every script of any letter (kana inside a kanji word)
    for word in _WORD.findall(text):
        letters = [_script(ch) for ch in word if ch.isalpha()]
        if not letters:
            continue  # numbers
        words[letters[0]] = words.get(letters[0], 0) + 1
        seen.update(letters)
    total = sum(words.values())
    if not total:
        return "und"
    if words.get("CYRILLIC", 0) >= CYRILLIC_SHARE * total:
        return "uk" if len(_UKRAINIAN.findall(text)) > 2 else "ru"
    script = max(words, key=lambda name: words[name])
    if script in ("HIRAGANA", "KATAKANA") or (script == "HAN" and seen & {"HIRAGANA", "KATAKANA"}):
        return "ja"
    return _CODES.get(script, "und")
