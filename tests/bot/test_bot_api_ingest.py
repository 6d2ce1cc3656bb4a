"""Bot API channel posts become the same records as exports: entities in UTF-16 units, links, papers."""

from __future__ import annotations

from aiogram.types import Message

from ingest.bot_api import location_for, message_batch, message_to_record

POST = {
    "message_id": 42,
    "date": 1745800000,
    "edit_date": 1745800100,
    "author_signature": "Ann",
    "chat": {"id": -1001, "type": "channel", "title": "Quant", "username": "quant_chan"},
    "text": "😀 SageAttention: see arxiv and https://github.com/thu-ml/SageAttention",
    # "😀" is 2 UTF-16 units: "SageAttention" starts at 3.
    "entities": [
        {"type": "bold", "offset": 3, "length": 13},
        {"type": "text_link", "offset": 22, "length": 5, "url": "https://arxiv.org/abs/2410.02367"},
        {"type": "url", "offset": 32, "length": 39},
    ],
}


def test_dict_message_to_record():
    record = message_to_record(POST)
    assert record.channel == "quant_chan" and record.channel_title == "Quant"
    assert record.message_id == 42 and record.author == "Ann"
    assert record.date.year == 2025 and record.edited > record.date
    assert record.permalink == "https://t.me/quant_chan/42"
    assert record.entities[0] == {"type": "bold", "offset": 3, "length": 13}
    assert record.links == ["https://arxiv.org/abs/2410.02367", "https://github.com/thu-ml/SageAttention"]


def test_aiogram_message_and_caption():
    photo = {
        **POST,
        "text": None,
        "entities": None,
        "caption": "A figure from arXiv:2410.02367",
        "photo": [{"file_id": "p", "file_unique_id": "up", "width": 1, "height": 1}],
    }
    photo = {k: v for k, v in photo.items() if v is not None}
    record = message_to_record(Message.model_validate(photo))
    assert record.text == "A figure from arXiv:2410.02367"
    assert record.media == [{"media_type": "photo"}]


def test_batch_attaches_paper_refs_and_names_its_source():
    batch = message_batch(POST)
    assert batch.location == location_for("quant_chan") and batch.format == "telegram-bot-api"
    assert [p.arxiv_id for p in batch.papers] == ["2410.02367"]
    assert batch.posts[0].paper_keys == ["arxiv:2410.02367"]


def test_store_upserts_an_edit_in_place(store):
    store.ingest_batch(message_batch(POST), channel_hint="quant_chan", digest=None)
    edited = {**POST, "text": POST["text"] + " (updated)"}
    summary = store.ingest_batch(message_batch(edited), channel_hint="quant_chan", digest=None)
    assert (summary.new, summary.updated) == (0, 1)
    assert store.stats()["posts"] == 1
