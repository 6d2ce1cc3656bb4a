"""Ingest throughput: a synthetic Telegram JSON export of N posts, first ingest vs re-ingest.

    python benchmarks/ingest.py [--posts 50000] [--database-url URL]

Prints posts/s for the first ingest (parse + clean + upsert, no embeddings), for a re-ingest of the
unchanged file (skipped by its digest), and for a forced re-parse of the unchanged file (every post
compared and found unchanged), with the ratios against the first run.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.pipeline import ingest_locations
from rag.store import open_store

WORDS = [
    "модель",
    "квантизация",
    "attention",
    "трансформер",
    "дистилляция",
    "диффузия",
    "слой",
    "токен",
    "обучение",
    "inference",
    "GPTQ",
    "SageAttention",
    "LLaMA",
    "Qwen",
    "бенчмарк",
    "перплексия",
    "контекст",
    "кэш",
    "веса",
    "градиент",
]


def synthetic_export(n: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    messages = []
    for i in range(1, n + 1):
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 120)))
        text_entities = [{"type": "plain", "text": f"Пост {i}: {body} "}]
        if i % 5 == 0:
            text_entities.append(
                {"type": "text_link", "text": "статья", "href": f"https://arxiv.org/abs/2401.{i % 99999:05d}"}
            )
        if i % 7 == 0:
            text_entities.append({"type": "hashtag", "text": "#quant"})
        messages.append(
            {
                "id": i,
                "type": "message",
                "date": "2025-04-28T23:54:00",
                "date_unixtime": str(1_700_000_000 + i * 60),
                "from": "Bench",
                "text": [e if e["type"] != "plain" else e["text"] for e in text_entities],
                "text_entities": text_entities,
                "reactions": [{"type": "emoji", "count": i % 13, "emoji": "👍"}],
            }
        )
        if i % 50 == 0:
            messages.append(
                {"id": n + i, "type": "service", "action": "pin_message", "date_unixtime": "0", "text": ""}
            )
    return {"name": "Bench channel", "type": "public_channel", "id": 1, "messages": messages}


def timed(label: str, fn, posts: int) -> float:
    start = time.perf_counter()
    report = fn()
    elapsed = time.perf_counter() - start
    print(f"{label:<28} {elapsed:8.2f} s   {posts / elapsed:10.0f} posts/s   {report.summary.line()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=50_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "result.json"
        path.write_text(json.dumps(synthetic_export(args.posts), ensure_ascii=False), encoding="utf-8")
        size_mb = path.stat().st_size / 1e6
        store = open_store(args.database_url or f"sqlite:///{tmp}/bench.sqlite3")
        print(f"synthetic export: {args.posts} posts, {size_mb:.1f} MB, database {store.engine.dialect.name}")
        first = timed(
            "first ingest", lambda: ingest_locations(store, [str(path)], channel_hint="bench"), args.posts
        )
        again = timed(
            "re-ingest (unchanged)",
            lambda: ingest_locations(store, [str(path)], channel_hint="bench"),
            args.posts,
        )
        forced = timed(
            "re-parse (--force)",
            lambda: ingest_locations(store, [str(path)], channel_hint="bench", force=True),
            args.posts,
        )
        print(
            f"re-ingest speed-up: {first / again:.0f}x (target >= 10x); forced re-parse: {first / forced:.1f}x"
        )
        print("targets: first ingest >= 2000 posts/s without embeddings")
        store.close()


if __name__ == "__main__":
    main()
