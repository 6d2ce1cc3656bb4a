"""Full-account Telegram Desktop export (`result.json` with `chats.list`): every chat is ingested
as its own channel, `--chat` picks some, and message ids that repeat across chats stay apart."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from ingest.options import ReadOptions
from ingest.pipeline import ingest_locations, reingest_all
from rag.store.models import Channel, Post
from tests.ingest.exports import message


def _chat(chat_id: int, name: str | None, kind: str, texts: list[str]) -> dict:
    return {
        "name": name,
        "type": kind,
        "id": chat_id,
        "messages": [message(i, text) for i, text in enumerate(texts, start=1)],
    }


def _account(tmp_path):
    export = {
        "about": "Here is the data you requested. Remember: Telegram is ad free, it doesn't sell your data.",
        "personal_information": {"user_id": 42, "first_name": "Анна", "phone_number": "+7 000 000 00 00"},
        "contacts": {"about": "…", "list": []},
        "chats": {
            "about": "This page lists all chats from this export.",
            "list": [
                _chat(1234, "КПД", "public_channel", ["пост про GPTQ", "пост про AWQ"]),
                _chat(5678, "Сиолошная", "public_channel", ["пост про RLHF"]),
                _chat(99, None, "saved_messages", ["заметка себе"]),
            ],
        },
        "left_chats": {
            "about": "This page lists all supergroups and channels from this export that you left.",
            "list": [_chat(777, "Старый канал", "private_channel", ["пост из покинутого канала"])],
        },
    }
    path = tmp_path / "result.json"
    path.write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    return path


def _posts_by_channel(store) -> dict[str, list[str]]:
    with store.session() as s:
        rows = s.execute(select(Channel.title, Post.text).join(Post).order_by(Post.id)).all()
    found: dict[str, list[str]] = {}
    for title, text in rows:
        found.setdefault(title, []).append(text)
    return found


def test_every_chat_of_an_account_export_is_its_own_channel(store, tmp_path):
    report = ingest_locations(store, [str(_account(tmp_path))])
    assert report.ok, report.errors
    assert report.summary.new == 5
    assert _posts_by_channel(store) == {
        "КПД": ["пост про GPTQ", "пост про AWQ"],
        "Сиолошная": ["пост про RLHF"],  # message id 1 again: not merged with КПД's post 1
        "Saved Messages": ["заметка себе"],
        "Старый канал": ["пост из покинутого канала"],
    }
    assert any("account export: 4 chats" in note for note in report.notes)


def test_chat_filter_picks_chats_by_name_or_id_and_is_kept_for_ingest_all(store, tmp_path):
    path = _account(tmp_path)
    report = ingest_locations(store, [str(path)], options=ReadOptions(chats=("кпд", "777")))
    assert report.ok and report.summary.new == 3
    assert sorted(_posts_by_channel(store)) == ["КПД", "Старый канал"]
    path.write_text(path.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    again = reingest_all(store)
    assert again.ok and again.summary.new == 0 and again.summary.unchanged == 3


def test_unknown_chat_name_is_one_line_naming_the_chats_there_are(store, tmp_path):
    report = ingest_locations(store, [str(_account(tmp_path))], options=ReadOptions(chats=("Нет такого",)))
    assert report.summary.failed == 1 and report.summary.new == 0
    assert "no chat named 'Нет такого'" in report.errors[0] and "КПД, Сиолошная" in report.errors[0]


def test_channel_names_one_chat_only(store, tmp_path):
    path = _account(tmp_path)
    refused = ingest_locations(store, [str(path)], channel_hint="kpd")
    assert refused.summary.failed == 1 and "choose one with --chat" in refused.errors[0]
    report = ingest_locations(store, [str(path)], channel_hint="kpd", options=ReadOptions(chats=("КПД",)))
    assert report.ok
    with store.session() as s:
        assert s.scalars(select(Post.permalink)).all() == ["https://t.me/kpd/1", "https://t.me/kpd/2"]


@pytest.mark.parametrize("value", ["Mars/Olympus", "+25:00", "tomorrow"])
def test_bad_tz_is_refused_in_one_line(value):
    from core.errors import IngestError

    with pytest.raises(IngestError, match="--tz"):
        ReadOptions(tz=value)


def test_chats_with_the_same_name_stay_apart(store, tmp_path):
    """Private chats are named after the contact: two people called Иван (or two deleted accounts)
    are two chats with the same name; their messages 1 must not merge as copies of one post."""
    export = {
        "personal_information": {"user_id": 42},
        "chats": {
            "list": [
                _chat(111, "Иван", "personal_chat", ["привет от первого Ивана", "вторая реплика"]),
                _chat(222, "Иван", "personal_chat", ["сообщение второго Ивана"]),
                _chat(333, "Мария", "personal_chat", ["сообщение Марии"]),
            ]
        },
    }
    path = tmp_path / "result.json"
    path.write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    report = ingest_locations(store, [str(path)])
    assert report.ok and report.summary.new == 4 and report.summary.merged == 0
    posts = _posts_by_channel(store)
    assert sorted(text for texts in posts.values() for text in texts) == [
        "вторая реплика",
        "привет от первого Ивана",
        "сообщение Марии",
        "сообщение второго Ивана",
    ]
    assert len(posts) == 3 and posts["Мария"] == ["сообщение Марии"]
    # choosing one of them by id keeps it where the whole export put it
    again = ingest_locations(store, [str(path)], options=ReadOptions(chats=("222",)))
    assert again.ok and again.summary.new == 0 and again.summary.unchanged == 1
