"""Loopback load driver: N simulated users send M messages in total through the emulator to the real
bot; bounded (a deadline, then it stops by itself). Used by benchmarks/bot_load.py and a small test.

For every user message it finds the bot's replies by `reply_to` and checks that exactly one
message answers it, ending as either the final HTML answer or the rate-limit notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from tests.bot.harness import running_bot

QUESTIONS = [
    "Что такое SageAttention?",
    "How does GPTQ quantize weights?",
    "Что умеет Qwen-Image?",
    "Как работает Mixture of Experts?",
    "What does LoRA train?",
    "Бот для кросспостинга",
    "INT8 attention speedup",
    "Сколько экспертов выбирает роутер?",
]


@dataclass
class LoadReport:
    users: int
    messages: int
    answered: int = 0
    rate_limited: int = 0
    lost: list[tuple[int, int]] = field(default_factory=list)  # (chat, message id) without a final reply
    duplicated: list[tuple[int, int]] = field(default_factory=list)  # more than one reply message
    first_reply_s: list[float] = field(default_factory=list)  # typing or text, whichever came first
    first_text_s: list[float] = field(default_factory=list)
    final_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    @staticmethod
    def pct(values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    def lines(self) -> list[str]:
        return [
            f"users {self.users}, messages {self.messages}, wall {self.wall_s:.1f} s",
            f"answered {self.answered}, rate-limit notices {self.rate_limited}, "
            f"lost {len(self.lost)}, duplicated {len(self.duplicated)}",
            f"time to first reply (typing or text): p50 {self.pct(self.first_reply_s, 0.5) * 1000:.0f} ms, "
            f"p95 {self.pct(self.first_reply_s, 0.95) * 1000:.0f} ms",
            f"time to first text: p50 {self.pct(self.first_text_s, 0.5) * 1000:.0f} ms, "
            f"p95 {self.pct(self.first_text_s, 0.95) * 1000:.0f} ms",
            f"time to final reply: p50 {self.pct(self.final_s, 0.5) * 1000:.0f} ms, "
            f"p95 {self.pct(self.final_s, 0.95) * 1000:.0f} ms, "
            f"mean {statistics.fmean(self.final_s) * 1000 if self.final_s else float('nan'):.0f} ms",
        ]


def _is_final(message: dict[str, Any]) -> str | None:
    if message["text"].startswith(("Too many messages", "Слишком много сообщений")):
        return "limited"
    if message.get("parse_mode") == "HTML":
        return "answer"
    return None


async def run_load(
    services: Any,
    *,
    users: int = 50,
    messages: int = 200,
    spread_s: float = 3.0,
    deadline_s: float = 120.0,
    seed: int = 0,
    **overrides: Any,
) -> LoadReport:
    rng = random.Random(seed)
    report = LoadReport(users, messages)
    owners = [i % users for i in range(messages)]
    rng.shuffle(owners)
    delays = sorted(rng.uniform(0, spread_s) for _ in range(messages))
    started = time.monotonic()
    async with running_bot(services, drafts=False, **overrides) as emu:
        pushed: list[tuple[int, int, float]] = []  # (chat, message id, time)
        for owner, delay in zip(owners, delays, strict=True):
            wait = started + delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            user = 10_000 + owner
            message = emu.message(rng.choice(QUESTIONS), user_id=user, lang=rng.choice(["ru", "en"]))
            pushed.append((user, message["message_id"], time.monotonic()))

        def replies(chat: int, message_id: int) -> list[dict[str, Any]]:
            return [m for m in emu.bot_messages(chat) if m.get("reply_to_message_id") == message_id]

        def all_final() -> bool:
            return all(any(_is_final(m) for m in replies(c, i)) for c, i, _ in pushed)

        with contextlib.suppress(TimeoutError):  # what is missing at the deadline is reported as lost
            await emu.wait_for(all_final, timeout=max(1.0, deadline_s - (time.monotonic() - started)))
        await asyncio.sleep(0.3)  # anything late would show up as a duplicate
        report.wall_s = time.monotonic() - started
        for chat, message_id, at in pushed:
            found = replies(chat, message_id)
            kinds = [_is_final(m) for m in found]
            if len(found) > 1:
                report.duplicated.append((chat, message_id))
            if not any(kinds):
                report.lost.append((chat, message_id))
                continue
            report.rate_limited += kinds.count("limited")
            report.answered += kinds.count("answer")
            first_send = next(
                c
                for c in emu.sent("sendMessage", chat)
                if (c.params.get("reply_parameters") or {}).get("message_id") == message_id
                or c.params.get("reply_to_message_id") == message_id
            )
            typing = [c.at for c in emu.sent("sendChatAction", chat) if at <= c.at <= first_send.at]
            report.first_text_s.append(first_send.at - at)
            report.first_reply_s.append(min([first_send.at, *typing]) - at)
            last_touch = max(
                [first_send.at]
                + [
                    c.at
                    for c in emu.sent("editMessageText", chat)
                    if c.params.get("message_id") == found[0]["message_id"]
                ]
            )
            report.final_s.append(last_touch - at)
    return report
