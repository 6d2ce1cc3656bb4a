"""End-to-end with the real services (store, RagService with the offline embedding model, crosspost)
on a small export, through the emulator: cited answers, /crosspost, admin /reingest, live posts."""

from __future__ import annotations

import asyncio
import time

from crosspost import NETWORKS
from tests.bot.corpus import CHANNEL, POSTS, write_export
from tests.bot.harness import ADMIN, check_html, running_bot


def html_messages(emu, chat_id):
    return [m for m in emu.bot_messages(chat_id) if m.get("parse_mode") == "HTML"]


def answered(emu, chat_id):
    return [m for m in html_messages(emu, chat_id) if "reply_markup" in m]


async def test_answer_cites_the_post_with_valid_html(real):
    async with running_bot(real) as emu:
        emu.message("Что такое SageAttention?", user_id=201, lang="ru")
        final = (await emu.wait_for(lambda: answered(emu, 201), timeout=30))[-1]
    parsed = check_html(final["text"])
    assert parsed.errors == []
    assert f"https://t.me/{CHANNEL}/11" in parsed.links
    assert "INT8" in parsed.text
    assert "Источники" in parsed.text
    buttons = [b["callback_data"] for row in final["reply_markup"]["inline_keyboard"] for b in row]
    assert f"cv:{CHANNEL}:11" in buttons


async def test_crosspost_of_a_corpus_post_gives_valid_parts_for_every_network(real):
    async with running_bot(real) as emu:
        emu.message(f"/crosspost https://t.me/{CHANNEL}/12", user_id=202)
        first = (await emu.wait_for(lambda: html_messages(emu, 202), timeout=30))[0]
        keyboard = first["reply_markup"]["inline_keyboard"]
        networks = {
            b["callback_data"].split(":")[-1]: b["callback_data"] for row in keyboard[:-1] for b in row
        }
        assert set(networks) == {"x", "bluesky", "mastodon", "threads", "linkedin", "markdown"}
        previews = {}
        for name, data in networks.items():
            emu.press(first, data, user_id=202)
            title = NETWORKS[name] + ":"
            await emu.wait_for(
                lambda t=title: emu.messages[(202, first["message_id"])]["text"].startswith(f"<b>{t}"),
                timeout=30,
            )
            previews[name] = emu.messages[(202, first["message_id"])]["text"]
        thread = next(b["callback_data"] for b in keyboard[-1] if ":thread:" in b["callback_data"])
        emu.press(first, thread, user_id=202)
        await emu.wait_for(lambda: len(emu.bot_messages(202)) >= 2)
    for name, preview in previews.items():
        parsed = check_html(preview)
        assert parsed.errors == [], name
        assert "GPTQ" in parsed.text, name
        for line in parsed.text.splitlines():
            if " · " in line and "/" in line:  # "1/1 · 187/280": each part within its limit
                counted = line.split(" · ")[1].split("/")
                assert len(counted) == 2 or name == "markdown", (name, line)  # long form has no limit
                assert len(counted) == 1 or int(counted[0]) <= int(counted[1]), (name, line)
    assert "GPTQ" in emu.bot_messages(202)[-1]["text"]  # the thread sent as a plain copyable message


async def test_convert_button_and_links_not_in_corpus(real):
    async with running_bot(real) as emu:
        emu.message(f"https://t.me/{CHANNEL}/999", user_id=203)  # a bare link in a private chat
        reply = await emu.wait_for(lambda: emu.bot_messages(203), timeout=30)
        emu.press(reply[0], f"cv:{CHANNEL}:11", user_id=203)
        await emu.wait_for(lambda: len(emu.bot_messages(203)) == 2, timeout=30)
        emu.press(reply[0], f"cv:{CHANNEL}:4040", user_id=203)  # a cited post deleted since
        await emu.wait_for(lambda: len(emu.bot_messages(203)) == 3, timeout=30)
    texts = [m["text"] for m in emu.bot_messages(203)]
    assert "not in the store" in texts[0] and texts[0].startswith("Could not do that")
    assert "SageAttention" in texts[1] and "<blockquote>" in texts[1]
    assert "not in the store" in texts[2]


async def test_non_admin_reingest_runs_nothing_admin_reingest_updates_store(real):
    export = real.export_path
    write_export(
        export, {**POSTS, 17: "FlashAttention-3 использует асинхронность Hopper и FP8 для внимания."}
    )
    before = real.store.stats()["posts"]
    async with running_bot(real) as emu:
        emu.message("/reingest", user_id=55)
        await emu.wait_for(lambda: emu.sent("sendMessage", 55))
        await asyncio.sleep(0.5)
        assert real.store.stats()["posts"] == before  # the refusal ran nothing
        assert "only the bot's admins" in emu.sent("sendMessage", 55)[0].params["text"]

        async with emu.services.corpus._lock:  # another admin's re-ingest is running
            emu.message("/reingest", user_id=ADMIN)
            busy = await emu.wait_for(lambda: emu.bot_messages(ADMIN))
        assert "already running" in busy[0]["text"]

        emu.message("/reingest", user_id=ADMIN)
        done = await emu.wait_for(
            lambda: [m for m in emu.bot_messages(ADMIN) if m["text"].startswith("Re-ingest done")], timeout=30
        )
    assert "new 1" in done[0]["text"]
    status_id = done[0]["message_id"]
    assert len(emu.sent("sendMessage", ADMIN)) == 2  # the "busy" reply + one status message
    assert all(c.params["message_id"] == status_id for c in emu.sent("editMessageText", ADMIN))
    assert real.store.stats()["posts"] == before + 1
    hits = real.rag.search("FlashAttention-3 Hopper FP8", k=3)
    assert hits and hits[0].url == f"https://t.me/{CHANNEL}/17"


async def test_channel_post_becomes_searchable_and_citable(real):
    text = "Mamba-2 заменяет внимание на структурированные пространства состояний (SSD), линейно по длине."
    async with running_bot(real, telegram_channels=[CHANNEL]) as emu:
        started = time.monotonic()
        emu.channel_post(CHANNEL, 40, text)

        def indexed():
            hits = real.rag.search("Mamba-2 SSD пространства состояний", k=3)
            return hits and hits[0].url == f"https://t.me/{CHANNEL}/40"

        async def until_indexed():
            while not await asyncio.to_thread(indexed):
                await asyncio.sleep(0.2)

        await asyncio.wait_for(until_indexed(), 20)
        print(f"channel post searchable after {time.monotonic() - started:.2f} s")
        emu.message("Что такое Mamba-2?", user_id=204, lang="ru")
        final = (await emu.wait_for(lambda: answered(emu, 204), timeout=30))[-1]
    assert f"https://t.me/{CHANNEL}/40" in check_html(final["text"]).links
