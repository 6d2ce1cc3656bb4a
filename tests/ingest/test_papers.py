"""Papers: PDF text extraction (metadata and first-page heuristics), Markdown / plain-text papers,
bad PDFs as one line, and a paper replacing the stub a post linked to."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core.errors import IngestError
from ingest.parsers.papers import PdfPaper, TextPaper, split_authors
from ingest.pipeline import ingest_locations
from ingest.registry import RawSource, detect
from rag.store.models import Paper, PostPaper
from tests.ingest.exports import message, write_export
from tests.ingest.fuzz import check_parser, mutations
from tests.ingest.pdfs import encrypt_pdf, make_pdf

# lxml elements are falsy when childless: `el or other` is a bug, so the warning fails the test.
pytestmark = pytest.mark.filterwarnings("error::FutureWarning")

FIRST_PAGE = [
    "arXiv:2410.02367v3 [cs.LG] 3 Oct 2024",
    "SageAttention: Accurate 8-Bit Attention for",
    "plug-and-play inference acceleration",
    "Jintao Zhang1, Jia Wei2 and Jianfei Chen1*",
    "Abstract",
    "The transformer architecture predominates across various",
    "models. We propose SageAttention, an efficient quanti-",
    "zation method for attention.",
    "1 Introduction",
    "Attention has quadratic cost.",
]
MARKDOWN = """# QuaRot: Outlier-Free 4-Bit Inference in Rotated LLMs

**Authors:** Saleh Ashkboos, Amirkeivan Mohtashami, Maximilian L. Croci

