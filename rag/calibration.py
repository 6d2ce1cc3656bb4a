"""Abstention calibrated per embedding model: when even the best evidence is weak, the answer says
the corpus does not cover the question instead of quoting something unrelated.

The evidence of a question is two numbers over its top hits: the best sentence cosine (the dense
model at sentence level; its scale differs per model, so its threshold does too) and the best
IDF-weighted share of the question's terms found in a post (lexical; model-independent). The rule:
abstain when the sentence cosine is under `min_sentence` AND the term coverage under
`min_coverage`; a question sharing its rare terms with a post, or close in meaning to one of its
sentences, is answered.

Thresholds are keyed by the model identity (`ModelSpec.identity`), so changing the model can never
reuse another model's thresholds:
- `<data_dir>/index/calibration.json`: written by `python benchmarks/fusion.py --save` for this
  data dir's corpus (tune half of a question file);
- `rag/calibration.json` (shipped): measured on the sample corpus' tune half for the bundled models;
- otherwise a conservative lexical-only rule, and `Calibration.note` says so.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from rag.text import normalize_token, stem, tokenize
from rag.types import Hit

log = logging.getLogger(__name__)
FILE = "calibration.json"
EVIDENCE_HITS = 3  # the decision looks at the top 3 posts


@dataclass(frozen=True)
class Calibration:
    min_sentence: float
    min_coverage: float
    source: str  # "index", "shipped" or "default"
    measured_on: str = ""

    @property
    def note(self) -> str | None:
        if self.source != "default":
            return None
        return (
            "no abstention calibration for this embedding model: abstaining on term overlap only "
            "(run python benchmarks/fusion.py QUESTIONS --data-dir DIR --save to calibrate)"
        )

    def abstain(self, hits: list[Hit], unknown: list[str] | None = None) -> bool:
        """True when the corpus does not cover the question: it names something the corpus never
        mentions (`unknown`, from `unknown_names`), or its best evidence is under both thresholds."""
        if not hits or unknown:
            return True
        top = hits[:EVIDENCE_HITS]
        sentence = max(h.sentence_cosine for h in top)
        coverage = max(h.coverage for h in top)
        return sentence < self.min_sentence and coverage < self.min_coverage


# A name in a question: a word with a capital or a digit inside ("SageAttention3", "gRPC", "BERT"),
# a capitalized word not at the start, a hyphenated compound ("Qwen-Image").
_NAME = re.compile(r"(?<![\w-])(?:[A-Za-z]+[A-Z0-9][\w.]*|[A-Z][a-z]+|[A-Z]{2,}\w*)(?:-[\w.]+)*")


def unknown_names(question: str, vocab: dict[str, int] | set[str]) -> list[str]:
    """Latin-script names in the question that the corpus never mentions. A name is known when its
    token is in the index, when all its parts are ("Qwen-Image", "SD3.5"), or when it is the start
    of a longer indexed name ("ExLlama" of "ExLlamaV3"); a longer name than the corpus has
    ("SageAttention3" where the corpus has SageAttention and SageAttention2) is unknown: the question
    asks about something the posts do not describe."""
    out = []
    for match in _NAME.finditer(question):
        name = match.group(0).rstrip(".")
        if match.start() == 0 and re.fullmatch(r"[A-Z][a-z]+", name):
            continue  # the question's first word
        whole = stem(normalize_token(name))
        parts = [p for p in tokenize(name, keep_stopwords=True) if "-" not in p]
        if whole in vocab or (parts and all(p in vocab for p in parts)):
            continue
        if len(whole) >= 4 and any(token.startswith(whole) for token in vocab):
            continue
        out.append(name)
    return out


# Without a calibration the cosine proves nothing (scales differ: MiniLM gives unrelated Russian
# texts 0.4-0.5, e5 gives everything 0.7+), so only term coverage decides: the pre-e5 rule,
# measured on tests/data/qa_sample.jsonl (answerable >= 0.37 for 59 of 60, off-topic <= 0.27).
DEFAULT = Calibration(min_sentence=2.0, min_coverage=0.3, source="default")


def _read(path_or_text: str, identity: str, source: str) -> Calibration | None:
    try:
        table = json.loads(path_or_text)
        entry = table[identity]
        return Calibration(
            float(entry["min_sentence"]),
            float(entry["min_coverage"]),
            source,
            str(entry.get("measured_on", "")),
        )
    except (KeyError, TypeError, ValueError, json.JSONDecodeError):
        return None


def load(index_dir: Path, identity: str) -> Calibration:
    """This model's calibration: the data dir's own, else the shipped one, else the safe default."""
    local = Path(index_dir) / FILE
    if local.exists():
        try:
            found = _read(local.read_text(encoding="utf-8"), identity, "index")
        except OSError:
            found = None
        if found is not None:
            return found
    shipped = resources.files("rag").joinpath(FILE)
    if shipped.is_file():
        found = _read(shipped.read_text(encoding="utf-8"), identity, "shipped")
        if found is not None:
            return found
    log.info("no abstention calibration for %s; using the lexical-only default", identity)
    return DEFAULT


def save(index_dir: Path, identity: str, min_sentence: float, min_coverage: float, measured_on: str) -> Path:
    """Store thresholds for `identity` in the data dir's index folder (other models' entries kept)."""
    path = Path(index_dir) / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        table = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, json.JSONDecodeError):
        table = {}
    entry = Calibration(round(min_sentence, 4), round(min_coverage, 4), "index", measured_on)
    table[identity] = {k: v for k, v in asdict(entry).items() if k != "source"}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(table, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    return path
