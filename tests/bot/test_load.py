"""A small variant of benchmarks/bot_load.py: many users at once, no message lost or answered twice."""

from __future__ import annotations

from tests.bot.load import run_load


async def test_every_message_gets_one_final_reply_or_a_notice(real):
    # 20 users x 3 messages with a limit of 2 per window: exactly one notice per user.
    report = await run_load(
        real,
        users=20,
        messages=60,
        spread_s=1.5,
        deadline_s=90,
        rate_limit_messages=2,
        rate_limit_window_s=60,
    )
    print("\n".join(report.lines()))
    assert report.lost == [] and report.duplicated == []
    assert report.rate_limited == 20
    assert report.answered == 40
