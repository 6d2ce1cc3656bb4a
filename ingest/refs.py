"""Paper references in post text and links: arXiv ids, DOIs, and well-known paper URLs."""

from __future__ import annotations

import re

from rag.store.records import PaperRecord

_ARXIV_URL = re.compile(r"arxiv\.org/(?:abs|pdf|html)/(\d{4}\.\d{4,5})(?:v\d+)?", re.I)
_ARXIV_TEXT = re.compile(r"\barXiv[:\s]\s*(\d{4}\.\d{4,5})(?:v\d+)?", re.I)
_HF_PAPERS = re.compile(r"huggingface\.co/papers/(\d{4}\.\d{4,5})", re.I)
_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"<>)\]]+)", re.I)


def find_paper_refs(text: str, links: list[str]) -> list[PaperRecord]:
    """Paper stubs for every arXiv id / DOI mentioned, in order of first mention, no repeats."""
    haystack = "\n".join([text, *links])
    found: dict[str, PaperRecord] = {}
    for pattern in (_ARXIV_URL, _HF_PAPERS, _ARXIV_TEXT):
        for match in pattern.finditer(haystack):
            arxiv_id = match.group(1)
            found.setdefault(
                f"arxiv:{arxiv_id}", PaperRecord(arxiv_id=arxiv_id, url=f"https://arxiv.org/abs/{arxiv_id}")
            )
    for match in _DOI.finditer(haystack):
        doi = match.group(1).rstrip(".,;")
        if "arxiv" in doi.lower():
            continue
        found.setdefault(f"doi:{doi.lower()}", PaperRecord(doi=doi, url=f"https://doi.org/{doi}"))
    return list(found.values())
