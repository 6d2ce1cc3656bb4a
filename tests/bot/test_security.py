"""Attacks on the running bot, as an outsider would make them: the real dispatcher over HTTP against
the Bot API emulator (security findings 2, 3, 4, 7, 10 of issue 12; finding 1 is in
test_webhook.py, the CLI's in test_security_cli.py). Each test reproduces the attack and checks
that it now does no harm."""

from __future__ import annotations

import json
import logging

from sqlalchemy import select

from bot.channels import LiveChannels
from rag.store.models import Channel, Post
from rag.store.upsert import resolve_channel
from tests.bot.harness import ADMIN, FakeRag, fake_services, running_bot, settle

ATTACKER = 666


def stored_posts(store) -> dict[tuple[str, int], str]:
    with store.session() as s:
        rows = s.execute(select(Channel.username, Post.message_id, Post.text).join(Post.channel))
        return {(row.username, row.message_id): row.text for row in rows}


def answer_texts(emu, chat_id: int) -> list[str]:
    return [c.params.get("text", "") for c in emu.sent("answerCallbackQuery") if c.params.get("text")]


def buttons(message: dict) -> list[str]:
    return [b["callback_data"] for row in message["reply_markup"]["inline_keyboard"] for b in row]


# --- finding 2: look-alike channels ------------------------------------------------------------
async def test_unwatched_channels_are_ignored_until_an_admin_watches(fakes, fake_rag, store, caplog):
    caplog.set_level(logging.INFO, logger="bot.handlers.channel")
    async with running_bot(fakes) as emu:  # TELEGRAM_CHANNELS unset (the default)
        emu.channel_post("quant_chan", 1, "A channel that added the bot on its own")
        await settle(emu)
        assert stored_posts(store) == {}
        emu.message("/watch @quant_chan", user_id=ATTACKER)  # not an admin
        await settle(emu)
        emu.channel_post("quant_chan", 2, "Still not watched")
        await settle(emu)
        assert stored_posts(store) == {}
        emu.message("/watch @quant_chan", user_id=ADMIN)
        await emu.wait_for(lambda: emu.sent("sendMessage", ADMIN))
        emu.channel_post("quant_chan", 3, "Now watched: this post is indexed")
        await settle(emu)
    assert "only the bot's admins" in emu.sent("sendMessage", ATTACKER)[0].params["text"]
    assert emu.sent("sendMessage", ADMIN)[0].params["text"].startswith("Watching quant_chan")
    assert stored_posts(store) == {("quant_chan", 3): "Now watched: this post is indexed"}
    ignored = [r for r in caplog.records if r.getMessage().startswith("ignored a post of channel")]
    assert len(ignored) == 2  # one line per ignored post
    # The /watch is stored: a restarted bot admits the channel without another /watch.
    chat_id = emu.sent("getChat")[0].params["chat_id"]
    assert chat_id == "@quant_chan"
    restarted = LiveChannels(fakes.settings.data_dir)
    assert restarted.admit(-1001000000000 - 1, "quant_chan").key is None  # another chat id
    watched_id = next(iter(dict(restarted.watched())))
    assert restarted.admit(watched_id, "quant_chan").key == "quant_chan"


async def test_lookalike_channel_cannot_overwrite_stored_posts(fakes, store):
    """A channel without a username and with the title of an indexed channel posts (and edits) a
    message with an id the indexed channel already has: before, the store matched it by title and
    replaced the original post."""
    async with running_bot(fakes, telegram_channels=["quant_chan"]) as emu:
        emu.channel_post("Quant", 5, "The original post", username="quant_chan", chat_id=-1001111)
        await settle(emu)
        emu.channel_post("Quant", 5, "Forged text", username=None, chat_id=-1002222)
        emu.channel_post("Quant", 5, "Forged edit", username=None, chat_id=-1002222, edited=True)
        await settle(emu)
    assert stored_posts(store) == {("quant_chan", 5): "The original post"}

    # Even a look-alike an admin did let in (by chat id) is stored as its own channel.
    watched = fakes.settings.model_copy(update={"telegram_channels": []})
    async with running_bot(fake_services(watched, store, FakeRag())) as emu:
        emu.channel_post("Quant", 9, "Forged", username=None, chat_id=-1002222)
        emu.message("/watch -1002222", user_id=ADMIN)
        await emu.wait_for(lambda: emu.sent("sendMessage", ADMIN))
        emu.channel_post("Quant", 5, "Its own post 5", username=None, chat_id=-1002222)
        await settle(emu)
    assert stored_posts(store) == {
        ("quant_chan", 5): "The original post",
        ("_chat:-1002222", 5): "Its own post 5",
    }