arXiv: [2404.00456](https://arxiv.org/abs/2404.00456)

## Abstract

We introduce QuaRot, a new **quantization** scheme based on rotations,
which quantizes all weights, activations and KV cache in 4 bits.

## 1. Introduction

Large language models ... see also arXiv:2210.17323 (GPTQ).
"""


def _source(path):
    return RawSource(str(path), path.read_bytes(), path=path)


def test_pdf_title_authors_arxiv_abstract_from_first_page(tmp_path):
    path = tmp_path / "sage.pdf"
    path.write_bytes(make_pdf([FIRST_PAGE, ["Second page: results."]]))
    source = _source(path)
    assert detect(source).name == "pdf"
    paper = detect(source).parse(source).papers[0]
    assert paper.title == "SageAttention: Accurate 8-Bit Attention for plug-and-play inference acceleration"
    assert paper.authors == ["Jintao Zhang", "Jia Wei", "Jianfei Chen"]
    assert paper.arxiv_id == "2410.02367" and paper.url == "https://arxiv.org/abs/2410.02367"
    assert paper.abstract == (
        "The transformer architecture predominates across various models. "
        "We propose SageAttention, an efficient quantization method for attention."
    )
    assert "Attention has quadratic cost." in paper.full_text and "Second page: results." in paper.full_text
    assert paper.source_file == str(path)


def test_pdf_metadata_wins_and_arxiv_id_from_file_name(tmp_path):
    path = tmp_path / "2306.00978v5.pdf"
    path.write_bytes(
        make_pdf(
            [["Some running header text", "Body of the paper without stamp."]],
            info={
                "Title": "AWQ: Activation-aware Weight Quantization",
                "Author": "Ji Lin; Jiaming Tang; Song Han",
            },
        )
    )
    paper = PdfPaper().parse(_source(path)).papers[0]
    assert paper.title == "AWQ: Activation-aware Weight Quantization"
    assert paper.authors == ["Ji Lin", "Jiaming Tang", "Song Han"]
    assert paper.arxiv_id == "2306.00978"


@pytest.mark.parametrize(
    "kind, problem",
    [
        ("encrypted", "encrypted PDF"),
        ("corrupt", "cannot read PDF"),
        ("truncated", "cannot read PDF"),
        ("no-text", "no extractable text"),
    ],
)
def test_bad_pdfs_are_one_line(tmp_path, kind, problem):
    good = make_pdf([FIRST_PAGE])
    data = {
        "encrypted": encrypt_pdf(good, "secret"),
        "corrupt": b"%PDF-1.7\n" + bytes(range(256)) * 8,
        "truncated": good[:60],
        "no-text": make_pdf([[]]),
    }[kind]
    path = tmp_path / f"{kind}.pdf"
    path.write_bytes(data)
    with pytest.raises(IngestError) as info:
        PdfPaper().parse(_source(path))
    message_text = str(info.value)
    assert problem in message_text and str(path) in message_text and "\n" not in message_text


def test_pdf_with_only_an_owner_password_is_read(tmp_path):
    path = tmp_path / "restricted.pdf"
    path.write_bytes(encrypt_pdf(make_pdf([FIRST_PAGE]), "", owner_password="owner"))
    paper = PdfPaper().parse(_source(path)).papers[0]
    assert paper.arxiv_id == "2410.02367" and paper.title.startswith("SageAttention")


def test_markdown_paper(tmp_path):
    path = tmp_path / "quarot.md"
    path.write_text(MARKDOWN, encoding="utf-8")
    source = _source(path)
    assert detect(source).name == "paper-text"
    paper = detect(source).parse(source).papers[0]
    assert paper.title == "QuaRot: Outlier-Free 4-Bit Inference in Rotated LLMs"
    assert paper.authors == ["Saleh Ashkboos", "Amirkeivan Mohtashami", "Maximilian L. Croci"]
    assert paper.arxiv_id == "2404.00456"  # the header's id, not the one cited in the body
    assert paper.abstract == (
        "We introduce QuaRot, a new quantization scheme based on rotations, "
        "which quantizes all weights, activations and KV cache in 4 bits."
    )
    assert paper.full_text.startswith("# QuaRot") and "GPTQ" in paper.full_text


def test_plain_text_paper_with_abstract_heading(tmp_path):
    path = tmp_path / "paper.txt"
    path.write_text(
        "Ускорение внимания через квантизацию\nИван Петров, Мария Сидорова\n\nАннотация\n"
        "Мы предлагаем метод 8-битного внимания.\n\n1 Introduction\nТекст.\n",
        encoding="utf-8",
    )
    source = _source(path)
    assert detect(source).name == "paper-text"
    paper = detect(source).parse(source).papers[0]
    assert paper.title == "Ускорение внимания через квантизацию"
    assert paper.authors == ["Иван Петров", "Мария Сидорова"]
    assert paper.abstract == "Мы предлагаем метод 8-битного внимания."
    assert paper.arxiv_id is None


def test_text_paper_detection_leaves_page_dumps_and_notes_alone(tmp_path):
    def claims(name: str, text: str) -> bool:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return TextPaper().detect(_source(path))

    assert not claims("notes.txt", "Просто заметки без заголовков\nи без аннотации\n")
    assert not claims("page.txt", "КПД\n28.04.202523:54\nAbstract: we quote a paper in a post\n👍7🔥1\n")
    assert not claims("abstractions.txt", "Abstractions in ML\nare useful.\n")
    assert claims("readme.md", "Title\n=====\n\ntext\n")
    assert not claims("tags.md", "#quant #llm\nпост с хэштегами\n")


def test_author_splitting():
    assert split_authors("A. Smith1, B. Jones2* and C. Wu†") == ["A. Smith", "B. Jones", "C. Wu"]
    assert split_authors("University of Somewhere, 2024") == []
    assert split_authors("We propose a method") == []


def test_paper_replaces_the_stub_a_post_linked(store, tmp_path):
    export = write_export(
        tmp_path / "result.json", [message(1, "Разбор SageAttention: arxiv.org/abs/2410.02367")]
    )
    first = ingest_locations(store, [str(export)], channel_hint="kpd")
    assert first.ok, first.errors
    pdf = tmp_path / "sage.pdf"
    pdf.write_bytes(make_pdf([FIRST_PAGE]))
    report = ingest_locations(store, [str(pdf)])
    assert report.ok and report.summary.updated == 1
    with store.session() as s:
        papers = s.scalars(select(Paper)).all()
        assert len(papers) == 1
        assert papers[0].title.startswith("SageAttention") and papers[0].source_file == str(pdf.resolve())
        assert s.scalar(select(PostPaper.paper_id)) == papers[0].id
    again = ingest_locations(store, [str(pdf)])
    assert (again.summary.new, again.summary.updated) == (0, 0)


def test_folder_with_pdf_markdown_and_a_broken_pdf(store, tmp_path):
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "a.pdf").write_bytes(make_pdf([FIRST_PAGE]))
    (folder / "b.md").write_text(MARKDOWN, encoding="utf-8")
    (folder / "c.pdf").write_bytes(b"%PDF-1.4\n1 0 obj garbage")
    report = ingest_locations(store, [str(folder)])
    assert (
        report.summary.new == 2 and len(report.errors) == 1 and "c.pdf: cannot read PDF" in report.errors[0]
    )


# --- property tests: random, truncated and mutated input only ever gives IngestError ----------------

VALID_PDF = make_pdf([FIRST_PAGE, ["Second page."]], info={"Title": "T", "Author": "A B"})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=1500))
def test_random_bytes_as_pdf_only_raise_ingest_error(data):
    check_parser(PdfPaper(), b"%PDF-1.4\n" + data, "fuzzed.pdf")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_truncated_and_mutated_pdfs_only_raise_ingest_error(data):
    batch = check_parser(PdfPaper(), data.draw(mutations(VALID_PDF)), "fuzzed.pdf")
    assert batch is None or (len(batch.papers) == 1 and batch.papers[0].full_text)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(st.binary(max_size=800), mutations(MARKDOWN.encode())),
    st.sampled_from(["fuzzed.md", "fuzzed.txt"]),
)
def test_random_and_mutated_text_papers_only_raise_ingest_error(data, name):
    batch = check_parser(TextPaper(), data, name)
    assert batch is None or len(batch.papers) == 1


# --- authors: the metadata the PDF carries, then an unambiguous layout, else unknown (issue 17) -------


def _pdf_authors(tmp_path, lines, info=None):
    path = tmp_path / "paper.pdf"
    path.write_bytes(
        make_pdf([[*lines, "Abstract", "We study things.", "1 Introduction", "Text."]], info=info)
    )
    return PdfPaper().parse(_source(path)).papers[0]


TITLE = "Sparse Mixtures of Quantized Experts"
THREE = ["Alice Smith", "Bob Jones", "Carol Wu"]
EMAIL_BLOCKS = [
    *["Alice Smith", "Google Research", "Mountain View, CA", "alice@google.com"],
    *["Bob Jones", "Meta AI", "bob@meta.com"],
]


@pytest.mark.parametrize(
    "lines, authors",
    [
        # a subtitle under the title is not an author
        ([TITLE, "Scaling Laws Revisited", "Alice Smith1, Bob Jones2, Carol Wu1"], THREE),
        # names told apart by their affiliation marks; the affiliation's city is no author
        ([TITLE, "Alice Smith1* Bob Jones2 Carol Wu1", "Google Research", "Mountain View"], THREE),
        # a list wrapped over two lines keeps every author
        ([TITLE, "Alice Smith1, Bob Jones2,", "Carol Wu3", "1Stanford University 2Meta AI 3Tsinghua"], THREE),
        # one author per block ending in an e-mail address
        ([TITLE, *EMAIL_BLOCKS], ["Alice Smith", "Bob Jones"]),
        # name / affiliation blocks without e-mail: the city between them is no author
        (
            [TITLE, "Alice Smith", "Google Research", "Mountain View", "Bob Jones", "Meta AI"],
            ["Alice Smith", "Bob Jones"],
        ),
    ],
)
def test_pdf_authors_from_an_unambiguous_layout(tmp_path, lines, authors):
    paper = _pdf_authors(tmp_path, lines)
    assert paper.title == TITLE
    assert paper.authors == authors


@pytest.mark.parametrize(
    "lines",
    [
        [TITLE, "Mountain View"],  # a lone capitalized line
        [TITLE, "Google Research", "Alice Smith"],  # affiliation before the name: out of order
    ],
)
def test_ambiguous_layout_gives_unknown_authors_not_a_guess(tmp_path, lines):
    assert _pdf_authors(tmp_path, lines).authors == []


def test_metadata_title_locates_the_authors_under_it(tmp_path):
    paper = _pdf_authors(
        tmp_path,
        [
            "arXiv:2501.00001v1 [cs.LG] 1 Jan 2025",
            "Sparse Mixtures of",
            "Quantized Experts",
            "Alice Smith1, Bob Jones2",
        ],
        info={"Title": "Sparse Mixtures of Quantized Experts"},
    )
    assert paper.title == "Sparse Mixtures of Quantized Experts"
    assert paper.authors == ["Alice Smith", "Bob Jones"]
