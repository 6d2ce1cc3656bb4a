"""Live channel posts (Bot API messages) as records: a reply to another chat's message stays apart."""

from __future__ import annotations

from ingest.bot_api import message_to_record


def _post(**extra):
    return {
        "message_id": 10,
        "date": 1745873640,
        "chat": {"id": -1001234, "type": "channel", "username": "kpd", "title": "КПД"},
        "text": "ответ",
        **extra,
    }


def test_reply_in_the_same_channel():
    record = message_to_record(_post(reply_to_message={"message_id": 7, "date": 1, "chat": {"id": -1001234}}))
    assert (record.reply_to, record.reply_to_other) == (7, None)


def test_external_reply_is_not_an_in_channel_reply():
    external = {
        "origin": {
            "type": "channel",
            "date": 1,
            "chat": {"id": -1009, "type": "channel", "username": "other"},
        },
        "chat": {"id": -1009, "type": "channel", "username": "other"},
        "message_id": 7,
    }
    record = message_to_record(_post(external_reply=external))
    assert (record.reply_to, record.reply_to_other) == (None, {"chat": "other", "message_id": 7})
