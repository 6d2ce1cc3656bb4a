"""End-to-end over HTTP with scripted services: pacing, splitting, rate limits, 429, buttons, admin gate."""

from __future__ import annotations

import itertools
import json

from core.errors import RetrievalError
from tests.bot.harness import ADMIN, FakeRag, check_html, fake_services, running_bot


def final_reply(emu, chat_id):
    """The bot's last message in the chat that carries HTML (the final answer)."""
    html = [m for m in emu.bot_messages(chat_id) if m.get("parse_mode") == "HTML"]
    return html[-1] if html else None


async def test_start_in_russian_and_english(fakes):
    async with running_bot(fakes) as emu:
        emu.message("/start", user_id=5, lang="ru")
        emu.message("/start", user_id=6, lang="en")
        await emu.wait_for(lambda: len(emu.sent("sendMessage")) == 2)
        texts = {c.params["chat_id"]: c.params["text"] for c in emu.sent("sendMessage")}
    assert "Привет" in texts[5]
    assert texts[6].startswith("Hi!")
    assert "/reingest" not in texts[6]  # admin commands only shown to admins


async def test_answer_streams_then_final_html_with_sources(fakes):
    async with running_bot(fakes) as emu:
        emu.message("what is SageAttention?", user_id=10)
        reply = await emu.wait_for(lambda: final_reply(emu, 10))
        actions = emu.sent("sendChatAction", 10)
    assert actions and actions[0].params["action"] == "typing"
    assert actions[0].at <= emu.sent("sendMessage", 10)[0].at  # typing comes first
    parsed = check_html(reply["text"])
    assert parsed.errors == []
    assert "https://t.me/quant_chan/12" in parsed.links
    assert "https://arxiv.org/abs/2410.02367" in parsed.links
    assert "Sources" in parsed.text
    buttons = [b["callback_data"] for row in reply["reply_markup"]["inline_keyboard"] for b in row]
    assert any(d.startswith("src:") for d in buttons)
    assert "cv:quant_chan:12" in buttons  # convert the cited channel post; papers get no button


async def test_drafts_in_private_chat_then_one_message(bot_settings, store):
    rag = FakeRag(text="First sentence here. " * 12, chunks=12, delay_s=0.05)
    async with running_bot(fake_services(bot_settings, store, rag), drafts=True) as emu:
        emu.message("q", user_id=11)
        await emu.wait_for(lambda: final_reply(emu, 11))
    drafts = emu.sent("sendMessageDraft", 11)
    assert drafts, "private chats stream through sendMessageDraft when the server supports it"
    assert len({c.params["draft_id"] for c in drafts}) == 1
    assert not emu.sent("editMessageText", 11)
    assert len(emu.sent("sendMessage", 11)) == 1


async def test_streaming_edits_are_throttled_without_drafts(bot_settings, store):
    rag = FakeRag(text="Sentence number one is here. " * 30, chunks=60, delay_s=0.03)
    interval = 0.4
    async with running_bot(
        fake_services(bot_settings, store, rag), drafts=False, stream_edit_interval_s=interval
    ) as emu:
        emu.message("q", user_id=12)
        await emu.wait_for(lambda: final_reply(emu, 12))
    sends = emu.sent("sendMessage", 12)
    edits = emu.sent("editMessageText", 12)
    assert len(sends) == 1 and len(edits) >= 2
    times = [sends[0].at] + [c.at for c in edits]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= interval * 0.95, gaps
    # 60 deltas in ~1.8 s: without throttling there would be ~60 edits.
    assert len(edits) <= 1 + (times[-1] - times[0]) / interval + 1
    previews = [c.params["text"] for c in edits[:-1]]
    assert all(p.rstrip().endswith(".") for p in previews), previews  # sentence-buffered


async def test_long_answer_is_split_below_limit_at_paragraphs(bot_settings, store):
    paragraph = "This paragraph talks about quantized attention & <kernels> [1]. " * 9
    rag = FakeRag(text="\n\n".join(f"{i}: {paragraph}" for i in range(20)), chunks=3)
    async with running_bot(fake_services(bot_settings, store, rag), drafts=False) as emu:
        emu.message("q", user_id=13)
        await emu.wait_for(lambda: (m := final_reply(emu, 13)) and "reply_markup" in m and m)
        finals = [m for m in emu.bot_messages(13) if m.get("parse_mode") == "HTML"]
    assert len(finals) >= 3
    for message in finals:
        assert len(message["text"]) <= 4096
        assert check_html(message["text"]).errors == []
    texts = [check_html(m["text"]).text for m in finals]
    # Every part but the sources part ends at a paragraph end, and no paragraph is cut.
    for text in texts[:-1]:
        assert text.rstrip().endswith("[1].")
    joined = "\n\n".join(texts)
    for i in range(20):
        assert f"{i}: {paragraph.strip()}" in joined
    assert "reply_markup" in finals[-1] and all("reply_markup" not in m for m in finals[:-1])


