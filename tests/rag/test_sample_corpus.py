"""The README's main job on the bundled sample corpus: `demo` ingests, indexes and answers; the
question set meets the issue's retrieval targets with the offline model and no LLM."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from bot.cli.main import main
from rag.samples import SAMPLE_CORPUS

QA = Path(__file__).resolve().parents[1] / "data" / "qa_sample.jsonl"


def _run(args: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exc:
        main(args)
    assert (exc.value.code or 0) == 0, out.getvalue()
    return out.getvalue()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    data = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("RESEARCH_BOT_LLM_BASE_URL", raising=False)
        mp.setattr("sys.stdout", io.StringIO())
        out = _run(["demo", "--data-dir", str(data)])
    return data, out


def test_demo_answers_questions_with_links(demo):
    _, out = demo
    assert "indexed: +" in out
    assert "Q: Как в Hogwild!" in out and "Цитаты из корпуса" in out
    assert "Q: How much faster is SageAttention" in out and "Quotes from the corpus" in out
    assert "2.1 раза" in out  # the English question found the Russian post
    assert "https://t.me/quant_prune_distill/475" in out or "quant_prune_distill" in out


def test_question_set_meets_the_targets(demo):
    data, _ = demo
    report = json.loads(_run(["eval", str(QA), "--json", "--data-dir", str(data)]))
    assert report["questions"] >= 40
    hybrid = report["modes"]["hybrid"]
    assert hybrid["ru"]["hit@5"] >= 0.95 and hybrid["ru"]["hit@1"] >= 0.8
    assert hybrid["en"]["hit@5"] >= 0.9
    # the English-centric dense model alone is far weaker on Russian; fusion must not drop below BM25
    bm25 = report["modes"]["bm25"]
    assert hybrid["all"]["mrr"] >= bm25["all"]["mrr"]
    assert report["modes"]["dense"]["ru"]["hit@1"] < hybrid["ru"]["hit@1"]


def test_reingest_is_incremental(demo):
    data, _ = demo
    out = _run(["ingest", str(SAMPLE_CORPUS), "--data-dir", str(data)])
    assert "indexed: +0 / -0 chunks (0 embedded" in out


def test_extractive_answer_quotes_only_sources_about_the_question(demo):
    data, _ = demo
    answer = json.loads(_run(["ask", "Что такое SageAttention?", "--json", "--data-dir", str(data)]))
    assert answer["mode"] == "extractive" and not answer["abstained"]
    # generic question words ("что такое") must not pull unrelated posts in as extra quotes
    assert answer["citations"] and all("SageAttention" in c["quote"] for c in answer["citations"])
