"""Telegram bot under load, loopback only: N simulated users send M messages through the Bot API
emulator to the real bot (real store, retrieval and answers on a small export, no LLM).

    python benchmarks/bot_load.py [--users 50] [--messages 200] [--spread 5] [--rate-limit 6]

Prints answered / rate-limited / lost / duplicated counts and the time to first reply (typing or
text), first text and final reply, p50/p95. Stops by itself (a deadline bounds the run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bot.services import build_services
from ingest.pipeline import ingest_locations
from tests.bot.corpus import CHANNEL, write_export
from tests.bot.harness import make_settings
from tests.bot.load import run_load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--spread", type=float, default=5.0, help="seconds over which messages are sent")
    parser.add_argument("--rate-limit", type=int, default=6, help="messages per user per window")
    parser.add_argument("--window", type=float, default=30.0, help="rate-limit window, seconds")
    parser.add_argument("--deadline", type=float, default=300.0, help="stop after this many seconds")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.monotonic()
        services = build_services(make_settings(root / "data"))
        ingest_locations(services.store, [str(write_export(root / "result.json"))], channel_hint=CHANNEL)
        services.rag.sync()
        services.rag.search("warm up", k=1)
        print(f"setup (store, model, index): {time.monotonic() - started:.1f} s")
        try:
            report = asyncio.run(
                run_load(
                    services,
                    users=args.users,
                    messages=args.messages,
                    spread_s=args.spread,
                    deadline_s=args.deadline,
                    rate_limit_messages=args.rate_limit,
                    rate_limit_window_s=args.window,
                    stream_edit_interval_s=1.0,
                )
            )
        finally:
            services.close()
    print("\n".join(report.lines()))
    if report.lost or report.duplicated:
        sys.exit(1)


if __name__ == "__main__":
    main()
