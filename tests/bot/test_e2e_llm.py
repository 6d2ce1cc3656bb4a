"""The real RagService answering through a scripted OpenAI-compatible endpoint: the model's text
streams into the chat (throttled edits), long answers split, 429 from the Bot API honoured."""

from __future__ import annotations

import contextlib
import itertools

from rag.llm import LLMClient, LLMConfig
from tests.bot.corpus import CHANNEL
from tests.bot.harness import check_html, running_bot
from tests.fakes.openai_endpoint import FakeOpenAI

SENTENCE = "SageAttention квантует Q и K в INT8 и оставляет PV в FP16 [1]. "


@contextlib.asynccontextmanager
async def model_answering(real, answer: str, **kwargs):
    """Point the session's RagService at a scripted endpoint for one test."""
    llm = FakeOpenAI(lambda _user, _call: answer, **{"chunk": 24, "delay_s": 0.02, **kwargs})
    saved = real.rag.llm
    real.rag.llm = LLMClient(LLMConfig(llm.base_url, model="scripted", timeout_s=10))
    try:
        yield llm
    finally:
        await real.rag.llm.aclose()
        real.rag.llm = saved
        llm.close()


def finals(emu, chat_id):
    return [m for m in emu.bot_messages(chat_id) if m.get("parse_mode") == "HTML"]


async def test_llm_answer_streams_with_throttled_edits(real):
    answer = SENTENCE * 24  # ~1,500 characters in ~64 deltas over ~1.5 s
    interval = 0.4
    async with (
        model_answering(real, answer) as llm,
        running_bot(real, drafts=False, stream_edit_interval_s=interval) as emu,
    ):
        emu.message("Как SageAttention квантует внимание?", user_id=301, lang="ru")
        await emu.wait_for(lambda: (f := finals(emu, 301)) and "reply_markup" in f[-1], timeout=30)
    assert llm.requests and llm.requests[-1]["stream"] is True
    sends, edits = emu.sent("sendMessage", 301), emu.sent("editMessageText", 301)
    assert len(sends) == 1 and len(edits) >= 2
    times = [sends[0].at] + [c.at for c in edits]
    # Throttled (unthrottled edits would come ~0.02 s apart); the margin absorbs request jitter
    # on a loaded machine, where a delayed request can arrive closer to the next one.
    assert min(b - a for a, b in itertools.pairwise(times)) >= interval * 0.5
    assert all(c.params.get("parse_mode") is None for c in [sends[0], *edits[:-1]])  # previews are plain
    previews = [sends[0].params["text"], *(c.params["text"] for c in edits[:-1])]
    assert all(p.rstrip().endswith(".") for p in previews)  # whole sentences only
    final = edits[-1].params
    assert final["parse_mode"] == "HTML"
    parsed = check_html(final["text"])
    assert parsed.errors == []
    assert f"https://t.me/{CHANNEL}/11" in parsed.links


async def test_long_llm_answer_is_split_at_paragraphs(real):
    # distinct sentences: the citation check keeps a sentence the model repeats word for word once
    paragraphs = (
        " ".join(f"{SENTENCE.strip()[:-5]} (шаг {5 * i + j}) [1]." for j in range(5)) for i in range(30)
    )
    answer = "\n\n".join(f"{i}. {paragraph}" for i, paragraph in enumerate(paragraphs))  # ~9,000 characters
    async with model_answering(real, answer, chunk=400, delay_s=0.0), running_bot(real, drafts=True) as emu:
        emu.message("Расскажи подробно про SageAttention и INT8", user_id=302, lang="ru")
        await emu.wait_for(lambda: (f := finals(emu, 302)) and "reply_markup" in f[-1], timeout=30)
    parts = finals(emu, 302)
    assert len(parts) >= 3
    texts = []
    for part in parts:
        assert len(part["text"]) <= 4096
        parsed = check_html(part["text"])
        assert parsed.errors == []
        texts.append(parsed.text)
    body = "\n\n".join(texts)
    for i in range(30):  # every paragraph arrives whole, in order
        assert f"{i}. SageAttention" in body
    for text in texts[:-1]:
        assert text.rstrip().endswith(("[1].", "[1]"))
    assert [("reply_markup" in p) for p in parts] == [False] * (len(parts) - 1) + [True]


async def test_429_during_an_answer_is_waited_out(real):
    async with model_answering(real, SENTENCE * 3), running_bot(real, drafts=False) as emu:
        emu.fail("sendMessage", retry_after=1)
        emu.message("Что такое SageAttention?", user_id=303, lang="ru")
        await emu.wait_for(lambda: (f := finals(emu, 303)) and "reply_markup" in f[-1], timeout=30)
    attempts = emu.sent("sendMessage", 303)
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 1.0
    assert len(emu.bot_messages(303)) == 1  # delivered once, not lost and not duplicated
