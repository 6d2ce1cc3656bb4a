"""The n choices of one API request as engine requests: submitted, collected, streamed and cancelled
together. Several prompts in one request (legacy completions) give n choices each, numbered prompt by
prompt as OpenAI does (choice i answers prompt i // n); all of them run in the engine's batch at once.

Boundary: engine requests and their events on one side, HTTP (asyncio queue, server-sent events,
`APIError`s) on the other; no routes and no JSON shapes of their own (the server passes chunk makers).
Events reach the request's asyncio queue from the engine thread via `call_soon_threadsafe`, tagged
with the choice index.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from inference.engine import (
    ContextLengthError,
    EmptyPromptError,
    Engine,
    Event,
    QueueFullError,
    SamplingParams,
    TokenLogprob,
)
from inference.engine import Request as EngineRequest
from inference.server.api_errors import APIError
from inference.server.protocol import ErrorBody, PromptTokensDetails, Usage

POLL_S = 0.25  # how often a waiting request checks whether its client went away


class ChoiceRunner:
    def __init__(self, engine: Engine):
        self.engine = engine

    def submit(
        self,
        prompts: list[list[int]],
        body: Any,
        max_tokens: int | None,
        prompt_param: str,
        logprobs: int | None,
        prompt_logprobs: int | None = None,
    ) -> tuple[list[EngineRequest], asyncio.Queue]:
        """One engine request per choice (n per prompt), their events merged into one queue as
        (choice index, Event). All or none: a refusal cancels the choices already submitted."""
        n = body.n or 1
        room = self.engine.config.max_batch + self.engine.config.max_queue
        if n * len(prompts) > room:
            what = f"n={n}" if len(prompts) == 1 else f"{len(prompts)} prompts x n={n}"
            raise APIError(
                400,
                f"{what} is more than this server can ever hold at once ({room} requests)",
                param="n" if len(prompts) == 1 else prompt_param,
            )
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()

        def on_event(index: int):
            def put(ev: Event) -> None:
                with contextlib.suppress(RuntimeError):  # loop closed: server shutting down
                    loop.call_soon_threadsafe(queue.put_nowait, (index, ev))

            return put

        reqs: list[EngineRequest] = []
        try:
            for i in range(n * len(prompts)):
                prompt_ids, j = prompts[i // n], i % n
                params = SamplingParams(
                    max_tokens=max_tokens,
                    temperature=1.0 if body.temperature is None else body.temperature,
                    top_p=1.0 if body.top_p is None else body.top_p,
                    top_k=body.top_k or 0,
                    # choice i draws with seed + i: the choices differ, yet a seeded request repeats
                    # (mod 2**64, torch's seed range, where -1 and 2**64 - 1 are the same seed)
                    seed=None if body.seed is None else (body.seed + j) % 2**64,
                    stop=body.stop_list(),
                    stop_token_ids=tuple(body.stop_token_ids or ()),
                    logprobs=logprobs,
                    prompt_logprobs=prompt_logprobs,
                )
                reqs.append(self.engine.submit(prompt_ids, params, on_event(i)))
        except QueueFullError as exc:
            self.cancel(reqs)
            raise APIError(
                429, str(exc), type="rate_limit_error", code="server_busy", headers={"Retry-After": "1"}
            ) from None
        except ContextLengthError as exc:
            self.cancel(reqs)
            # The code goes into the message too: langchain-openai 1.7 spots an overflow by
            # "context_length_exceeded" in str(error), and openai-python 3.x puts only the message
            # there (2.x put the whole body); LiteLLM matches OpenAI's "maximum context length" wording.
            message = f"{exc} (context_length_exceeded)"
            raise APIError(400, message, param=prompt_param, code="context_length_exceeded") from None
        except EmptyPromptError as exc:
            self.cancel(reqs)
            raise APIError(400, str(exc), param=prompt_param, code="empty_prompt") from None
        except BaseException:
            self.cancel(reqs)
            raise
        return reqs, queue

    def cancel(self, reqs: list[EngineRequest]) -> None:
        for req in reqs:
            self.engine.cancel(req)  # no-op when finished

    async def next_event(
        self, request: Request, reqs: list[EngineRequest], queue: asyncio.Queue
    ) -> tuple[int, Event] | None:
        """The next (choice, event), or None once the client has gone (every choice is cancelled)."""
        while True:
            try:
                return await asyncio.wait_for(queue.get(), POLL_S)
            except TimeoutError:
                if await request.is_disconnected():
                    self.cancel(reqs)
                    return None

    async def collect(
        self, request: Request, reqs: list[EngineRequest], queue: asyncio.Queue
    ) -> list[CollectedChoice]:
        choices = [CollectedChoice() for _ in reqs]
        try:
            while any(c.last is None for c in choices):
                got = await self.next_event(request, reqs, queue)
                if got is None:
                    raise APIError(499, "client closed the request", code="client_closed")
                choice = choices[got[0]]
                if choice.last is None:
                    choice.add(got[1])
        finally:
            self.cancel(reqs)  # frees the slots when the client left or one choice failed
        if any(c.last.finish_reason == "error" for c in choices):
            raise APIError(500, "generation failed; see the server log", type="server_error")
        return choices

    def sse(
        self,
        request: Request,
        reqs: list[EngineRequest],
        queue: asyncio.Queue,
        make_chunks: Callable[[int, Event], list[str]],
        usage_chunk: Callable[[Usage], str],
        include_usage: bool,
        first: list[str],
        per_prompt: int = 1,
    ) -> StreamingResponse:
        """Chunks of all choices interleaved as their events come; [DONE] once every choice finished."""

        async def body() -> AsyncIterator[str]:
            for chunk in first:
                yield f"data: {chunk}\n\n"
            finished: dict[int, Event] = {}
            running = set(range(len(reqs)))
            while running:
                got = await self.next_event(request, reqs, queue)
                if got is None:
                    return
                index, ev = got
                if index not in running:
                    continue
                if ev.finish_reason == "error":
                    err = ErrorBody(message="generation failed; see the server log", type="server_error")
                    yield f"data: {json.dumps({'error': err.model_dump()})}\n\n"
                    break
                for chunk in make_chunks(index, ev):
                    yield f"data: {chunk}\n\n"
                if ev.finish_reason:
                    running.discard(index)
                    finished[index] = ev
            else:
                if include_usage:
                    done = [finished[i] for i in sorted(finished)]
                    yield f"data: {usage_chunk(usage_of(done, per_prompt))}\n\n"
            yield "data: [DONE]\n\n"

        return _SSE(body(), on_close=lambda: self.cancel(reqs))


@dataclass
class CollectedChoice:
    """One choice's events as they arrive: text parts, log-probabilities, the finishing event."""

    parts: list[str] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    last: Event | None = None

    def add(self, ev: Event) -> None:
        self.parts.append(ev.text)
        self.logprobs.extend(ev.logprobs or ())
        if ev.finish_reason:
            self.last = ev

    def text(self) -> str:
        return "".join(self.parts)


def usage_of(finished: list[Event], per_prompt: int = 1) -> Usage:
    """Each prompt counts once (its n choices share it); completion tokens add up over the choices.
    `finished` is in choice order, `per_prompt` choices per prompt."""
    prompt = sum(ev.prompt_tokens for ev in finished[::per_prompt])
    completion = sum(ev.completion_tokens for ev in finished)
    # prompt tokens every choice found in the cache (the choices may land in different slots)
    cached = PromptTokensDetails(cached_tokens=min((ev.cached_tokens for ev in finished), default=0))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=cached,
    )


class _SSE(StreamingResponse):
    """Server-sent events that cancel their engine request however the response ends
    (finished, client gone while waiting, or a send failing on a closed socket)."""

    def __init__(self, content: AsyncIterator[str], on_close):
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()
            await self.body_iterator.aclose()  # run the generator's cleanup now, not at GC time
