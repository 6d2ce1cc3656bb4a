"""Cross-posting over the bundled sample corpus, without an LLM: how many posts convert for each
network, parts per post, and time per post. Prints numbers; never pass/fail.

    .venv/bin/python benchmarks/crosspost.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.errors import AppError  # noqa: E402
from crosspost.model import SourcePost  # noqa: E402
from crosspost.service import DEFAULT_TARGETS, convert  # noqa: E402
from ingest.pipeline import ingest_locations  # noqa: E402
from rag.samples import SAMPLE_CORPUS  # noqa: E402
from rag.store import open_store  # noqa: E402
from rag.store.conversions import iter_post_views  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per post (the median is reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
        ingest_locations(store, [str(SAMPLE_CORPUS)])
        posts = [
            SourcePost(text=v.text, entities=v.entities, permalink=v.permalink, origin=f"post {v.id}")
            for v in iter_post_views(store)
        ]
        store.close()
    ok = dict.fromkeys(DEFAULT_TARGETS, 0)
    parts: dict[str, list[int]] = {t: [] for t in DEFAULT_TARGETS}
    failures: list[str] = []
    per_post: list[float] = []
    per_target: dict[str, list[float]] = {t: [] for t in DEFAULT_TARGETS}
    for post in posts:
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            try:
                convert(post, targets=DEFAULT_TARGETS, llm=None)
            except AppError as exc:
                failures.append(f"{post.origin}: {exc}")
                break
            times.append(time.perf_counter() - start)
        if times:
            per_post.append(statistics.median(times))
        for name in DEFAULT_TARGETS:  # per network, so one failing network does not hide the others
            start = time.perf_counter()
            try:
                result = convert(post, targets=[name], llm=None)
            except AppError as exc:
                failures.append(f"{post.origin} [{name}]: {exc}")
                continue
            per_target[name].append(time.perf_counter() - start)
            if result.targets[name].error:  # one network's own failure: the others still convert
                failures.append(f"{post.origin} [{name}]: {result.targets[name].error}")
                continue
            ok[name] += 1
            parts[name].append(len(result.targets[name].parts))
    chars = [len(p.text) for p in posts]
    print(f"corpus: {len(posts)} posts, {statistics.mean(chars):.0f} chars on average (max {max(chars)})")
    print(f"{'network':<10} {'converted':>10} {'parts mean':>11} {'median':>7} {'max':>5} {'ms/post':>8}")
    for name in DEFAULT_TARGETS:
        counts = parts[name] or [0]
        print(
            f"{name:<10} {ok[name]:>4}/{len(posts):<5} {statistics.mean(counts):>11.2f} "
            f"{statistics.median(counts):>7.0f} {max(counts):>5} {1000 * statistics.mean(per_target[name] or [0]):>8.1f}"
        )
    print(
        f"all six networks, one post: median {1000 * statistics.median(per_post):.1f} ms, "
        f"mean {1000 * statistics.mean(per_post):.1f} ms, max {1000 * max(per_post):.1f} ms (no LLM)"
    )
    for line in failures:
        print("failed:", line)


if __name__ == "__main__":
    main()
