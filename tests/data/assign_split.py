"""Assign the fixed tune/report halves of tests/data/realistic_qa.jsonl (run once, output committed).

Stratified by kind (and, for off-corpus questions, by near/far), seeded, so every kind is split
evenly; a follow-up question stays in the half of the question it follows. Re-running it gives the
same halves: `python tests/data/assign_split.py tests/data/realistic_qa.jsonl`.
"""

from __future__ import annotations

import json
import random
import sys
from collections import defaultdict
from pathlib import Path

SEED = 13


def assign(rows: list[dict]) -> None:
    groups: dict[str, list[list[dict]]] = defaultdict(list)
    units: dict[str, list[dict]] = {}
    for row in rows:  # a follow-up joins the unit of the question it follows
        units.setdefault(row.get("after") or row["id"], []).append(row)
    for unit in units.values():
        head = unit[0]
        stratum = head["kind"] + (
            ("-near" if head.get("near") else "-far") if head["kind"] == "off-corpus" else ""
        )
        groups[stratum].append(unit)
    rng = random.Random(SEED)
    for stratum in sorted(groups):
        members = groups[stratum]
        rng.shuffle(members)
        for i, unit in enumerate(members):
            for row in unit:
                row["split"] = "tune" if i % 2 == 0 else "report"


def main(path: str) -> None:
    file = Path(path)
    lines = file.read_text(encoding="utf-8").splitlines()
    header = [line for line in lines if line.startswith("#")]
    rows = [json.loads(line) for line in lines if line.strip() and not line.startswith("#")]
    assign(rows)
    body = [json.dumps(row, ensure_ascii=False) for row in rows]
    file.write_text("\n".join(header + body) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
