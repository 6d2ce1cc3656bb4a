"""Bad input named for what it is (issue 17, item 9): UTF-16 text is read, a t.me page cut before
its first post is "truncated", JSON errors read well, double-encoded UTF-8 is refused."""

from __future__ import annotations

import json

from sqlalchemy import select

from ingest.pipeline import ingest_locations
from rag.store.models import Post
from tests.ingest.exports import message, write_export
from tests.ingest.tme_pages import page, post


def _export_text() -> str:
    return json.dumps({"name": "КПД", "messages": [message(1, "Как квантовать LLM")]}, ensure_ascii=False)


def test_utf16_export_is_read_with_a_note(store, tmp_path):
    with_bom = tmp_path / "a.json"
    with_bom.write_bytes(_export_text().encode("utf-16"))  # BOM + little-endian, as Windows writes it
    without_bom = tmp_path / "b.json"
    without_bom.write_bytes(_export_text().encode("utf-16-be"))
    for path, channel in ((with_bom, "a"), (without_bom, "b")):
        report = ingest_locations(store, [str(path)], channel_hint=channel)
        assert report.ok, report.errors
        assert report.summary.new == 1 and "UTF-16 text" in report.notes[0]
    with store.session() as s:
        assert s.scalars(select(Post.text)).all() == ["Как квантовать LLM", "Как квантовать LLM"]


def test_tme_page_cut_before_its_first_post_is_called_truncated(store, tmp_path):
    full = page("kpd", "КПД", [post("kpd", 5, "пост")])
    path = tmp_path / "kpd.html"
    path.write_text(full[: full.index("tgme_channel_history")], encoding="utf-8")
    report = ingest_locations(store, [str(path)])
    assert report.errors == [f"{path.resolve()}: truncated t.me page (it does not end with </html>)"]


def test_malformed_json_message_reads_well(store, tmp_path):
    path = tmp_path / "result.json"
    path.write_text('{"messages": [{"id": 1, "text": "обрыв', encoding="utf-8")
    report = ingest_locations(store, [str(path)], channel_hint="chan")
    assert len(report.errors) == 1
    error = report.errors[0]
    assert "malformed JSON export (Unterminated string starting at: line 1, column 33)" in error
    assert "at at" not in error


def test_double_encoded_export_is_refused_and_the_stored_post_kept(store, tmp_path):
    good = write_export(tmp_path / "result.json", [message(1, "Как квантовать LLM — коротко")])
    assert ingest_locations(store, [str(good)], channel_hint="chan").ok
    broken = "Как квантовать LLM — коротко".encode().decode("cp1252", errors="replace")
    mojibake = "".join(ch if ch != "\ufffd" else "\x9d" for ch in broken)
    write_export(good, [message(1, mojibake)])
    report = ingest_locations(store, [str(good)], channel_hint="chan")
    assert report.summary.failed == 1 and "double-encoded UTF-8" in report.errors[0]
    assert "\n" not in report.errors[0]
    with store.session() as s:
        assert s.scalar(select(Post.text)) == "Как квантовать LLM — коротко"


def test_latin_text_with_accents_is_not_mojibake(store, tmp_path):
    texts = [
        "Ðóra Ægisdóttir à Zürich: «Ça va?» — naïve café, Øresund, ÐÆÞ",
        "Ã¼ber once is a typo, not a file",
    ]
    path = write_export(tmp_path / "result.json", [message(i, t) for i, t in enumerate(texts, 1)])
    report = ingest_locations(store, [str(path)], channel_hint="chan")
    assert report.ok and report.summary.new == 2


def test_one_post_quoting_a_garbled_phrase_does_not_refuse_its_export(store, tmp_path):
    garbled = "Как квантовать большие модели".encode().decode("latin-1")
    posts = [message(1, f"Пример поломанной кодировки: {garbled}")]
    posts += [message(i, f"обычный пост номер {i}") for i in range(2, 6)]
    report = ingest_locations(
        store, [str(write_export(tmp_path / "result.json", posts))], channel_hint="chan"
    )
    assert report.ok and report.summary.new == 5
