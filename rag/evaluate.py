"""Evaluation over a question file: retrieval (hit@1, hit@k, MRR), abstention and answers, per kind
and language, for BM25-only, dense-only and hybrid retrieval side by side.

A question file has one JSON object per line (lines starting with # are comments). Two forms:
- the realistic set (tests/data/realistic_qa.jsonl): {"id", "kind", "lang", "q", "posts": [substring
  identifying each relevant post], "answer": ["fact", "a|b" = either], "after": id of the question
  asked just before in the same chat, "near": bool for off-corpus questions, "split": "tune"|"report"}
  An off-corpus question has kind "off-corpus" and no posts: the right behaviour is to abstain.
- the keyword form {"q": "...", "expect": ["substring", ...], "lang": "ru"} (tests/data/qa_sample.jsonl).

Every question goes through `RagService.ask` (offline: extractive answers), in file order, with one
chat memory per conversation, so follow-ups are rewritten exactly as `ask`/`chat` rewrite them. A
hit is correct when its post's (or paper's) full text contains one of the question's substrings
(case-insensitive), so the check does not depend on chunking. Fact-in-answer: every `answer` item
(one of its `|` alternatives) occurs in the answer text or its quotes, over the answerable questions
that list facts; an abstention on such a question counts as a miss.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select

from core.errors import AppError, RetrievalError
from rag.store.models import Paper, Post
from rag.text import detect_language
from rag.types import Answer, Hit

MODES = ("bm25", "dense", "hybrid")
SPLITS = ("tune", "report", "all")
OFF_CORPUS = "off-corpus"


class EvalError(AppError):
    """The question file cannot be used."""


@dataclass
class Question:
    q: str
    expect: list[str]  # substrings identifying the relevant posts; empty for off-corpus questions
    lang: str
    id: str = ""
    kind: str = "keyword"
    answer: list[str] = field(default_factory=list)
    after: str | None = None
    near: bool | None = None
    split: str | None = None

    @property
    def answerable(self) -> bool:
        return bool(self.expect)


def _question(row: dict) -> Question:
    q = row["q"]
    kind = row.get("kind") or "keyword"
    expect = row.get("posts", row.get("expect"))
    if isinstance(expect, str):
        expect = [expect]
    answer = row.get("answer") or []
    if (
        not isinstance(q, str)
        or not q.strip()
        or not isinstance(expect, list)
        or not all(isinstance(e, str) and e for e in expect)
        or (not expect and kind != OFF_CORPUS)
        or not isinstance(answer, list)
        or not all(isinstance(a, str) and a for a in answer)
    ):
        raise ValueError
    lang = row.get("lang") or ("ru" if detect_language(q) == "ru" else "en")
    return Question(
        q=q,
        expect=expect,
        lang=lang,
        id=str(row.get("id") or ""),
        kind=kind,
        answer=answer,
        after=row.get("after"),
        near=row.get("near"),
        split=row.get("split"),
    )


def load_questions(path: Path, split: str = "all") -> list[Question]:
    """The file's questions, only those of `split` ("tune", "report" or "all")."""
    if split not in SPLITS:
        raise EvalError(f"--split {split!r}: use tune, report or all")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EvalError(f"{path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError:
        raise EvalError(f"{path}: not UTF-8 text") from None
    questions = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            questions.append(_question(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            raise EvalError(
                f'{path}:{number}: expected {{"q": "question", "expect": ["substring", ...]}} or '
                f'{{"q": ..., "kind": ..., "posts": [...], "answer": [...]}}'
            ) from None
    if split != "all":
        if any(q.split is None for q in questions):
            raise EvalError(f"{path}: --split {split} needs a split field on every question")
        questions = [q for q in questions if q.split == split]
    if not questions:
        raise EvalError(
            f"{path}: no questions in the file" + (f" for split {split}" if split != "all" else "")
        )
    known = {q.id for q in questions}
    for q in questions:
        if q.after and q.after not in known:
            raise EvalError(
                f"{path}: question {q.id!r} follows {q.after!r}, which is not in the file or split"
            )
    return questions


# --- scoring -----------------------------------------------------------------------------------
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


def answer_has_facts(answer: Answer, facts: list[str]) -> bool:
    """Every fact (one of its "|" alternatives) occurs in the answer text or its cited quotes."""
    text = " ".join([answer.answer, *(c.quote for c in answer.citations)]).casefold()
    return all(any(alt.casefold() in text for alt in fact.split("|")) for fact in facts)


@dataclass
class Outcome:
    question: Question
    rank: int | None
    abstained: bool
    fact: bool | None  # None: the question lists no facts (or is off-corpus)


def _rate(values: list[bool]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def summarize(outcomes: list[Outcome], k: int) -> dict:
    answerable = [o for o in outcomes if o.question.answerable]
    off = [o for o in outcomes if not o.question.answerable]
    ranks = [o.rank for o in answerable]
    n = len(ranks)
    facts = [o.fact for o in answerable if o.fact is not None]
    return {
        "n": n,
        "hit@1": _rate([r == 1 for r in ranks]),
        f"hit@{k}": _rate([r is not None and r <= k for r in ranks]),
        "mrr": round(sum(1.0 / r for r in ranks if r is not None) / n, 3) if n else None,
        "false_abstention": _rate([o.abstained for o in answerable]),
        "fact_in_answer": _rate(facts),
        "off_corpus": len(off),
        "abstention": _rate([o.abstained for o in off]),
    }


def report(outcomes: list[Outcome], latencies_ms: list[float], k: int) -> dict:
    """{"all": .., "ru": .., "en": .., "kinds": {kind: ..}, "latency_ms": ..} for one mode."""
    out: dict = {"all": summarize(outcomes, k)}
    for lang in sorted({o.question.lang for o in outcomes}):
        out[lang] = summarize([o for o in outcomes if o.question.lang == lang], k)
    kinds: dict = {}
    for kind in dict.fromkeys(o.question.kind for o in outcomes):
        kinds[kind] = summarize([o for o in outcomes if o.question.kind == kind], k)
    near = [o for o in outcomes if o.question.kind == OFF_CORPUS and o.question.near is not None]
    if near:
        kinds["off-corpus near"] = summarize([o for o in near if o.question.near], k)
        kinds["off-corpus far"] = summarize([o for o in near if not o.question.near], k)
    out["kinds"] = kinds
    lat = np.array(latencies_ms or [0.0])
    out["latency_ms"] = {
        "p50": round(float(np.percentile(lat, 50)), 1),
        "p95": round(float(np.percentile(lat, 95)), 1),
    }
    return out


def run_mode(service, questions: list[Question], mode: str, k: int) -> tuple[list[Outcome], list[float]]:
    """Ask every question in file order; a follow-up shares its conversation's chat memory."""
    texts: dict = {}
    outcomes: list[Outcome] = []
    latencies: list[float] = []
    chat_of: dict[str, str] = {}
    followed = {q.after for q in questions if q.after}
    for question in questions:
        chat = chat_of.get(question.after or "", question.id or str(len(outcomes)))
        chat_of[question.id] = chat
        key = f"eval:{mode}:{chat}"
        if not question.after:
            service.forget(key)
        started = time.perf_counter()
        try:
            answer = service.ask(question.q, memory_key=key, mode=mode, k=k)
        except RetrievalError:
            answer = Answer("", "extractive", True)
        latencies.append((time.perf_counter() - started) * 1000)
        _doc_texts(service, answer.hits, texts)
        rank = first_correct(answer.hits, question.expect, texts) if question.answerable else None
        fact = None
        if question.answerable and question.answer:
            fact = not answer.abstained and answer_has_facts(answer, question.answer)
        outcomes.append(Outcome(question, rank, answer.abstained, fact))
        if question.id not in followed:
            service.forget(key)
    return outcomes, latencies


def evaluate(
    service,
    questions: list[Question],
    *,
    k: int = 5,
    modes: tuple[str, ...] = MODES,
    misses: list | None = None,
) -> dict:
    """Run every question in every mode; returns {mode: report}. `misses` collects failures."""
    service.retriever()  # load the model and index before timing
    service.search(questions[0].q, k=k)  # warm-up
    results = {}
    for mode in modes:
        outcomes, latencies = run_mode(service, questions, mode, k)
        results[mode] = report(outcomes, latencies, k)
        if misses is not None:
            for o in outcomes:
                wrong = (o.question.answerable and (o.rank != 1 or o.abstained or o.fact is False)) or (
                    not o.question.answerable and not o.abstained
                )
                if wrong:
                    misses.append(
                        {
                            "mode": mode,
                            "id": o.question.id,
                            "kind": o.question.kind,
                            "q": o.question.q,
                            "rank": o.rank,
                            "abstained": o.abstained,
                            "fact": o.fact,
                        }
                    )
    return results


def format_report(results: dict, k: int) -> list[str]:
    """The CLI table: one line per group (all, languages, kinds) and mode, modes side by side."""

    def cell(value: float | None, width: int = 7) -> str:
        return f"{value:>{width}.3f}" if value is not None else f"{'-':>{width}}"

    first = next(iter(results.values()))
    groups = [("all", first["all"])]
    groups += [(lang, first[lang]) for lang in first if lang not in ("all", "kinds", "latency_ms")]
    groups += [(kind, summary) for kind, summary in first["kinds"].items()]
    lines = [
        f"{'group':<17}{'mode':<7}{'n':>4}{'hit@1':>7}{f'hit@{k}':>7}{'MRR':>7}{'fact':>7}{'f.abst':>7}"
        f"{'off':>5}{'abst':>7}"
    ]
    for name, _ in groups:
        for mode, result in results.items():
            s = result["all"] if name == "all" else result.get(name) or result["kinds"].get(name)
            lines.append(
                f"{name if mode == next(iter(results)) else '':<17}{mode:<7}{s['n']:>4}{cell(s['hit@1'])}"
                f"{cell(s[f'hit@{k}'])}{cell(s['mrr'])}{cell(s['fact_in_answer'])}{cell(s['false_abstention'])}"
                f"{s['off_corpus']:>5}{cell(s['abstention'])}"
            )
    lines.append(
        "latency per question (ms, p50/p95): "
        + ", ".join(
            f"{m} {r['latency_ms']['p50']:.0f}/{r['latency_ms']['p95']:.0f}" for m, r in results.items()
        )
    )
    return lines


def format_misses(misses: list[dict], mode: str = "hybrid") -> list[str]:
    out = []
    for miss in misses:
        if miss["mode"] != mode:
            continue
        what = "answered" if miss["rank"] is None and miss["kind"] == OFF_CORPUS else f"rank {miss['rank']}"
        flags = (" abstained" if miss["abstained"] and miss["kind"] != OFF_CORPUS else "") + (
            " fact missing" if miss["fact"] is False else ""
        )
        out.append(f"  {miss['id'] or '-'} [{miss['kind']}] {what}{flags}: {miss['q']}")
    return out
