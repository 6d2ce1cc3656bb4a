"""Search latency and index build throughput on a synthetic corpus (default 100,000 chunks).

Prints: store write and chunking time, embedding throughput of the model on a sample of chunks,
index build time (tokenize + BM25 + FAISS + write + swap) and search latency p50/p95 for hybrid,
BM25-only and dense-only search, query embedding included.

Embedding all 100k chunks with the CPU model takes about an hour on a 2-core machine, so by
default only `--embed-sample` chunks go through the model (that measures the throughput); the
other vectors are those sample vectors plus noise, written into the embedding cache first, so
the rest of the build runs the real code path. `--embed-all` embeds everything.

    python benchmarks/search.py [--chunks 100000] [--queries 200] [--embed-sample 1000] [--embed-all]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

from rag.chunking import sync_chunks
from rag.embedding import EmbeddingCache, text_key
from rag.service import RagConfig, RagService
from rag.store import PostRecord, SourceBatch, open_store
from rag.store.models import Chunk

_RU_WORDS = (
    "квантизация модели весов активаций дистилляция диффузии обучение инференс ускорение памяти кэша "
    "внимания трансформера энкодера декодера данных фильтрации масштабирования генерации изображений "
    "видео текста метрики качества разнообразия шагов семплирования расписания шума ошибки градиента "
    "оптимизатора батча слоя эмбеддинга токенов контекста рассуждения бенчмарка статьи авторы предлагают "
    "метод показывает результаты эксперименты сравнивают подход работает лучше быстрее хуже"
)
RU = _RU_WORDS.split()
_EN_WORDS = (
    "quantization weights activations distillation diffusion training inference speedup memory cache "
    "attention transformer encoder decoder data filtering scaling generation images video text metrics "
    "quality diversity steps sampling schedule noise error gradient optimizer batch layer embedding tokens "
    "context reasoning benchmark paper authors propose method shows results experiments compare"
)
EN = _EN_WORDS.split()


def synthetic_text(rng: random.Random, words: int) -> str:
    names = [
        f"{rng.choice(['GPTQ', 'LLaMA', 'Qwen', 'DiT', 'CLIP', 'SD', 'Mistral', 'ViT'])}-{rng.randint(1, 999)}"
    ]
    pool = RU if rng.random() < 0.7 else EN
    out = [rng.choice(pool) for _ in range(words)]
    for _ in range(3):
        out.insert(rng.randrange(len(out)), names[0])
    sentences = [" ".join(out[i : i + 12]).capitalize() + "." for i in range(0, len(out), 12)]
    return " ".join(sentences)


def percentiles(values: list[float]) -> str:
    arr = np.array(values)
    return f"p50 {np.percentile(arr, 50):7.1f} ms   p95 {np.percentile(arr, 95):7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--embed-sample", type=int, default=1000)
    parser.add_argument("--embed-all", action="store_true")
    parser.add_argument("--ann-threshold", type=int, default=200_000, help="HNSW above this many chunks")
    parser.add_argument("--keep", type=Path, help="Build in this folder and keep it (default: a temp dir)")
    args = parser.parse_args()
    rng = random.Random(0)
    root = args.keep or Path(tempfile.mkdtemp(prefix="rb-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    store = open_store(f"sqlite:///{root / 'research-bot.sqlite3'}")
    print(f"synthetic corpus: {args.chunks} chunks (one short post each) in {root}")

    started = time.perf_counter()
    base = datetime(2024, 1, 1, tzinfo=UTC)
    texts = [synthetic_text(rng, rng.randint(40, 90)) for _ in range(args.chunks)]
    for start in range(0, args.chunks, 10_000):
        posts = [
            PostRecord(channel=f"ch{i % 20}", text=texts[i], message_id=i + 1, date=base + timedelta(hours=i))
            for i in range(start, min(start + 10_000, args.chunks))
        ]
        store.ingest_batch(SourceBatch(f"synthetic-{start}", "bench", posts), channel_hint=None, digest=None)
    stored = time.perf_counter()
    sync_chunks(store)
    chunked = time.perf_counter()
    print(f"store write   {stored - started:7.1f} s    chunking {chunked - stored:7.1f} s")

    service = RagService(RagConfig(data_dir=root, ann_threshold=args.ann_threshold), store)
    embedder = service.embedder()
    with store.session() as s:
        chunk_texts = [t for (t,) in s.execute(Chunk.__table__.select().with_only_columns(Chunk.text))]
    sample = (
        chunk_texts if args.embed_all else rng.sample(chunk_texts, min(args.embed_sample, len(chunk_texts)))
    )
    t0 = time.perf_counter()
    vectors = embedder.encode_passages(sample)  # (n, dim)
    embed_s = time.perf_counter() - t0
    rate = len(sample) / embed_s
    print(
        f"embedding     {len(sample)} chunks in {embed_s:.1f} s = {rate:.0f} chunks/s "
        f"(full corpus would take {len(chunk_texts) / rate / 60:.1f} min)"
    )
    cache = EmbeddingCache(root / "index" / "embeddings.sqlite")
    model = service.spec.identity
    items = {text_key(t): v for t, v in zip(sample, vectors, strict=True)}
    if not args.embed_all:
        noise = np.random.default_rng(0)
        for text in chunk_texts:
            key = text_key(text)
            if key not in items:
                v = vectors[noise.integers(len(vectors))] + noise.normal(0, 0.05, vectors.shape[1])
                items[key] = (v / np.linalg.norm(v)).astype(np.float32)
    cache.put_many(model, items)
    cache.close()

    t0 = time.perf_counter()
    report = service.sync_report()
    build_s = time.perf_counter() - t0
    generation = service.indexes.load()
    print(
        f"index build   {report.added} chunks in {build_s:.1f} s = {report.added / build_s:.0f} chunks/s "
        f"(tokenize + BM25 + FAISS {generation.manifest['dense']} + write + swap; vectors from the cache)"
    )
    print(
        f"full build from scratch on this machine ~ {len(chunk_texts) / rate + build_s:.0f} s "
        f"(embedding dominates)"
    )

    words = [w for t in rng.sample(texts, args.queries) for w in [t.split()]]
    queries = []
    for i, ws in enumerate(words):
        pick = " ".join(rng.sample(ws, min(5, len(ws))))
        queries.append(("как работает " if i % 2 else "how does ") + pick.lower().strip("."))
    service.search(queries[0])  # warm-up: model and index in memory
    for mode in ("hybrid", "bm25", "dense"):
        latencies = []
        for q in queries:
            t0 = time.perf_counter()
            service.search(q, k=5, mode=mode)
            latencies.append((time.perf_counter() - t0) * 1000)
        print(
            f"search {mode:<7}{percentiles(latencies)}   ({len(queries)} queries, query embedding included)"
        )
    service.close()
    store.close()
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
