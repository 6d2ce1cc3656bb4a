"""Translation and optional style adaptation through the LLM, with protected tokens kept exact.

The post goes to the model as masked HTML (`crosspost.htmlio`); a reply that loses a placeholder
(a URL, a number, a model name...) is retried once with the list of what it lost, then fails with
one clear `LLMError`. Without an LLM the caller skips translation and says so.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from core.errors import CrosspostError, LLMError
from core.lang import detect_language as core_detect_language
from crosspost.htmlio import Masked, doc_from_html, mask_doc
from crosspost.llm import LLMConfig, chat
from crosspost.model import Doc
from crosspost.tokens import find_tokens

LANGUAGE_NAMES = {
    "en": "English",
    "ru": "Russian",
    "uk": "Ukrainian",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "zh": "Chinese",
    "ja": "Japanese",
    "ko": "Korean",
    "ar": "Arabic",
    "he": "Hebrew",
    "el": "Greek",
}
GLOSSARY_LINE = re.compile(r"^(?P<src>[^\t=]+?)\s*(?:\t+|=>|->|=)\s*(?P<dst>.+)$")


def load_glossary(path: Path | None) -> dict[str, str]:
    """`term = translation` lines (also TAB or `=>`), or a TOML/YAML mapping; `#` starts a comment."""
    if path is None:
        return {}
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CrosspostError(f"glossary {path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise CrosspostError(f"glossary {path}: not UTF-8 text") from exc
    suffix = path.suffix.lower()
    if suffix in (".toml", ".yaml", ".yml", ".json"):
        try:
            data = tomllib.loads(raw) if suffix == ".toml" else yaml.safe_load(raw)
        except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
            raise CrosspostError(f"glossary {path}: malformed ({str(exc).splitlines()[0]})") from exc
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k.strip() and v.strip() for k, v in data.items()
        ):
            raise CrosspostError(f"glossary {path}: expected a mapping of term = translation (strings)")
        return {k.strip(): v.strip() for k, v in data.items()}
    glossary = {}
    for number, line in enumerate(raw.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = GLOSSARY_LINE.match(line)
        if not match or not match.group("dst").strip():
            raise CrosspostError(
                f"glossary {path} line {number}: expected 'term = translation', got {line[:60]!r}"
            )
        glossary[match.group("src").strip()] = match.group("dst").strip()
    return glossary


def _prose(doc: Doc | str) -> str:
    """The words a reader reads as the post's language: no code, URLs, mentions, hashtags, numbers,
    nor model names and terms (SageAttention2, INT8, H100), which are Latin in any language."""
    if isinstance(doc, str):
        text = doc
    else:
        text = "\n".join(
            "".join(s.text if s.kind == "text" and not s.code and not s.url else " " for s in line)
            for block in doc.blocks
            if block.kind != "code"
            for line in block.lines
        )
    pieces, cursor = [], 0
    for token in find_tokens(text, units=False, terms=True):
        pieces.append(text[cursor : token.start])
        cursor = token.end
    pieces.append(text[cursor:])
    return " ".join(pieces)


def detect_language(text: Doc | str) -> str:
    """`core.lang`'s rule over the prose only (a short Russian line with a URL and a model name is
    Russian); a post of only terms and links is judged by what there is."""
    prose = _prose(text)
    if not any(ch.isalpha() for ch in prose):
        prose = text if isinstance(text, str) else text.plain()
    return core_detect_language(prose)


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


_RULES = (
    "Keep every HTML tag (<b>, <i>, <a href=...>, <code>) and every placeholder such as [[3]] exactly as "
    "written and where it belongs in the sentence; never drop, add, translate or renumber a placeholder. "
    "Keep line breaks and blank lines as they are. Answer with the fragment only."
)


def _ask(llm: LLMConfig, masked: Masked, system: str, what: str) -> str:
    reply = chat(llm, system, masked.html)
    missing = masked.missing(reply)
    if missing:  # one retry that names what was lost
        reminder = (
            f"{system}\nYour previous answer lost these placeholders: "
            + ", ".join(f"[[{k}]]" for k in missing)
            + ". Every placeholder must appear."
        )
        reply = chat(llm, reminder, masked.html, temperature=0.0)
        missing = masked.missing(reply)
        if missing:
            raise LLMError(
                f"{what}: the model dropped protected tokens twice ({masked.describe(missing)}); "
                "nothing was converted, try again or another model"
            )
    return masked.restore(reply)


def translate_doc(doc: Doc, source_lang: str, lang: str, llm: LLMConfig, glossary: dict[str, str]) -> Doc:
    masked = mask_doc(
        doc, glossary=glossary, latin_is_foreign=source_lang not in ("en", "de", "fr", "es", "und")
    )
    system = (
        f"You translate Telegram posts about machine learning from {language_name(source_lang)} to "
        f"{language_name(lang)}. The post is an HTML fragment. {_RULES}"
    )
    restored = _ask(llm, masked, system, f"translation to {language_name(lang)}")
    result = doc_from_html(restored)
    if not result.blocks:
        raise LLMError(f"translation to {language_name(lang)}: the model returned no text")
    return result


def restyle_doc(doc: Doc, style: str, lang: str, llm: LLMConfig) -> Doc:
    masked = mask_doc(doc, latin_is_foreign=False)
    system = (
        f"Rewrite this post in {language_name(lang)} as {style}. Do not invent facts; keep every link. "
        f"The post is an HTML fragment. {_RULES}"
    )
    return doc_from_html(_ask(llm, masked, system, f"style for {style.split(':')[0]}"))
