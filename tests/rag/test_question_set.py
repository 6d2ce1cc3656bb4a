"""The realistic question set (tests/data/realistic_qa.jsonl) is what the issue asks for: enough
questions of every kind, fixed tune/report halves, and every post reference and expected fact
checkable against the bundled sample corpus (so a changed parser cannot silently void the set)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from ingest.pipeline import ingest_locations
from rag.evaluate import OFF_CORPUS, EvalError, load_questions
from rag.samples import SAMPLE_CORPUS
from rag.store import open_store
from rag.store.models import Post

SET = Path(__file__).resolve().parents[1] / "data" / "realistic_qa.jsonl"


@pytest.fixture(scope="module")
def post_texts(tmp_path_factory) -> list[str]:
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('qs') / 'db.sqlite3'}")
    ingest_locations(store, [str(SAMPLE_CORPUS)])
    with store.session() as s:
        texts = [t.casefold() for t in s.scalars(select(Post.text))]
    store.close()
    return texts


def test_the_set_has_every_kind_in_two_fixed_halves():
    questions = load_questions(SET)
    kinds = Counter(q.kind for q in questions)
    assert len(questions) >= 120
    assert kinds[OFF_CORPUS] >= 25 and kinds["follow-up"] >= 10
    for kind in ("paraphrase", "cross-lingual", "fact", "multi-post"):
        assert kinds[kind] >= 10
    near = [q for q in questions if q.kind == OFF_CORPUS and q.near]
    assert len(near) * 2 >= kinds[OFF_CORPUS]  # at least half close to the corpus' topics
    tune, report = load_questions(SET, "tune"), load_questions(SET, "report")
    assert len(tune) + len(report) == len(questions)
    for kind, n in kinds.items():
        per_half = [sum(q.kind == kind for q in half) for half in (tune, report)]
        assert abs(per_half[0] - per_half[1]) <= max(2, n // 5), kind
    by_id = {q.id: q for q in questions}
    for q in questions:  # a follow-up lives in the half of the question it follows
        if q.after:
            assert by_id[q.after].split == q.split


def test_every_post_reference_names_one_post_and_every_fact_is_in_it(post_texts):
    for q in load_questions(SET):
        relevant = []
        for anchor in q.expect:
            matches = [t for t in post_texts if anchor.casefold() in t]
            assert len(matches) == 1, f"{q.id}: {anchor!r} matches {len(matches)} posts"
            relevant += matches
        for fact in q.answer:
            assert any(alt.casefold() in t for alt in fact.split("|") for t in relevant), f"{q.id}: {fact!r}"


def test_a_split_needs_split_fields_and_follow_ups_need_their_question(tmp_path):
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"q": "вопрос", "expect": ["x"]}) + "\n", encoding="utf-8")
    with pytest.raises(EvalError, match="split"):
        load_questions(plain, "tune")
    orphan = tmp_path / "orphan.jsonl"
    orphan.write_text(
        json.dumps({"id": "b", "q": "а он?", "kind": "follow-up", "posts": ["x"], "after": "a"}) + "\n",
        encoding="utf-8",
    )
    with pytest.raises(EvalError, match="follows 'a'"):
        load_questions(orphan)
