"""Retrieval evaluation over a question file: hit@1, hit@5, MRR and latency, per mode and language.

A question file has one JSON object per line: {"q": "...", "expect": ["substring", ...]} and
optionally "lang" ("ru"/"en"; detected from the question otherwise). A hit is correct when its
post's (or paper's) full text contains any expected substring (case-insensitive), so the check
does not depend on how posts were chunked. The three modes run in one pass over the same
indexes, so BM25-only, dense-only and hybrid are directly comparable.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select

from rag.errors import AppError, RetrievalError
from rag.store.models import Paper, Post
from rag.text import detect_language
from rag.types import Hit

MODES = ("bm25", "dense", "hybrid")


class EvalError(AppError):
    """The question file cannot be used."""


@dataclass
class Question:
    q: str
    expect: list[str]
    lang: str


@dataclass
class ModeResult:
    ranks: dict[str, list[int | None]] = field(default_factory=dict)  # lang -> rank of first correct hit
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self, k: int) -> dict:
        out = {}
        groups = dict(self.ranks)
        groups["all"] = [r for ranks in self.ranks.values() for r in ranks]
        for lang, ranks in groups.items():
            n = len(ranks)
            if not n:
                continue
            out[lang] = {
                "n": n,
                "hit@1": round(sum(1 for r in ranks if r == 1) / n, 3),
                f"hit@{k}": round(sum(1 for r in ranks if r is not None and r <= k) / n, 3),
                "mrr": round(sum(1.0 / r for r in ranks if r is not None) / n, 3),
            }
        lat = np.array(self.latencies_ms or [0.0])
        out["latency_ms"] = {
            "p50": round(float(np.percentile(lat, 50)), 1),
            "p95": round(float(np.percentile(lat, 95)), 1),
        }
        return out


def load_questions(path: Path) -> list[Question]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EvalError(f"{path}: cannot read ({exc.strerror})") from exc
    questions = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            row = json.loads(line)
            q, expect = row["q"], row["expect"]
            if isinstance(expect, str):
                expect = [expect]
            if (
                not isinstance(q, str)
                or not q.strip()
                or not expect
                or not all(isinstance(e, str) for e in expect)
            ):
                raise ValueError
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise EvalError(
                f'{path}:{number}: expected {{"q": "question", "expect": ["substring", ...]}}'
            ) from None
        lang = row.get("lang") or ("ru" if detect_language(q) == "ru" else "en")
        questions.append(Question(q, expect, lang))
    if not questions:
        raise EvalError(f"{path}: no questions in the file")
    return questions


def _doc_texts(service, hits: list[Hit], cache: dict) -> None:
    posts = [h.post_id for h in hits if h.post_id is not None and ("post", h.post_id) not in cache]
    papers = [h.paper_id for h in hits if h.paper_id is not None and ("paper", h.paper_id) not in cache]
    with service.store.session() as s:
        if posts:
            for pid, text in s.execute(select(Post.id, Post.text).where(Post.id.in_(posts))):
                cache[("post", pid)] = text.casefold()
        if papers:
            for pid, title, abstract, full in s.execute(
                select(Paper.id, Paper.title, Paper.abstract, Paper.full_text).where(Paper.id.in_(papers))
            ):
                cache[("paper", pid)] = " ".join(x or "" for x in (title, abstract, full)).casefold()


def first_correct(hits: list[Hit], expect: list[str], texts: dict) -> int | None:
    needles = [e.casefold() for e in expect]
    for hit in hits:
        key = ("post", hit.post_id) if hit.post_id is not None else ("paper", hit.paper_id)
        text = texts.get(key, hit.text.casefold())
        if any(n in text for n in needles):
            return hit.rank
    return None


def evaluate(
    service,
    questions: list[Question],
    *,
    k: int = 5,
    modes: tuple[str, ...] = MODES,
    misses: list | None = None,
) -> dict:
    """Run every question in every mode; returns {mode: summary}. `misses` collects failures."""
    service.retriever()  # load the model and index before timing
    service.search(questions[0].q, k=k)  # warm-up
    texts: dict = {}
    results: dict[str, ModeResult] = {}
    for mode in modes:
        result = ModeResult()
        for question in questions:
            started = time.perf_counter()
            try:
                hits = service.search(question.q, k=k, mode=mode)
            except RetrievalError:
                hits = []
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            _doc_texts(service, hits, texts)
            rank = first_correct(hits, question.expect, texts)
            result.ranks.setdefault(question.lang, []).append(rank)
            if misses is not None and rank != 1:
                misses.append(
                    {
                        "mode": mode,
                        "q": question.q,
                        "rank": rank,
                        "top": [h.url or h.channel for h in hits[:3]],
                    }
                )
        results[mode] = result
    return {mode: results[mode].summary(k) for mode in modes}
