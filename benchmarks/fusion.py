"""Which fusion of BM25 and dense results ranks best on a question file? Prints hit@1/hit@5/MRR per
language for reciprocal-rank fusion with several dense weights and for a convex combination of
normalized scores, so the default in rag/retrieve.py is chosen by measurement.

    python benchmarks/fusion.py tests/data/qa_sample.jsonl --data-dir DATA   (after research-bot demo)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag.evaluate import _doc_texts, load_questions
from rag.retrieve import CANDIDATES, convex_fusion, parse_query, reciprocal_rank_fusion
from rag.service import RagConfig, RagService
from rag.store import open_store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("questions", type=Path)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    args = parser.parse_args()
    store = open_store(f"sqlite:///{(args.data_dir / 'research-bot.sqlite3').resolve()}")
    service = RagService.open(RagConfig(data_dir=args.data_dir), store)
    retriever = service.retriever()
    questions = load_questions(args.questions)
    prepared = []
    for q in questions:
        query = parse_query(q.q)
        prepared.append(
            (
                q,
                query,
                retriever.lexical(query, None, CANDIDATES),
                retriever.dense(query, None, CANDIDATES)[0],
            )
        )
    variants = {"bm25": lambda lex, den: dict(lex), "dense": lambda lex, den: dict(den)}
    for w in (1.0, 0.5, 0.35, 0.2, 0.1):
        variants[f"rrf w={w}"] = lambda lex, den, w=w: reciprocal_rank_fusion(lex, den, 1.0, w)
    for w in (0.5, 0.3, 0.2, 0.1):
        variants[f"convex w={w}"] = lambda lex, den, w=w: convex_fusion(lex, den, 1.0, w)
    texts: dict = {}
    print(
        f"{'variant':<14}"
        + "".join(f"{lang + ' h@1':>9}{lang + ' h@5':>9}{lang + ' MRR':>9}" for lang in ("ru", "en"))
    )
    for name, fuse in variants.items():
        ranks: dict[str, list] = {"ru": [], "en": []}
        for q, query, lex, den in prepared:
            ranked = sorted(fuse(lex, den).items(), key=lambda kv: -kv[1])
            hits = retriever._materialize(ranked, 5, query, None)
            _doc_texts(service, hits, texts)
            rank = next(
                (
                    h.rank
                    for h in hits
                    if any(
                        e.casefold() in texts.get(("post", h.post_id), h.text.casefold()) for e in q.expect
                    )
                ),
                None,
            )
            ranks.setdefault(q.lang, []).append(rank)
        row = f"{name:<14}"
        for lang in ("ru", "en"):
            r = ranks[lang]
            n = len(r) or 1
            row += f"{sum(x == 1 for x in r) / n:>9.3f}{sum(x is not None for x in r) / n:>9.3f}"
            row += f"{sum(1 / x for x in r if x) / n:>9.3f}"
        print(row)


if __name__ == "__main__":
    main()
