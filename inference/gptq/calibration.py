"""Calibration text for GPTQ: English prose available offline, user files, and the mixed default.

Boundary: strings in, strings out; no tokenizer, no model, no store (the CLI passes corpus texts in).

Why a mix: SmolLM2 is English-only, and calibrating it on the Russian corpus alone measured worse
than round-to-nearest (issue 14: KL 0.71 vs RTN 0.50), while the corpus is the domain the model
will answer about. English prose comes from the long descriptions in installed packages' metadata
(several hundred KB in this venv, no download, no overlap with the README the benchmark scores on).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from inference.errors import QuantizeError

# packages whose metadata carries a long English description; missing ones are skipped
ENGLISH_PACKAGES = (
    "fastapi", "pydantic", "httpx", "typer", "rich", "SQLAlchemy", "alembic", "numpy", "tqdm",
    "aiohttp", "uvicorn", "beautifulsoup4", "lxml", "pypdf", "safetensors", "tokenizers", "hypothesis",
    "pytest", "jsonschema", "openai", "aiogram", "huggingface_hub", "transformers", "accelerate", "regex",
)  # fmt: skip


def english_texts() -> list[str]:
    """Paragraphs of the installed packages' long descriptions (README-like English prose)."""
    texts: list[str] = []
    for name in ENGLISH_PACKAGES:
        try:
            # the METADATA file's body, read as text: `metadata.metadata(name).get_payload()` is
            # empty once LiteLLM is imported (it swaps in importlib_metadata's message adapter)
            raw = metadata.distribution(name).read_text("METADATA") or ""
        except metadata.PackageNotFoundError:
            continue
        body = raw.replace("\r\n", "\n").partition("\n\n")[2]
        texts += [t for t in body.split("\n\n") if t.strip()]
    return texts


def file_texts(paths: Sequence[Path]) -> list[str]:
    """Paragraphs (blank-line separated) of UTF-8 text files; one clear error per unreadable file."""
    texts: list[str] = []
    for path in paths:
        try:
            body = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise QuantizeError(
                f"--calib {path}: cannot read it as UTF-8 text ({exc.__class__.__name__})"
            ) from None
        texts += [t for t in body.split("\n\n") if t.strip()]
    if not texts:
        raise QuantizeError(f"--calib {', '.join(map(str, paths))}: the files hold no text to calibrate on")
    return texts


def mix(*sources: Sequence[str]) -> list[str]:
    """Interleave the sources, each cut to the same number of characters (the smallest source's),
    so no language dominates the calibration windows by sheer volume. Empty sources are ignored."""
    sources = tuple(s for s in sources if any(t.strip() for t in s))
    if not sources:
        return []
    budget = min(sum(len(t) for t in s) for s in sources)
    cut: list[list[str]] = []
    for source in sources:
        taken, size = [], 0
        for text in source:
            if size >= budget:
                break
            taken.append(text)
            size += len(text)
        cut.append(taken)
    out: list[str] = []
    for i in range(max(len(c) for c in cut)):
        out += [c[i] for c in cut if i < len(c)]
    return out
