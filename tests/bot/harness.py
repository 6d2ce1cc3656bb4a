"""Running the real bot (create_bot + create_dispatcher + long polling) against the emulator.

Also fakes of the bot's service Protocols (`bot.seams`: `FakeRag`, `FakeCrosspost`), returning the
real result types, for behaviour that does not depend on retrieval quality: pacing, splitting,
rate limits, bad input.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from bot.app import create_bot, create_dispatcher
from bot.corpus_ops import CorpusOps
from bot.seams import CrossPoster
from bot.services import Services
from bot.settings import Settings
from core.errors import CrosspostError
from crosspost.model import SourcePost
from crosspost.service import ConversionResult, TargetResult
from crosspost.targets.base import Part
from rag.store import Store
from rag.types import Answer, Citation
from tests.bot.emulator import Emulator

ADMIN = 777
TELEGRAM_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-spoiler",
    "span",
    "tg-emoji",
}


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "telegram_bot_token": "123456:TEST-token",
        "telegram_api_url": "http://127.0.0.1:1",
        "telegram_admin_ids": [ADMIN],
        "stream_edit_interval_s": 0.3,
        "rate_limit_messages": 50,
        "rate_limit_window_s": 60.0,
    }
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def running_bot(
    services: Services, *, drafts: bool = True, **overrides: Any
) -> AsyncIterator[Emulator]:
    emulator = Emulator(drafts=drafts)
    await emulator.start()
    settings = services.settings.model_copy(update={"telegram_api_url": emulator.base_url, **overrides})
    services = Services(
        settings,
        services.store,
        services.rag,
        services.crosspost,
        CorpusOps(services.store, services.rag, data_dir=settings.data_dir),
    )
    bot = create_bot(settings)
    dispatcher = create_dispatcher(settings, services)
    task = asyncio.create_task(dispatcher.start_polling(bot, handle_signals=False, polling_timeout=1))
    try:
        await emulator.wait_for(lambda: emulator.sent("getMe"))
        emulator.services = services  # type: ignore[attr-defined]  # tests poke the corpus lock
        yield emulator
    finally:
        emulator.closing = True  # getUpdates answers at once, so polling stops without waiting
        with contextlib.suppress(RuntimeError):
            await dispatcher.stop_polling()
        try:
            await asyncio.wait_for(task, 5)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
        await bot.session.close()
        await emulator.stop()


async def settle(emulator: Emulator, timeout: float = 30.0) -> None:
    """Wait until the bot has fetched every pushed update and finished handling each one (the
    dispatcher handles every update in its own `_process_update` task on this event loop); then
    counts of replies are final, whatever the machine's speed."""
    last = emulator.last_update_id
    await emulator.wait_for(lambda: emulator.acked >= last, timeout=timeout)

    def pending() -> list[asyncio.Task[Any]]:
        return [
            t
            for t in asyncio.all_tasks()
            if not t.done() and "_process_update" in getattr(t.get_coro(), "__qualname__", "")
        ]

    while tasks := pending():
        await asyncio.wait_for(asyncio.wait(tasks), timeout)


class HtmlCheck(HTMLParser):
    """Parses Telegram HTML; `errors` lists unknown tags, unbalanced closes and unclosed tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.links: list[str] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TELEGRAM_TAGS:
            self.errors.append(f"tag <{tag}> not allowed")
        if tag == "a":
            self.links.append(dict(attrs).get("href") or "")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}>")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text += data


def check_html(text: str) -> HtmlCheck:
    parser = HtmlCheck()
    parser.feed(text)
    parser.close()
    if parser.stack:
        parser.errors.append(f"unclosed {parser.stack}")
    # Telegram rejects a bare "<" or "&" in text: each must start a tag or an entity.
    for match in re.finditer(r"<(?!/?[a-z-]+(?:\s[^<>]*)?>)|&(?!#?\w+;)", text):
        parser.errors.append(f"unescaped {match.group()!r} at {match.start()}")
    return parser


# --- fakes ---------------------------------------------------------------------------------------
def _citations() -> list[Citation]:
    return [
        Citation(
            1,
            "https://t.me/quant_chan/12",
            "quant_chan",
            datetime(2025, 4, 28, tzinfo=UTC),
            "INT8 <Q,K> & more",
            1,
        ),
        Citation(2, "https://arxiv.org/abs/2410.02367", None, None, "FP16 PV", None, "SageAttention"),
    ]


@dataclass
class FakeRag:
    """The bot's `RagServices`; answers are scripted: `text` streamed in `chunks` pieces, then the
    final `rag.types.Answer`."""

    text: str = "SageAttention quantizes Q and K to INT8 [1]. It keeps PV in FP16 [2]."
    chunks: int = 4
    delay_s: float = 0.0
    forgotten: list[str | None] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    syncs: int = 0

    def answer(self) -> Answer:
        return Answer(self.text, "extractive", False, citations=_citations())

    async def stream_answer(
        self, question: str, *, memory_key: str | None = None
    ) -> AsyncIterator[str | Answer]:
        self.questions.append(question)
        step = max(1, len(self.text) // self.chunks)
        for i in range(0, len(self.text), step):
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            yield self.text[i : i + step]
        yield self.answer()

    def forget(self, memory_key: str | None) -> None:
        self.forgotten.append(memory_key)

    def sync(self) -> int:
        self.syncs += 1
        return 0

    def reindex(self) -> dict[str, Any]:
        self.syncs += 1
        return {}

    def close(self) -> None:
        pass


@dataclass
class FakeCrosspost:
    """The bot's `CrossPoster`: a message's text cut for X and kept whole for LinkedIn."""

    calls: list[tuple[str | SourcePost, dict[str, Any]]] = field(default_factory=list)

    def convert(
        self, source: str | SourcePost, *, lang: str | None = None, fresh: bool = False
    ) -> ConversionResult:
        self.calls.append((source, {k: v for k, v in (("lang", lang), ("fresh", fresh)) if v}))
        if isinstance(source, str):  # like the real service: a link must be in the store
            raise CrosspostError(f"{source} is not in the store")
        text = source.text
        return ConversionResult(
            source=text,
            lang=lang or "en",
            source_lang="en",
            targets={
                "x": TargetResult("x", [Part(text[:270], len(text[:270]), 280)], translated=False),
                "linkedin": TargetResult("linkedin", [Part(text, len(text), 3000)], translated=False),
            },
        )


def fake_services(
    settings: Settings, store: Store, rag: FakeRag | None = None, crosspost: CrossPoster | None = None
) -> Services:
    rag = rag or FakeRag()
    return Services(settings, store, rag, crosspost or FakeCrosspost(), CorpusOps(store, rag))