def test_store_never_gives_a_title_placeholder_to_a_chat_id_key(store):
    """Page dumps know channels by title only; a live channel's `_chat:<id>` key must not claim
    such a channel just by carrying the same title."""
    with store.session() as s:
        dumped = resolve_channel(s, None, "Quant").id
        lookalike = resolve_channel(s, "_chat:-1002222", "Quant")
        assert lookalike.id != dumped and lookalike.username == "_chat:-1002222"
        assert resolve_channel(s, None, "Quant").id == dumped


# --- finding 3: forged button data -------------------------------------------------------------
async def test_forged_buttons_reveal_nothing_of_other_users(fakes):
    async with running_bot(fakes) as emu:
        emu.message("victim question", user_id=501)
        emu.message("/crosspost my private draft about quantization", user_id=501)
        emu.message("/start", user_id=ATTACKER)
        await emu.wait_for(lambda: len(emu.bot_messages(501)) >= 2 and emu.bot_messages(ATTACKER))
        await settle(emu)
        victim = emu.bot_messages(501)
        victim_buttons = [d for m in victim if m.get("reply_markup") for d in buttons(m)]
        own = emu.bot_messages(ATTACKER)[0]
        forged = [d for d in victim_buttons if d.startswith(("src:", "xp:"))]
        forged += ["src:1", "xp:1:thread:x", "src:AAAAAAAAAAAA", "xp:AAAAAAAAAAAA:retranslate:x"]
        for data in forged:
            emu.press(own, data, user_id=ATTACKER)  # a modified client sends any callback data
        # and a press on the victim's own message by someone else (as in a group they share)
        for data in victim_buttons:
            if data.startswith(("src:", "xp:")):
                emu.press(next(m for m in victim if data in buttons(m)), data, user_id=ATTACKER)
        await settle(emu)
    assert len(forged) >= 6 and not any(d.split(":")[1] in {"1", "2"} for d in victim_buttons)
    assert [m["text"] for m in emu.bot_messages(ATTACKER)] == [own["text"]]  # nothing new
    assert all("private draft" not in m["text"] for m in emu.bot_messages(ATTACKER))
    texts = answer_texts(emu, ATTACKER)
    assert texts and all("someone else" in t or "older message" in t for t in texts)
    assert sum("someone else" in t for t in texts) >= 2
    assert len(victim) == len(emu.bot_messages(501))  # no thread/quotes were sent to the victim's chat


# --- finding 10: floods --------------------------------------------------------------------------
async def test_flood_gets_one_wait_reply_and_button_presses_are_limited(fakes, fake_rag):
    async with running_bot(fakes, rate_limit_messages=3, rate_limit_window_s=600) as emu:
        emu.message("/crosspost text to convert", user_id=601)
        preview = (await emu.wait_for(lambda: emu.bot_messages(601)))[0]
        retranslate = next(d for d in buttons(preview) if ":retranslate:" in d)
        for _ in range(40):
            emu.press(preview, retranslate, user_id=601)
        await settle(emu)
        conversions = len(fakes.crosspost.calls)
        for i in range(200):
            emu.message(f"flood {i}", user_id=601)
        await settle(emu)
    waits = [t for t in answer_texts(emu, 601) if "please wait" in t]
    waits += [c.params["text"] for c in emu.sent("sendMessage", 601) if "please wait" in c.params["text"]]
    assert conversions == 3  # the /crosspost and two presses: the budget of 3 per window
    assert len(waits) == 1  # one "wait" for 38 presses and 200 messages, not one each
    assert fake_rag.questions == []  # the budget stays spent for the whole window


