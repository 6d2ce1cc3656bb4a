"""Telegram Desktop JSON export: every field, entities in UTF-16 offsets, service messages skipped."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select

from ingest.pipeline import ingest_locations, reingest_all
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
    assert report.ok and report.summary.new == 3 and report.summary.dropped == 1
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


# --- real-world shapes (issue 17): polls, replies to other chats, old exports, broken text -----------


def test_poll_message_is_stored_as_a_poll(store, tmp_path):
    poll = {
        "id": 7,
        "type": "message",
        "date": "2021-03-01T10:00:00",
        "date_unixtime": "1614592800",
        "from": "КПД",
        "from_id": "channel1234",
        "text": "",
        "text_entities": [],
        "poll": {
            "question": "Какой метод квантизации лучше?",
            "closed": False,
            "total_voters": 42,
            "answers": [
                {"text": "GPTQ", "voters": 30, "chosen": False},
                {"text": "AWQ", "voters": 12, "chosen": False},
            ],
        },
    }
    path = write_export(tmp_path / "result.json", [message(6, "пост до опроса"), poll])
    report = ingest_locations(store, [str(path)], channel_hint="chan")
    assert report.ok and report.summary.new == 2 and report.summary.dropped == 0
    with store.session() as s:
        stored = s.scalar(select(Post).where(Post.message_id == 7))
    assert stored is not None
    assert stored.media == [
        {
            "media_type": "poll",
            "question": "Какой метод квантизации лучше?",
            "answers": ["GPTQ", "AWQ"],
            "total_voters": 42,
            "voters": [30, 12],
        }
    ]


def test_reply_to_a_message_of_another_chat_is_not_an_in_channel_reply(store, tmp_path):
    messages = [
        message(1, "пост, на который отвечают"),
        message(2, "ответ в этом же канале", reply_to_message_id=1),
        # the exporter's own chat written as a peer id: still a reply inside the channel
        message(3, "ответ, peer этого канала", reply_to_message_id=1, reply_to_peer_id="channel1234"),
        message(4, "ответ на пост другого канала", reply_to_message_id=1, reply_to_peer_id="channel777"),
    ]
    path = write_export(tmp_path / "result.json", messages)
    ingest_locations(store, [str(path)], channel_hint="chan")
    with store.session() as s:
        rows = {p.message_id: (p.reply_to, p.reply_to_other) for p in s.scalars(select(Post))}
    assert rows[2] == (1, None)
    assert rows[3] == (1, None)
    assert rows[4] == (None, {"chat": "channel777", "message_id": 1})


def test_old_export_dates_without_zone_are_utc_with_a_note_and_tz_states_the_zone(store, tmp_path):
    from ingest.options import ReadOptions

    old = {"id": 5, "type": "message", "date": "2019-05-01T12:00:00", "from": "КПД", "text": "старый пост"}
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"name": "КПД", "type": "public_channel", "id": 1234, "messages": [old]}))
    report = ingest_locations(store, [str(path)], channel_hint="chan")
    assert report.ok
    assert len(report.notes) == 1 and "no time zone" in report.notes[0] and "--tz" in report.notes[0]
    with store.session() as s:
        stored = s.scalar(select(Post.date))
    assert stored.replace(tzinfo=stored.tzinfo or UTC) == datetime(2019, 5, 1, 12, 0, tzinfo=UTC)

    # the same file with the exporter's zone named: re-read (not skipped as unchanged), one post
    report = ingest_locations(
        store, [str(path)], channel_hint="chan", options=ReadOptions(tz="Europe/Moscow")
    )
    assert report.ok and not report.notes and report.summary.updated == 1
    with store.session() as s:
        stored = s.scalars(select(Post.date)).all()
    assert len(stored) == 1
    assert stored[0].replace(tzinfo=stored[0].tzinfo or UTC) == datetime(2019, 5, 1, 9, 0, tzinfo=UTC)
    # --all reads it again the way it was last read: the zone is kept
    path.write_text(path.read_text() + "\n")
    report = reingest_all(store)
    assert report.ok and report.summary.unchanged == 1 and not report.notes


def test_a_new_export_with_unix_times_gets_no_zone_note(store, tmp_path):
    path = write_export(tmp_path / "result.json", [message(1, "пост")])
    assert not ingest_locations(store, [str(path)], channel_hint="chan").notes


def test_lone_surrogate_in_one_message_keeps_every_good_post(store, tmp_path):
    messages = [message(1, "хороший пост"), message(2, "битый \ud83d смайлик"), message(3, "ещё хороший")]
    path = tmp_path / "result.json"
    # json.dumps escapes the lone surrogate as \ud83d, as a real export with a cut emoji has it
    path.write_text(json.dumps({"name": "КПД", "messages": messages}), encoding="ascii")
    report = ingest_locations(store, [str(path)], channel_hint="chan")
    assert report.ok and report.summary.new == 3
    assert len(report.notes) == 1 and "lone UTF-16 surrogate" in report.notes[0] and ": 2" in report.notes[0]
    with store.session() as s:
        texts = dict(s.execute(select(Post.message_id, Post.text)).all())
    assert texts == {1: "хороший пост", 2: "битый \ufffd смайлик", 3: "ещё хороший"}


def test_valid_escaped_emoji_are_not_touched(store, tmp_path):
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"name": "КПД", "messages": [message(1, "🔥 огонь")]}), encoding="ascii")
    report = ingest_locations(store, [str(path)], channel_hint="chan")
    assert report.ok and not report.notes
    with store.session() as s:
        assert s.scalar(select(Post.text)) == "🔥 огонь"


def test_one_malformed_message_is_skipped_with_a_note(store, tmp_path):
    messages = [
        message(1, "хороший пост"),
        message(2, "битый", text_entities="not a list"),
        message(3, "ещё"),
    ]
    path = write_export(tmp_path / "result.json", messages)
    report = ingest_locations(store, [str(path)], channel_hint="chan")
    assert report.ok and report.summary.new == 2 and report.summary.dropped == 1
    assert len(report.notes) == 1 and "unreadable message skipped: 2" in report.notes[0]


def test_deeply_nested_json_is_one_line_and_later_files_still_ingest(store, tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    deep = folder / "a_deep.json"
    deep.write_text('{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}")
    write_export(folder / "b_good.json", [message(1, "пост после глубокого файла")])
    report = ingest_locations(store, [str(folder)], channel_hint="chan")
    assert report.summary.new == 1 and report.summary.failed == 1
    assert report.errors == [
        f"{deep.resolve()}: JSON nested too deeply to be a Telegram export (thousands of levels)"
    ]
