"""Papers from files: PDF (text extracted with pypdf) and Markdown / plain-text papers.

Title, authors, arXiv id and abstract come from the PDF metadata when it has them, else from the
first page / the header of the text. Authors read from the layout are taken only where the first
page makes them unambiguous (a name list right under the title, names with affiliation marks, or
one name per e-mail block); otherwise they stay unknown (an empty list) rather than a guess such
as a subtitle or an affiliation's city. A paper with an arXiv id replaces that id's stub (the
key is `arxiv:<id>`), so posts that linked the stub now link the full paper.

Text papers are told apart from the page dumps (`page_dump`, priority 80) by a Markdown file
with a heading, or any text with an "Abstract" heading near the top; dumps have neither.
"""

from __future__ import annotations

import io
import logging
import re
from itertools import pairwise

from core.errors import IngestError
from ingest.clean import DATE_TIME, clean_text, is_reactions
from ingest.registry import RawSource, register
from rag.store.records import PaperRecord, SourceBatch

ARXIV_ID = re.compile(r"(?:\barXiv[:\s]\s*|arxiv\.org/(?:abs|pdf)/)(\d{4}\.\d{4,5})(?:v\d+)?", re.I)
ARXIV_FILENAME = re.compile(r"(?:^|[^\d.])(\d{4}\.\d{4,5})(?:v\d+)?\.(?:pdf|md|markdown|txt)$", re.I)
ABSTRACT_LINE = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]*)?(?:\*\*|__)?(?:abstract|аннотация)\b(?:\*\*|__)?[ \t]*(?:[:.—–-][ \t]*)?(?=\S|$)",
    re.I | re.M,
)
ATX_HEADING = re.compile(r"^[ \t]{0,3}(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
SETEXT_HEADING = re.compile(r"^(?! {4})(\S.*)\n[ \t]*(=+|-+)[ \t]*$", re.M)
AUTHORS_LINE = re.compile(
    r"^[ \t]*(?:\*\*|__)?(?:authors?|авторы)(?:\*\*|__)?[ \t]*:[ \t]*(?:\*\*|__)?[ \t]*(.+)$", re.I | re.M
)
SECTION_END = re.compile(
    r"\n[ \t]*(?:#{1,6}[ \t]+\S|(?:\d+\.?|I\.?)[ \t]+(?:Introduction|INTRODUCTION)\b|"
    r"(?:Introduction|INTRODUCTION|Keywords|Index Terms|CCS Concepts)\b)"
)
FOOTNOTE_MARKS = re.compile(r"[\d*†‡§¶∗⋆,]+$")
# "Alice Smith1* Bob Jones2 Carol Wu1": affiliation marks glued to each name also separate them.
MARK_THEN_NAME = re.compile(r"(?<=[^\W\d_])[\d*†‡§¶∗⋆]+(?:,[\d*†‡§¶∗⋆]+)*\s+(?=[^\W\d_])")
HAS_MARK = re.compile(r"[^\W\d_][\d*†‡§¶∗⋆]")
EMAIL = re.compile(r"\S+@\S+\.\w+|^\{[^}]+\}@")
NAME = re.compile(r"^[^\W\d_][\w.'’-]*(?:\s+[^\W\d_][\w.'’-]*){1,3}$")
NAME_PARTICLES = {"van", "von", "de", "der", "den", "da", "di", "du", "la", "le", "dos", "bin", "al", "ibn"}
AFFILIATION = re.compile(
    r"\b(?:university|institute|laboratory|lab|department|school|college|inc|research|cent(?:er|re)|"
    r"academy|google|meta|microsoft|университет|институт|лаборатория)\b",
    re.I,
)
BAD_PDF_TITLES = re.compile(r"^(?:untitled|microsoft word - .*|.*\.(?:dvi|pdf|docx?|tex))$", re.I)
BOILERPLATE = re.compile(
    r"(?:preprint|under review|conference paper|proceedings|workshop|arxiv:|copyright|©|"
    r"licen[cs]e|published as|accepted (?:at|to)|^\d+$)",
    re.I,
)
MAX_ABSTRACT = 4000


def split_authors(line: str) -> list[str]:
    """'A. Smith1, B. Jones2* and C. Wu†' → names; [] unless every piece looks like a name."""
    line = re.sub(r"\s+", " ", line).strip()
    pieces = [p.strip() for p in re.split(r",|;|\band\b|&|·", line) if p.strip()]
    names = [FOOTNOTE_MARKS.sub("", p).strip() for p in pieces]
    if not names or not all(_is_name(n) for n in names):
        return []
    return names


def _names(line: str) -> tuple[list[str], bool]:
    """(names on the line, whether they carry affiliation marks); ([], False) if not a name list."""
    marked = bool(HAS_MARK.search(line))
    return split_authors(MARK_THEN_NAME.sub(", ", line)), marked


def _is_affiliation(line: str) -> bool:
    return bool(AFFILIATION.search(line) or EMAIL.search(line))


def layout_authors(lines: list[str]) -> list[str]:
    """Authors from the first-page lines under the title, or [] when the layout does not say.

    Taken: the first name list within the next four lines that has two or more names, or names
    with affiliation marks, plus the lines continuing it; or a single name followed by an
    affiliation or e-mail line, and each later one-name line followed by an institution (name /
    affiliation blocks); or, when the blocks end in e-mail addresses, the first line of each.
    Not taken: a lone capitalized line (a subtitle, a city).
    """
    header: list[str] = []
    for line in lines[:20]:
        if ABSTRACT_LINE.match(line) or SECTION_END.match("\n" + line):
            break
        header.append(line)
    blocks = _email_blocks(header)
    if blocks:
        return blocks
    for index, line in enumerate(header[:4]):
        if _is_affiliation(line):
            return []  # affiliations before any name: the names are not in reading order
        names, marked = _names(line)
        following = header[index + 1] if index + 1 < len(header) else ""
        if names and (len(names) > 1 or marked or _is_affiliation(following)):
            if len(names) == 1 and not marked:
                # Name / affiliation blocks: every later one-name line followed by an institution.
                return [*names, *_interleaved_names(header[index + 2 :])]
            for more in header[index + 1 : index + 4]:
                if not line.rstrip().endswith((",", "and")) and not HAS_MARK.search(more):
                    break
                extra, _ = _names(more)
                if not extra:
                    break
                names, line = names + extra, more
            return list(dict.fromkeys(names))
    return []


def _interleaved_names(lines: list[str]) -> list[str]:
    found = []
    for line, following in pairwise(lines):
        names, _ = _names(line)
        if len(names) == 1 and AFFILIATION.search(following):
            found.append(names[0])
    return found


def _email_blocks(header: list[str]) -> list[str]:
    """One author per block of lines that ends with an e-mail address (name, affiliation, e-mail)."""
    ends = [i for i, line in enumerate(header) if EMAIL.search(line)]
    if len(ends) < 2:
        return []
    names: list[str] = []
    start = 0
    for end in ends:
        block = header[start:end]
        found, _ = _names(block[0]) if block else ([], False)
        if len(found) != 1:
            return []
        names.append(found[0])
        start = end + 1
    return names


def _title_end(lines: list[str], title: str) -> int:
    """Index of the last first-page line of a title known from the metadata; -1 if not found."""
    wanted = re.sub(r"\W+", "", title).casefold()
    for start in range(min(len(lines), 15)):
        seen = ""
        for end in range(start, min(len(lines), start + 4)):
            seen += re.sub(r"\W+", "", lines[end]).casefold()
            if seen == wanted:
                return end
            if not wanted.startswith(seen):
                break
    return -1


def _is_name(text: str) -> bool:
    if not NAME.match(text) or AFFILIATION.search(text):
        return False
    words = text.split()
    # Every word capitalized, except particles ("Ludwig van Beethoven", "Diego de la Vega").
    return (
        words[0][0].isupper()
        and words[-1][0].isupper()
        and all(w[0].isupper() or w.lower() in NAME_PARTICLES for w in words)
    )


def _arxiv_id(*texts: str | None) -> str | None:
    for text in texts:
        match = ARXIV_ID.search(text or "")
        if match:
            return match.group(1)
    return None


def _abstract(text: str) -> str | None:
    match = ABSTRACT_LINE.search(text)
    if match is None:
        return None
    rest = text[match.end() :]
    end = SECTION_END.search(rest)
    body = rest[: end.start()] if end else rest
    body = re.sub(r"-\n(?=[a-zа-я])", "", body)  # hyphenation at line ends
    body = re.sub(r"\s+", " ", body).strip()
    return body[:MAX_ABSTRACT] or None


def _filename_arxiv(source: RawSource) -> str | None:
    name = source.path.name if source.path else source.location.rsplit("/", 1)[-1]
    match = ARXIV_FILENAME.search(name)
    return match.group(1) if match else None


def _paper_url(arxiv_id: str | None) -> str | None:
    return f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


@register
class PdfPaper:
    name = "pdf"
    priority = 30

    def detect(self, source: RawSource) -> bool:
        return b"%PDF-" in source.data[:1024]

    def parse(self, source: RawSource) -> SourceBatch:
        # pypdf logs every repair it makes to a damaged file; for a user that is noise.
        logging.getLogger("pypdf").setLevel(logging.ERROR)
        pages, meta_title, meta_author, meta_subject = self._read(source)
        full_text = clean_text("\n\n".join(pages))
        if not full_text:
            raise IngestError(f"{source.location}: PDF has no extractable text (scanned images without OCR?)")
        first = clean_text(pages[0]) if pages else ""
        title = meta_title if meta_title and not BAD_PDF_TITLES.match(meta_title) else None
        lines = [line.strip() for line in first.splitlines() if line.strip()]
        title_index = -1
        if title is None:
            for index, line in enumerate(lines[:15]):
                if len(line) >= 8 and not BOILERPLATE.search(line) and not ABSTRACT_LINE.match(line):
                    title, title_index = line, index
                    break
            # Titles wrap: take the next line too when it continues the sentence.
            if title and title_index + 1 < len(lines):
                following = lines[title_index + 1]
                if title.endswith((":", "-", "–")) or following[:1].islower():
                    title, title_index = f"{title} {following}", title_index + 1
        if title is not None and title_index < 0:
            title_index = _title_end(lines, title)
        authors = split_authors(meta_author) if meta_author else []
        if not authors and title_index >= 0:
            authors = layout_authors(lines[title_index + 1 :])
        arxiv_id = _arxiv_id(meta_subject, meta_title, first) or _filename_arxiv(source)
        paper = PaperRecord(
            title=title,
            authors=authors,
            arxiv_id=arxiv_id,
            url=_paper_url(arxiv_id),
            abstract=_abstract(full_text),
            full_text=full_text,
            source_file=source.location,
        )
        return SourceBatch(location=source.location, format=self.name, papers=[paper])

    def _read(self, source: RawSource) -> tuple[list[str], str | None, str | None, str | None]:
        from pypdf import PdfReader
        from pypdf.errors import DependencyError, FileNotDecryptedError

        try:
            reader = PdfReader(io.BytesIO(source.data), strict=False)
            if reader.is_encrypted and not reader.decrypt(""):
                raise IngestError(f"{source.location}: encrypted PDF; it needs a password to extract text")
            meta = reader.metadata or {}
            pages = [page.extract_text() or "" for page in reader.pages]
        except IngestError:
            raise
        except (FileNotDecryptedError, DependencyError) as exc:
            raise IngestError(
                f"{source.location}: encrypted PDF that cannot be read ({_one_line(exc)})"
            ) from exc
        except Exception as exc:
            # A corrupt PDF makes pypdf raise nearly anything (PdfReadError, KeyError, ValueError,
            # RecursionError, ...): all of them mean "this file cannot be read".
            raise IngestError(f"{source.location}: cannot read PDF ({_one_line(exc)})") from exc

        def field(key: str) -> str | None:
            try:
                value = meta.get(key)
            except Exception:  # broken indirect objects in /Info
                return None
            value = str(value).strip() if value is not None else ""
            return value or None

        return pages, field("/Title"), field("/Author"), field("/Subject")


@register
class TextPaper:
    name = "paper-text"
    priority = 40

    def detect(self, source: RawSource) -> bool:
        try:
            head = source.data[:20_000].decode("utf-8-sig")
        except UnicodeDecodeError:
            return False
        if head.lstrip().startswith(("{", "<", "%PDF")):
            return False
        name = (source.path.name if source.path else source.location).lower()
        if name.endswith((".md", ".markdown")) and (ATX_HEADING.search(head) or SETEXT_HEADING.search(head)):
            return True
        if not ABSTRACT_LINE.search(head[:10_000]):
            return False
        # A captured channel page quoting a paper's "Abstract:" is still a page: it has post dates
        # or reaction counters, which a paper never has.
        lines = [line.strip() for line in head.splitlines()[:300]]
        return not any(DATE_TIME.match(line) or is_reactions(line) for line in lines)

    def parse(self, source: RawSource) -> SourceBatch:
        text = clean_text(source.text())
        if not text:
            raise IngestError(f"{source.location}: empty paper text")
        abstract_at = ABSTRACT_LINE.search(text)
        header = text[: abstract_at.start()] if abstract_at else text[:2000]
        title = self._title(text, abstract_at.start() if abstract_at else None)
        authors_match = AUTHORS_LINE.search(header)
        authors = split_authors(_plain(authors_match.group(1))) if authors_match else []
        if not authors and title:
            after_title = header.split(title, 1)[-1] if title in header else ""
            for line in after_title.splitlines()[:4]:
                line = _plain(line).strip()
                if line and not line.startswith("#"):
                    authors = split_authors(line)
                    break
        arxiv_id = _arxiv_id(header) or _filename_arxiv(source)
        paper = PaperRecord(
            title=title,
            authors=authors,
            arxiv_id=arxiv_id,
            url=_paper_url(arxiv_id),
            abstract=_abstract(_plain(text)),
            full_text=text,
            source_file=source.location,
        )
        return SourceBatch(location=source.location, format=self.name, papers=[paper])

    @staticmethod
    def _title(text: str, abstract_start: int | None) -> str | None:
        headings = [(m.start(), m.group(2)) for m in ATX_HEADING.finditer(text)]
        headings += [(m.start(), m.group(1)) for m in SETEXT_HEADING.finditer(text)]
        for start, heading in sorted(headings):
            if not ABSTRACT_LINE.match(heading):
                if abstract_start is None or start < abstract_start:
                    return _plain(heading).strip() or None
                break
        # No heading before the abstract: the first line of the file is the title.
        for line in text.splitlines():
            line = _plain(line).strip().lstrip("#").strip()
            if line and not ABSTRACT_LINE.match(line):
                return line[:300]
            if ABSTRACT_LINE.match(line):
                break
        return None


def _plain(markdown: str) -> str:
    """Markdown inline markup → text: links keep their label, emphasis and code marks go."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    return re.sub(r"(\*\*|__|`)", "", text)