# --- finding 7: upload with a 300-character name; finding 4: download errors log no token --------
async def test_upload_with_a_300_character_name_is_ingested(fakes, store):
    export = {
        "name": "Quant",
        "messages": [
            {"id": 1, "type": "message", "date": "2025-04-28T10:00:00", "text": "A post about kernels"}
        ],
    }
    name = "экспорт-" + "x" * 300 + ".json"
    async with running_bot(fakes) as emu:
        emu.message(
            None, user_id=ADMIN, document=emu.document(json.dumps(export).encode(), name, "application/json")
        )
        await emu.wait_for(lambda: any("new 1" in m["text"] for m in emu.bot_messages(ADMIN)))
    assert store.stats()["posts"] == 1
    assert all("wrong" not in m["text"] for m in emu.bot_messages(ADMIN))


async def test_failed_download_logs_no_token(fakes, caplog):
    async with running_bot(fakes) as emu:
        document = emu.document(b"{}", "result.json", "application/json")
        emu.files.pop(document["file_id"])  # getFile still answers (below), the download is a 404
        emu._m_getFile = lambda params: {  # type: ignore[method-assign]
            "file_id": params["file_id"],
            "file_unique_id": "u",
            "file_path": f"documents/{params['file_id']}",
        }
        emu.message(None, user_id=ADMIN, document=document)
        await emu.wait_for(lambda: any("went wrong" in m["text"] for m in emu.bot_messages(ADMIN)))
        await settle(emu)
    assert "/file/bot" in caplog.text  # the failing URL was logged…
    assert emu.token not in caplog.text and "TEST-token" not in caplog.text  # …without the token
    assert all(emu.token not in m["text"] for m in emu.bot_messages(ADMIN))


def test_rate_limiter_memory_stays_bounded_with_many_one_off_users():
    """A flood from 30,000 accounts (one message each, 100 per second) must not grow memory
    without bound: users idle for a whole window are forgotten."""
    from bot.middlewares import RateLimitMiddleware

    limiter = RateLimitMiddleware(1, window_s=10.0)
    largest = 0
    for user in range(30_000):
        now = user * 0.01
        assert limiter.retry_in(user, now=now) == 0.0
        assert limiter.retry_in(user, now=now) > 0  # a second message in the window is refused
        assert limiter.should_warn(user, 10.0, now=now)
        largest = max(largest, len(limiter._hits), len(limiter._warned_until))
    assert largest <= 11_001


# --- the admin gate: one IsAdmin filter on the admin router ------------------------------------
def _admin_commands() -> set[str]:
    """Every command a handler of the admin router answers (read from the routers, so a command
    added there later is covered too)."""
    from aiogram.filters import Command

    from bot.handlers import admin

    root = admin.create_router()
    gated = next(r for r in root.sub_routers if r.name == "admin")
    commands = {
        str(command)
        for handler in gated.message.handlers
        for f in handler.filters or []
        if isinstance(f.callback, Command)
        for command in f.callback.commands
    }
    assert {"reingest", "reindex", "stats", "sources", "watch", "unwatch"} <= commands
    return commands


async def test_no_admin_command_reaches_a_non_admin(fakes, fake_rag, store):
    before = store.stats()
    commands = sorted(_admin_commands())
    async with running_bot(fakes) as emu:
        for command in commands:
            emu.message(f"/{command} @quant_chan", user_id=ATTACKER)
        await settle(emu)
        texts = [c.params["text"] for c in emu.sent("sendMessage", ATTACKER)]
        channels = LiveChannels(emu.services.settings.data_dir, [])
    assert len(texts) == len(commands) and all("only the bot's admins" in t for t in texts)
    assert fake_rag.syncs == 0 and store.stats() == before and channels.watched() == []


async def test_no_admin_command_reaches_a_non_admin_in_a_group(fakes, fake_rag, store):
    """The same gate in a group chat, where anyone can type the commands the admins use."""
    before = store.stats()
    commands = sorted(_admin_commands())
    group = -100777
    async with running_bot(fakes) as emu:
        for command in commands:
            emu.message(f"/{command} @quant_chan", user_id=ATTACKER, chat_id=group, chat_type="supergroup")
        await settle(emu)
        texts = [c.params["text"] for c in emu.sent("sendMessage", group)]
        channels = LiveChannels(emu.services.settings.data_dir, [])
    assert all("only the bot's admins" in t for t in texts)  # refused, if answered at all
    assert fake_rag.syncs == 0 and store.stats() == before and channels.watched() == []