async def test_retry_after_429_is_honoured(fakes):
    async with running_bot(fakes) as emu:
        emu.fail("sendMessage", retry_after=1)
        emu.message("/help", user_id=14)
        await emu.wait_for(lambda: [c for c in emu.sent("sendMessage", 14) if c.status == 200])
    attempts = emu.sent("sendMessage", 14)
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 1.0
    assert attempts[0].params["text"] == attempts[1].params["text"]


async def test_rate_limit_says_wait(bot_settings, store):
    services = fake_services(bot_settings, store)
    async with running_bot(services, rate_limit_messages=2, rate_limit_window_s=30) as emu:
        for _ in range(3):
            emu.message("/help", user_id=15)
        await emu.wait_for(lambda: len(emu.sent("sendMessage", 15)) == 3)
        texts = [c.params["text"] for c in emu.sent("sendMessage", 15)]
    notices = [t for t in texts if t.startswith("Too many messages: please wait")]
    assert len(notices) == 1 and ("30 s" in notices[0] or "29 s" in notices[0])


async def test_slow_chat_does_not_block_other_chats(bot_settings, store):
    slow = FakeRag(text="Slow answer. " * 10, chunks=10, delay_s=0.3)  # ~3 s
    async with running_bot(fake_services(bot_settings, store, slow)) as emu:
        emu.message("slow question", user_id=20)
        await emu.wait_for(lambda: emu.sent("sendChatAction", 20))
        emu.message("/help", user_id=21)
        await emu.wait_for(lambda: emu.sent("sendMessage", 21))
        assert final_reply(emu, 20) is None  # chat 21 was served while chat 20's answer was generating
        await emu.wait_for(lambda: final_reply(emu, 20), timeout=20)


