"""Short per-chat conversation memory and follow-up rewriting.

A chat (memory key) keeps its last few turns for `ttl_s`; a follow-up such as "а чем он лучше?"
or "what about its speed?" is rewritten into a standalone query before retrieval: by the LLM
when one is configured, otherwise by prefixing the previous standalone query (keyword search
gets the topic back; the follow-up's own words still rank within it).
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import dataclass

from rag.text import tokenize

MAX_TURNS = 3
TTL_S = 30 * 60

_FOLLOW_UP = re.compile(
    r"^(а|и|но|еще|ещё|также|тогда|почему|зачем|подробнее|расскажи подробнее|and|but|also|what about|how about|"
    r"why|so|then|more|tell me more)\b"
    r"|\b(это|этот|эта|эти|этого|этом|этой|он|она|оно|они|его|ее|её|их|него|нее|них|там|тут|"
    r"it|its|this|that|these|those|they|them|their|there)\b",
    re.I,
)


@dataclass
class Turn:
    question: str
    query: str  # standalone query that was searched
    answer: str
    at: float


class ChatMemory:
    def __init__(self, max_turns: int = MAX_TURNS, ttl_s: float = TTL_S):
        self.max_turns = max_turns
        self.ttl_s = ttl_s
        self._turns: dict[str, deque[Turn]] = {}
        self._lock = threading.Lock()

    def history(self, key: str | None) -> list[Turn]:
        if key is None:
            return []
        with self._lock:
            turns = self._turns.get(key)
            if not turns:
                return []
            now = time.monotonic()
            while turns and now - turns[0].at > self.ttl_s:
                turns.popleft()
            return list(turns)

    def remember(self, key: str | None, question: str, query: str, answer: str) -> None:
        if key is None:
            return
        with self._lock:
            turns = self._turns.setdefault(key, deque(maxlen=self.max_turns))
            turns.append(Turn(question, query, answer[:1500], time.monotonic()))
            if len(self._turns) > 10_000:  # a bot with many chats: drop the oldest chat
                self._turns.pop(next(iter(self._turns)))

    def forget(self, key: str | None) -> None:
        if key is None:
            return
        with self._lock:
            self._turns.pop(key, None)


def looks_like_follow_up(question: str) -> bool:
    return len(tokenize(question)) <= 3 or bool(_FOLLOW_UP.search(question.strip()))


def heuristic_rewrite(question: str, history: list[Turn]) -> str:
    if not history or not looks_like_follow_up(question):
        return question
    return f"{history[-1].query} {question}"


REWRITE_PROMPT = (
    "Rewrite the user's last question into one standalone search query that can be understood without "
    "the conversation. Keep the language of the last question, keep names and terms, output only the query."
)


def rewrite_messages(question: str, history: list[Turn]) -> list[dict[str, str]]:
    convo = "\n".join(f"Q: {t.question}\nA: {t.answer[:400]}" for t in history)
    return [
        {"role": "system", "content": REWRITE_PROMPT},
        {"role": "user", "content": f"Conversation:\n{convo}\n\nLast question: {question}"},
    ]
