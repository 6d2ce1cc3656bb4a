"""Telegram Desktop JSON export: every field, entities in UTF-16 offsets, service messages skipped."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from ingest.pipeline import ingest_locations
from rag.store.models import Paper, Post, PostPaper
from tests.ingest.exports import message, write_export


def _export(tmp_path):
    rich_text = [
        "🔥 Статья ",
        {"type": "text_link", "text": "SageAttention", "href": "https://arxiv.org/abs/2410.02367"},
        " от ",
        {"type": "mention", "text": "@thu_ml"},
        ": ",
        {"type": "bold", "text": "2x"},
        " быстрее ",
        {"type": "hashtag", "text": "#quant"},
    ]
    messages = [
        {
            "id": 1,
            "type": "service",
            "action": "create_channel",
            "date": "2025-01-01T00:00:00",
            "date_unixtime": "1735689600",
            "text": "",
        },
        message(
            2,
            rich_text,
            ts=1745873640,
            edited="2025-04-29T10:00:00",
            edited_unixtime="1745920800",
            author="Denis",
            views=1234,
            forwarded_from="CV Time",
            reply_to_message_id=1,
            reactions=[
                {"type": "emoji", "count": 7, "emoji": "👍"},
                {"type": "emoji", "count": 2, "emoji": "🔥"},
            ],
        ),
        message(3, "Фото без подписи", photo="photos/photo_1.jpg", width=800, height=600),
        message(4, "", photo="photos/photo_2.jpg"),
    ]
    return write_export(tmp_path / "result.json", messages)


def test_json_export_fields_are_stored(store, tmp_path):
    report = ingest_locations(store, [str(_export(tmp_path))], channel_hint="quant_prune_distill")
    assert report.ok and report.summary.new == 3 and report.summary.skipped == 1
    with store.session() as s:
        post = s.scalar(select(Post).where(Post.message_id == 2))
        assert post.text == "🔥 Статья SageAttention от @thu_ml: 2x быстрее #quant"
        assert post.permalink == "https://t.me/quant_prune_distill/2"
        assert post.date.replace(tzinfo=UTC) == datetime(2025, 4, 28, 20, 54, tzinfo=UTC)
        assert post.edited_at.replace(tzinfo=UTC) == datetime(2025, 4, 29, 10, 0, tzinfo=UTC)
        assert post.author == "Denis" and post.views == 1234
        assert post.forwarded_from == "CV Time" and post.reply_to == 1
        assert post.reactions == {"👍": 7, "🔥": 2}
        assert post.links == ["https://arxiv.org/abs/2410.02367"]
        # "🔥" is two UTF-16 code units: the link starts at 2 + len(" Статья ") = 10
        link = next(e for e in post.entities if e["type"] == "text_link")
        assert (link["offset"], link["length"], link["url"]) == (10, 13, "https://arxiv.org/abs/2410.02367")
        kinds = {e["type"] for e in post.entities}
        assert kinds == {"text_link", "mention", "bold", "hashtag"}
        photo = s.scalar(select(Post).where(Post.message_id == 3))
        assert photo.media == [{"photo": "photos/photo_1.jpg"}]
        media_only = s.scalar(select(Post).where(Post.message_id == 4))
        assert media_only.text == "" and media_only.media
        paper = s.scalar(select(Paper).where(Paper.arxiv_id == "2410.02367"))
        assert paper is not None and paper.url == "https://arxiv.org/abs/2410.02367"
        assert s.scalar(select(PostPaper).where(PostPaper.post_id == post.id, PostPaper.paper_id == paper.id))


def test_edited_post_is_updated_not_duplicated(store, tmp_path):
    path = write_export(tmp_path / "result.json", [message(10, "первая версия"), message(11, "другой пост")])
    ingest_locations(store, [str(path)], channel_hint="chan")
    write_export(path, [message(10, "исправленная версия"), message(11, "другой пост"), message(12, "новый")])
    report = ingest_locations(store, [str(path)], channel_hint="chan")
    assert (report.summary.new, report.summary.updated, report.summary.unchanged) == (1, 1, 1)
    with store.session() as s:
        texts = s.scalars(select(Post.text).where(Post.message_id == 10)).all()
    assert texts == ["исправленная версия"]


def test_same_text_in_two_messages_is_two_posts(store, tmp_path):
    path = write_export(tmp_path / "result.json", [message(1, "+1"), message(2, "+1")])
    report = ingest_locations(store, [str(path)], channel_hint="chan")
    assert report.summary.new == 2


def test_channel_without_username_gets_no_permalink_until_named(store, tmp_path):
    path = write_export(tmp_path / "result.json", [message(5, "пост без имени канала")], name="Мой канал")
    ingest_locations(store, [str(path)])
    with store.session() as s:
        assert s.scalar(select(Post.permalink)) is None


def test_entity_offsets_follow_the_cleaned_text(store, tmp_path):
    parts = ["\n\n\n\nИтог:  \n\n\n\n", {"type": "bold", "text": "2x"}, " быстрее"]
    path = write_export(tmp_path / "result.json", [message(1, parts)])
    ingest_locations(store, [str(path)], channel_hint="chan")
    with store.session() as s:
        post = s.scalar(select(Post))
    bold = post.entities[0]
    assert post.text == "Итог:\n\n2x быстрее"
    assert post.text[bold["offset"] : bold["offset"] + bold["length"]] == "2x"


def test_dates_with_an_offset_are_stored_as_the_same_instant(store):
    from datetime import timedelta, timezone

    from rag.store.records import PostRecord, SourceBatch

    moscow = timezone(timedelta(hours=3))
    batch = SourceBatch(
        location="mem",
        format="test",
        posts=[
            PostRecord(
                channel="chan", text="пост", message_id=1, date=datetime(2025, 4, 28, 23, 54, tzinfo=moscow)
            )
        ],
    )
    store.ingest_batch(batch, channel_hint=None, digest=None)
    with store.session() as s:
        stored = s.scalar(select(Post.date))
    assert stored.replace(tzinfo=stored.tzinfo or UTC) == datetime(2025, 4, 28, 20, 54, tzinfo=UTC)
