"""The cross-posting API the CLI and the bot call: `convert(source, targets=..., lang=...)`.

Order of work: everything that can be wrong with the input (networks, rules, glossary, the
source itself) is checked first; then translation (or a cached one from the store), optional
style, rendering and splitting per network; the store is written last, in one transaction, so
a failure anywhere leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import CrosspostError, LLMError
from crosspost import DEFAULT_TARGETS
from crosspost.htmlio import doc_from_html, doc_to_html
from crosspost.llm import LLMConfig
from crosspost.model import Doc, SourcePost
from crosspost.parse import doc_from_source
from crosspost.rules import load_rules
from crosspost.sources import load_source
from crosspost.targets import resolve
from crosspost.targets.base import Part
from crosspost.tokens import find_urls
from crosspost.translate import detect_language, language_name, load_glossary, restyle_doc, translate_doc

if TYPE_CHECKING:
    from rag.store.db import Store

TRANSLATION_ROW = "_translation"


@dataclass
class TargetResult:
    name: str
    parts: list[Part]
    translated: bool
    restyled: bool = False
    error: str | None = None  # this network could not take the post; the others are still made

    @property
    def notices(self) -> list[str]:
        return list(dict.fromkeys(note for part in self.parts for note in part.notes))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"parts": [p.to_json() for p in self.parts], "translated": self.translated}
        if self.restyled:
            out["restyled"] = True
        if self.notices:
            out["notices"] = self.notices
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class ConversionResult:
    source: str
    lang: str
    source_lang: str
    targets: dict[str, TargetResult] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    translation_cached: bool = False

    @property
    def failed(self) -> dict[str, str]:
        """Network -> its error, for every network that could not take the post."""
        return {name: t.error for name, t in self.targets.items() if t.error}

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "targets": {name: result.to_json() for name, result in self.targets.items()},
            "lang": self.lang,
            "source_lang": self.source_lang,
            "notices": self.notices,
            "failed": sorted(self.failed),
        }


def source_hash(post: SourcePost) -> str:
    key = json.dumps(
        [post.text, post.entities, post.markdown], ensure_ascii=False, sort_keys=True, default=str
    )
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _only_links(doc: Doc) -> bool:
    text = doc.plain()
    for start, end in reversed(find_urls(text)):
        text = text[:start] + text[end:]
    anchors_are_text = any(s.url and not re.match(r"^\W*$", s.text) for s in doc.spans())
    return not re.search(r"[^\W\d_]", text) and not anchors_are_text


def convert(
    source: str | SourcePost,
    *,
    targets: list[str] | None = None,
    lang: str = "en",
    store: Store | None = None,
    llm: LLMConfig | None = None,
    restyle: bool = False,
    rules_file: Path | None = None,
    glossary_file: Path | None = None,
    fmt: str = "auto",
    stdin: Any = None,
) -> ConversionResult:
    """Convert one post for each network in `targets` (default: all six).

    `source`: a `SourcePost`, or a string: `https://t.me/<channel>/<id>` / `<channel>/<id>` (read
    from `store`), a file (`.json` Telegram export, `#<id>` picks a message; `.md`; anything else
    is plain text) or `-` for `stdin`. Translates into `lang` when the post is in another language
    and `llm` is given (else a notice says it was skipped); a stored translation is reused.
    `restyle` asks the LLM for each network's style (`rules.toml`), then re-splits. With a
    `store`, the result is saved per network. Raises `CrosspostError` for bad input and
    `LLMError` when the model fails or drops protected tokens; nothing is written then.
    """
    rules = load_rules(rules_file)
    chosen = resolve(targets or DEFAULT_TARGETS, rules)
    glossary = load_glossary(glossary_file)
    lang = (lang or "en").strip().lower()
    post = (
        source if isinstance(source, SourcePost) else load_source(source, store=store, fmt=fmt, stdin=stdin)
    )
    post, repaired = repair_post(post)
    repaired += post.repaired
    doc = doc_from_source(post)
    if not doc.plain().strip():
        if post.media:
            raise CrosspostError(
                f"{post.origin}: the post is only media with no caption; nothing to cross-post"
            )
        raise CrosspostError(f"{post.origin}: the post is empty; nothing to cross-post")

    result = ConversionResult(source=post.permalink or post.origin, lang=lang, source_lang="und")
    if repaired:
        result.notices.append(
            f"{post.origin}: {repaired} broken character(s) (lone UTF-16 surrogates) replaced with U+FFFD"
        )
    result.source_lang = detect_language(doc)
    digest = source_hash(post)
    translation_key = hashlib.sha256(
        (digest + json.dumps(glossary, sort_keys=True, ensure_ascii=False)).encode()
    ).hexdigest()[:32]
    new_rows: list[Any] = []

    translated = False
    if _only_links(doc):
        result.notices.append("the post is only links: nothing to translate")
    elif result.source_lang not in (lang, "und"):
        cached = _cached_translation(store, translation_key, lang)
        if cached is not None:
            doc, translated, result.translation_cached = cached, True, True
        elif llm is None:
            result.notices.append(
                f"translation skipped: no LLM endpoint configured (RESEARCH_BOT_LLM_BASE_URL); "
                f"posts stay in {language_name(result.source_lang)}"
            )
        else:
            doc = translate_doc(doc, result.source_lang, lang, llm, glossary)
            translated = True
            new_rows.append((translation_key, TRANSLATION_ROW, {"html": doc_to_html(doc)}))

    for name, target, rule in chosen:
        target_doc, restyled = doc, False
        if restyle and llm is not None and rule.style:
            try:
                target_doc, restyled = restyle_doc(doc, rule.style, lang, llm), True
            except LLMError as exc:
                result.notices.append(f"{name}: style adaptation skipped ({exc})")
        elif restyle and llm is None and not any("style adaptation" in n for n in result.notices):
            result.notices.append("style adaptation skipped: no LLM endpoint configured")
        try:
            parts = target.convert(target_doc, rule, post.permalink)
        except CrosspostError as exc:  # this network cannot take the post; the others still can
            result.targets[name] = TargetResult(name, [], translated, restyled, error=str(exc))
            continue
        result.targets[name] = TargetResult(name, parts, translated, restyled)

    if store is not None:
        _save(store, post, digest, lang, result, new_rows)
    return result


def repair_post(post: SourcePost) -> tuple[SourcePost, int]:
    """The post with surrogate pairs joined and lone surrogates (from JSON escapes such as
    "\\ud83d" cut in half) replaced by U+FFFD; UTF-16 offsets of entities stay valid."""
    from crosspost.sources import repair_surrogates as repair_value

    text, lone = repair_value(post.text)
    return (replace(post, text=text), lone) if lone or text != post.text else (post, 0)


def _cached_translation(store: Any, key: str, lang: str) -> Doc | None:
    if store is None:
        return None
    from rag.store.conversions import find_conversion

    row = find_conversion(store, key, TRANSLATION_ROW, lang)
    if row is None or not isinstance(row.payload.get("html"), str):
        return None
    doc = doc_from_html(row.payload["html"])
    return doc if doc.blocks else None


def _save(
    store: Store,
    post: SourcePost,
    digest: str,
    lang: str,
    result: ConversionResult,
    extra: list[tuple[str, str, dict[str, Any]]],
) -> None:
    from rag.store.conversions import ConversionRow, save_conversions

    rows = [ConversionRow(key, target, lang, payload, post.post_id) for key, target, payload in extra]
    for name, target in result.targets.items():
        if target.error:
            continue
        payload = {"source": result.source, **target.to_json(), "source_lang": result.source_lang}
        rows.append(ConversionRow(digest, name, lang, payload, post.post_id))
    save_conversions(store, rows)
