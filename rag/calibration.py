"""Abstention calibrated per embedding model: when even the best evidence is weak, or the posts
lack the detail the question asks for, the answer says the corpus does not cover the question
instead of quoting something unrelated.

The decision (`Calibration.decide`, one call from the service) looks at the question and its top
3 posts, in this order:
1. a name the question uses that the corpus never mentions (`unknown_names`: Latin-script names
   such as "SageAttention3", and capitalized Cyrillic ones such as "Сбербанк"; a channel name of
   a top post counts as known), or half or more of a Russian question's terms (`UNKNOWN_SHARE`);
2. an amount asked for in a unit a post has to write ("сколько долларов", "how much memory", "how
   many parameters", "how long") that no sentence of the top posts gives as a number with that unit
   (`rag.sentences.counted_terms`);
3. evidence under both thresholds: the best sentence cosine (the dense model at sentence level;
   its scale differs per model, so its threshold does too) under `min_sentence` AND the best
   IDF-weighted share of the question's terms found in a post under `min_coverage`.
1 and 2 are lexical and model-independent; 3 is calibrated. Measured on the tune half of
tests/data/realistic_qa.jsonl with benchmarks/fusion.py (which prints each rule's share).

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

from rag.sentences import counted_terms, gives_quantity
from rag.text import detect_language, expand_terms, normalize_token, stem, tokenize
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

    def decide(self, question: str, hits: list[Hit], vocab: dict[str, int] | set[str]) -> bool:
        """True when the answer should say the corpus does not cover `question` (the standalone
        question, after follow-up rewriting); `vocab` is the lexical index's token vocabulary."""
        return self.reason(question, hits, vocab) is not None

    def reason(self, question: str, hits: list[Hit], vocab: dict[str, int] | set[str]) -> str | None:
        """Why the corpus does not cover the question, or None when it does."""
        top = hits[:EVIDENCE_HITS]
        missing = missing_detail(
            question, [h.post_text or h.text for h in top], vocab, [h.channel for h in top]
        )
        if missing:
            return missing
        return "weak evidence" if self.abstain(hits) else None

    def abstain(self, hits: list[Hit]) -> bool:
        """True when the evidence is weak: no hits, or the best of the top hits is under both
        thresholds (rule 3; `decide` applies the lexical rules first)."""
        if not hits:
            return True
        top = hits[:EVIDENCE_HITS]
        sentence = max(h.sentence_cosine for h in top)
        coverage = max(h.coverage for h in top)
        return sentence < self.min_sentence and coverage < self.min_coverage


# A name in a question: a word with a capital or a digit inside ("SageAttention3", "gRPC", "BERT"),
# a capitalized word not at the start, a hyphenated compound ("Qwen-Image").
_NAME = re.compile(r"(?<![\w-])(?:[A-Za-z]+[A-Z0-9][\w.]*|[A-Z][a-z]+|[A-Z]{2,}\w*)(?:-[\w.]+)*")


# A Cyrillic name: a capitalized word not at the start of a sentence ("Сбербанк", "Яндекса"); Russian
# capitalizes nothing else. Acronyms ("КПД") are left out: channel titles are acronyms too and are
# not in the index vocabulary ("Что было в канале КПД про квантизацию?" is answerable).
_CYRILLIC_NAME = re.compile(r"(?<![\w-])[А-ЯЁ][а-яё]+(?:-[\w.]+)*")
_SENTENCE_START = re.compile(r"(?:^|[.!?…]\s+|[«\"(]\s*)$")


# A Russian question half of whose terms the corpus never uses asks about something else ("Какой
# рецепт борща?": рецепт is known, борщ is not). Tune half of tests/data/realistic_qa.jsonl: Russian
# answerable questions have at most a third of their terms unknown (paraphrases use everyday
# words), the off-corpus ones it catches 0.5-1.0. Not for English questions: the corpus is mostly
# Russian, so an English question's ordinary words are unknown too (up to 0.56 on answerable ones).
UNKNOWN_SHARE = 0.5


def missing_detail(
    question: str, texts: list[str], vocab: dict[str, int] | set[str], channels: list[str | None] = ()
) -> str | None:
    """What the question asks that the corpus or its top posts (`texts`) do not give, or None:
    "unknown name: X", "words the corpus never uses: …" or "no number of X in the posts" (rules 1
    and 2 of the module docstring)."""
    known = set(vocab)
    for channel in channels:
        known.update(tokenize(channel or "", keep_stopwords=True))
    unknown = unknown_names(question, known)
    if unknown:
        return "unknown name: " + ", ".join(unknown)
    if detect_language(question) == "ru" and not _names(question):
        # a question that names something the corpus knows ("Расскажи подробно про SageAttention")
        # is about the corpus, whatever its other words
        terms = list(dict.fromkeys(tokenize(question)))
        new = [t for t in terms if t not in known and not any(x in known for x in expand_terms([t], "ru"))]
        if terms and len(new) / len(terms) >= UNKNOWN_SHARE:
            return "words the corpus never uses: " + ", ".join(new)
    counted = counted_terms(question)
    # the amount of the thing the question names: "How many parameters does Inf-DiT have?" is not
    # answered by another top post's "трансформер на 1.7B параметров"
    names = [
        m.group(0).casefold() for m in _NAME.finditer(question) if m.start() > 0 or not m.group(0).istitle()
    ]
    about = [t for t in texts if any(n in t.casefold() for n in names)] or texts
    if counted and not gives_quantity(counted, about):
        return "no number of " + counted[0] + " in the posts"
    return None


def _names(question: str) -> list[str]:
    """The names a question uses (Latin-script, and capitalized Cyrillic words not opening a sentence)."""
    out = []
    for match in _NAME.finditer(question):
        name = match.group(0).rstrip(".")
        if not (match.start() == 0 and re.fullmatch(r"[A-Z][a-z]+", name)):  # not the first word
            out.append(name)
    for match in _CYRILLIC_NAME.finditer(question):
        if not _SENTENCE_START.search(question[: match.start()]):
            out.append(match.group(0).rstrip("."))
    return out


def unknown_names(question: str, vocab: dict[str, int] | set[str]) -> list[str]:
    """Names in the question that the corpus never mentions. A name is known when its token is in
    the index, when all its parts are ("Qwen-Image", "SD3.5"), when its glossary translation is
    ("Singapore" of a post's "Сингапур"), or when it is the start of a longer indexed name
    ("ExLlama" of "ExLlamaV3"); a longer name than the corpus has ("SageAttention3" where the
    corpus has SageAttention and SageAttention2) is unknown: the question asks about something the
    posts do not describe."""
    out = []
    for match in _NAME.finditer(question):
        name = match.group(0).rstrip(".")
        if match.start() == 0 and re.fullmatch(r"[A-Z][a-z]+", name):
            continue  # the question's first word
        whole = stem(normalize_token(name))
        parts = [p for p in tokenize(name, keep_stopwords=True) if "-" not in p]
        if whole in vocab or (parts and all(p in vocab for p in parts)):
            continue
        if any(t in vocab for t in expand_terms([whole], "en")):
            continue
        if len(whole) >= 4 and any(token.startswith(whole) for token in vocab):
            continue
        out.append(name)
    for match in _CYRILLIC_NAME.finditer(question):
        name = match.group(0).rstrip(".")
        if _SENTENCE_START.search(question[: match.start()]):
            continue
        parts = [p for p in tokenize(name, keep_stopwords=True) if "-" not in p]
        if parts and all(p in vocab for p in parts):
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