async def test_sources_button_and_stale_button(fakes):
    async with running_bot(fakes) as emu:
        emu.message("q", user_id=30)
        reply = await emu.wait_for(lambda: final_reply(emu, 30))
        data = reply["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        emu.press(reply, data, user_id=30)
        quotes = await emu.wait_for(lambda: [m for m in emu.bot_messages(30) if "<blockquote>" in m["text"]])
        emu.press(reply, "src:dead00:1", user_id=30)  # a button from before a restart
        emu.press(reply, "legacy-button", user_id=30)
        await emu.wait_for(lambda: len(emu.sent("answerCallbackQuery")) == 3)
    assert check_html(quotes[0]["text"]).errors == []
    assert "INT8 &lt;Q,K&gt; &amp; more" in quotes[0]["text"]
    stale = emu.sent("answerCallbackQuery")[1:]
    assert all("older message" in c.params.get("text", "") for c in stale)


async def test_new_forgets_memory(fakes, fake_rag):
    async with running_bot(fakes) as emu:
        emu.message("/new", user_id=31)
        await emu.wait_for(lambda: emu.sent("sendMessage", 31))
    assert fake_rag.forgotten == ["tg:31"]


async def test_group_answers_only_when_addressed(fakes, fake_rag):
    async with running_bot(fakes) as emu:
        emu.chat(-500, "supergroup")
        emu.message("people chatting about lunch", user_id=40, chat_id=-500)
        emu.message("@research_test_bot what is SageAttention?", user_id=40, chat_id=-500)
        await emu.wait_for(lambda: final_reply(emu, -500))
    assert fake_rag.questions == ["what is SageAttention?"]


async def test_non_admin_commands_refused_and_nothing_runs(fakes, fake_rag, store):
    before = store.stats()
    async with running_bot(fakes) as emu:
        for command in ("/reingest", "/reindex", "/stats", "/sources"):
            emu.message(command, user_id=50)
        emu.message(
            None, user_id=50, document=emu.document(b'{"messages": []}', "result.json", "application/json")
        )
        await emu.wait_for(lambda: len(emu.sent("sendMessage", 50)) == 5)
        texts = [c.params["text"] for c in emu.sent("sendMessage", 50)]
    assert sum("only the bot's admins" in t for t in texts) == 4
    assert sum("Only admins can add files" in t for t in texts) == 1
    assert fake_rag.syncs == 0 and not emu.sent("getFile")
    assert store.stats() == before


async def test_bad_input_each_gets_a_short_reply(fakes, fake_rag):
    async with running_bot(fakes) as emu:
        cases = {
            101: emu.message("   ", user_id=101),
            102: emu.message(
                None,
                user_id=102,
                sticker={
                    "file_id": "s1",
                    "file_unique_id": "us1",
                    "type": "regular",
                    "width": 1,
                    "height": 1,
                    "is_animated": False,
                    "is_video": False,
                },
            ),
            103: emu.message(
                None, user_id=103, photo=[{"file_id": "p1", "file_unique_id": "up1", "width": 1, "height": 1}]
            ),
            104: emu.message("x" * 10_000, user_id=104),
            105: emu.message(
                "secret plans",
                user_id=105,
                forward_origin={"type": "hidden_user", "sender_user_name": "Someone", "date": 1},
            ),
            106: emu.message("/crosspost", user_id=106),
        }
        await emu.wait_for(lambda: all(emu.sent("sendMessage", c) for c in cases))
        replies = {c: emu.sent("sendMessage", c)[0].params["text"] for c in cases}
    assert "empty" in replies[101]
    assert "text only" in replies[102] and "text only" in replies[103]
    assert "10000 characters" in replies[104]
    assert "private chat" in replies[105]
    assert "/crosspost" in replies[106]
    assert fake_rag.questions == []  # none of these reached retrieval


async def test_channel_post_is_stored_and_synced(fakes, fake_rag, store):
    async with running_bot(fakes, telegram_channels=["quant_chan"]) as emu:
        emu.channel_post(
            "quant_chan",
            77,
            "New post about FlashAttention 3 https://arxiv.org/abs/2407.08608",
            entities=[{"type": "url", "offset": 33, "length": 32}],
        )
        emu.channel_post("other_chan", 5, "Not configured")
        await emu.wait_for(lambda: fake_rag.syncs >= 1, timeout=10)
    stats = store.stats()
    assert stats["posts"] == 1 and stats["papers"] == 1
    sources = store.list_sources()
    assert [s.location for s in sources] == ["telegram-bot-api:quant_chan"]


async def test_admin_upload_not_an_export_and_unreadable_pdf(fakes, store):
    async with running_bot(fakes) as emu:
        emu.message(
            None, user_id=ADMIN, document=emu.document(b'{"hello": 1}', "result.json", "application/json")
        )
        await emu.wait_for(lambda: [m for m in emu.bot_messages(ADMIN) if "Could not" in m["text"]])
        emu.message(
            None, user_id=ADMIN, document=emu.document(b"%PDF-1.4 garbage", "paper.pdf", "application/pdf")
        )
        await emu.wait_for(lambda: len([m for m in emu.bot_messages(ADMIN) if "Could not" in m["text"]]) == 2)
        texts = [m["text"] for m in emu.bot_messages(ADMIN) if "Could not" in m["text"]]
    assert "result.json" in texts[0] and "paper.pdf" in texts[1]
    assert store.stats()["posts"] == 0


async def test_admin_upload_export_is_ingested(fakes, store, fake_rag):
    export = {
        "name": "Quant",
        "type": "public_channel",
        "messages": [
            {"id": 1, "type": "message", "date": "2025-04-28T10:00:00", "text": "Quantization post one"},
            {"id": 2, "type": "message", "date": "2025-04-29T10:00:00", "text": "Second post on kernels"},
        ],
    }
    data = json.dumps(export).encode()
    async with running_bot(fakes) as emu:
        emu.message(None, user_id=ADMIN, document=emu.document(data, "result.json", "application/json"))
        done = await emu.wait_for(
            lambda: [m for m in emu.bot_messages(ADMIN) if m["text"].startswith("result.json:")]
        )
    assert "new 2" in done[0]["text"]
    assert store.stats()["posts"] == 2 and fake_rag.syncs == 1


async def test_forwarded_channel_post_preview_switch_retranslate_thread(fakes):
    crosspost = fakes.crosspost
    async with running_bot(fakes) as emu:
        forwarded = emu.message(
            "Hello from a public channel post",
            user_id=60,
            forward_origin={
                "type": "channel",
                "date": 1,
                "message_id": 5,
                "chat": {"id": -100777, "type": "channel", "title": "Other", "username": "other_chan"},
            },
        )
        preview = (await emu.wait_for(lambda: emu.bot_messages(60)))[0]
        assert preview["reply_to_message_id"] == forwarded["message_id"]
        rows = preview["reply_markup"]["inline_keyboard"]
        linkedin = next(b["callback_data"] for row in rows for b in row if b["text"] == "LinkedIn")
        emu.press(preview, linkedin, user_id=60)
        await emu.wait_for(
            lambda: emu.messages[(60, preview["message_id"])]["text"].startswith("<b>LinkedIn")
        )
        retranslate = next(b["callback_data"] for b in rows[-1] if ":retranslate:" in b["callback_data"])
        emu.press(preview, retranslate, user_id=60)
        await emu.wait_for(lambda: len(crosspost.calls) == 3)
        thread = next(b["callback_data"] for b in rows[-1] if ":thread:" in b["callback_data"])
        emu.press(preview, thread, user_id=60)
        await emu.wait_for(lambda: len(emu.bot_messages(60)) == 2)
    # The link was tried first (not in the store), then the forwarded text was converted.
    assert crosspost.calls[0][0] == "https://t.me/other_chan/5"
    assert crosspost.calls[1][0].text == "Hello from a public channel post"
    assert crosspost.calls[2][1] == {"fresh": True}
    assert "Hello from a public channel post" in check_html(preview["text"]).text
    assert emu.bot_messages(60)[1]["text"] == "Hello from a public channel post"


async def test_crosspost_text_keeps_its_formatting(fakes):
    async with running_bot(fakes) as emu:
        # "/crosspost " is 11 UTF-16 units, "😀 " 3 more: "Bold" starts at 14 in the message, 3 in the text.
        emu.message(
            "/crosspost 😀 Bold claim here",
            user_id=61,
            entities=[{"type": "bold", "offset": 14, "length": 4}],
        )
        await emu.wait_for(lambda: emu.bot_messages(61))
    source, _ = fakes.crosspost.calls[0]
    assert source.text == "😀 Bold claim here"
    assert source.entities == [{"type": "bold", "offset": 3, "length": 4}]


async def test_admin_stats_sources_reindex(fakes, fake_rag, store):
    export = {
        "name": "Quant",
        "messages": [
            {"id": 1, "type": "message", "date": "2025-04-28T10:00:00", "text": "A post about kernels"}
        ],
    }
    async with running_bot(fakes) as emu:
        emu.message("/sources", user_id=ADMIN)
        await emu.wait_for(lambda: len(emu.bot_messages(ADMIN)) == 1)
        emu.message(
            None,
            user_id=ADMIN,
            document=emu.document(json.dumps(export).encode(), "result.json", "application/json"),
        )
        await emu.wait_for(lambda: any(m["text"].startswith("result.json:") for m in emu.bot_messages(ADMIN)))
        for command in ("/stats", "/sources", "/reindex"):
            emu.message(command, user_id=ADMIN)
        await emu.wait_for(lambda: any(m["text"] == "Indexes rebuilt." for m in emu.bot_messages(ADMIN)))
        texts = [m["text"] for m in emu.bot_messages(ADMIN)]
    assert texts[0].startswith("No sources yet")
    assert "posts 1" in next(t for t in texts if t.startswith("Channels"))
    listing = next(t for t in texts if t.startswith("Sources (1)"))
    assert "result.json (telegram-json" in listing
    assert fake_rag.syncs == 2  # the upload's sync, then the reindex


class FailingRag(FakeRag):
    async def stream_answer(self, question, *, memory_key):
        if "empty" in question:
            raise RetrievalError("nothing ingested yet: run research-bot ingest")
        raise ZeroDivisionError("a bug")
        yield  # pragma: no cover


async def test_errors_get_a_polite_reply_and_the_chat_keeps_working(bot_settings, store, caplog):
    async with running_bot(fake_services(bot_settings, store, FailingRag())) as emu:
        emu.message("empty corpus?", user_id=70)
        emu.message("trigger a bug", user_id=70)
        emu.message("/help", user_id=70)
        await emu.wait_for(lambda: len(emu.sent("sendMessage", 70)) == 3)
        texts = [c.params["text"] for c in emu.sent("sendMessage", 70)]
    # Error replies are sent by the error handler, after the chat's queue moved on: any order.
    assert "Could not do that: nothing ingested yet: run research-bot ingest" in texts
    assert sum(t.startswith("Sorry, something went wrong") for t in texts) == 1
    assert sum(t.startswith("Hi!") for t in texts) == 1
    assert "ZeroDivisionError" in caplog.text  # the detail is logged, not shown
