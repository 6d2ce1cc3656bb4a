"""arXiv metadata for paper stubs: `research-bot ingest --fetch-papers`.

Posts mention arXiv ids; ingest stores them as stubs (id and URL only). This module asks the
arXiv API (`export.arxiv.org/api/query?id_list=...`, an Atom feed) for their title, authors and
abstract, in batches at arXiv's requested rate (one request per 3 seconds), and writes them
back through the store. Network only here; offline it fails with one line and nothing else breaks.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET

import httpx

from core.errors import IngestError
from rag.store import IngestSummary, Store
from rag.store.papers import arxiv_stub_ids, save_papers
from rag.store.records import PaperRecord

DEFAULT_API_URL = "https://export.arxiv.org/api/query"
ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV_NS = "{http://arxiv.org/schemas/atom}"
ENTRY_ID = re.compile(r"arxiv\.org/abs/(\d{4}\.\d{4,5})(?:v\d+)?$")
USER_AGENT = "research-bot/0.1 (paper metadata; one request per 3 s)"


def _clean(text: str | None) -> str | None:
    value = re.sub(r"\s+", " ", text or "").strip()
    return value or None


def parse_atom(xml: str, source: str = "arXiv") -> list[PaperRecord]:
    """Papers in an arXiv API Atom feed; error entries (bad ids) are left out."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise IngestError(f"{source}: answer is not an Atom feed ({exc})") from exc
    if root.tag != f"{ATOM}feed":
        raise IngestError(f"{source}: answer is not an Atom feed (root element {root.tag!r})")
    papers = []
    for entry in root.findall(f"{ATOM}entry"):
        match = ENTRY_ID.search(_clean(entry.findtext(f"{ATOM}id")) or "")
        if match is None:  # http://arxiv.org/api/errors#... for ids arXiv does not know
            continue
        arxiv_id = match.group(1)
        doi = _clean(entry.findtext(f"{ARXIV_NS}doi"))
        papers.append(
            PaperRecord(
                title=_clean(entry.findtext(f"{ATOM}title")),
                authors=[
                    n
                    for n in (_clean(a.findtext(f"{ATOM}name")) for a in entry.findall(f"{ATOM}author"))
                    if n
                ],
                arxiv_id=arxiv_id,
                doi=doi,
                url=f"https://arxiv.org/abs/{arxiv_id}",
                abstract=_clean(entry.findtext(f"{ATOM}summary")),
            )
        )
    return papers


def fetch_arxiv(ids: list[str], *, client: httpx.Client, api_url: str = DEFAULT_API_URL) -> list[PaperRecord]:
    """One API request for up to a few hundred ids."""
    params = {"id_list": ",".join(ids), "max_results": str(len(ids))}
    try:
        response = client.get(api_url, params=params)
    except httpx.HTTPError as exc:
        raise IngestError(f"cannot reach arXiv at {api_url}: {str(exc) or type(exc).__name__}") from exc
    if response.status_code != 200:
        raise IngestError(f"arXiv answered HTTP {response.status_code} for {api_url}")
    return parse_atom(response.text, api_url)


def complete_paper_stubs(
    store: Store,
    *,
    api_url: str = DEFAULT_API_URL,
    client: httpx.Client | None = None,
    batch_size: int = 50,
    delay_s: float = 3.0,
) -> IngestSummary:
    """Fetch and store metadata for every arXiv stub; each batch is saved as soon as it arrives."""
    ids = arxiv_stub_ids(store)
    summary = IngestSummary(changed_post_ids=[])
    if not ids:
        return summary
    own_client = client is None
    http = client or httpx.Client(timeout=httpx.Timeout(30.0), headers={"User-Agent": USER_AGENT})
    try:
        for start in range(0, len(ids), batch_size):
            if start:
                time.sleep(delay_s)
            try:
                papers = fetch_arxiv(ids[start : start + batch_size], client=http, api_url=api_url)
            except IngestError as exc:
                done = f" (metadata for {start} of {len(ids)} stubs saved)" if start else ""
                raise IngestError(f"{exc}{done}") from exc
            summary.add(save_papers(store, papers))
    finally:
        if own_client:
            http.close()
    return summary


def fetch_papers_into(report, store: Store, *, api_url: str = DEFAULT_API_URL, **kwargs) -> None:
    """`ingest --fetch-papers`: complete the stubs after an ingest; a failure is one more report line."""
    try:
        report.summary.add(complete_paper_stubs(store, api_url=api_url, **kwargs))
    except IngestError as exc:
        report.fail(str(exc))
