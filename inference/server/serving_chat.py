"""POST /v1/chat/completions: messages through the chat template to the engine, back as one
`ChatCompletion` or as `ChatCompletionChunk` server-sent events.

Boundary: a validated `ChatCompletionRequest` in, a response out; HTTP plumbing (auth, errors as
JSON) is the router's and the app's. Tokenizing runs in a worker thread: the chat template and
tokenizer are the heavy part of a big prompt (2.5 s per MB of Cyrillic text), and /health and
running streams must keep answering meanwhile.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from inference.engine import Event
from inference.server.api_errors import APIError
from inference.server.choices import ChoiceRunner, usage_of
from inference.server.protocol import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkChoice,
    DeltaMessage,
    ResponseMessage,
    Usage,
    chat_logprobs,
    new_id,
)
from inference.server.serving_models import ServingModels
from inference.tokenizer import ChatTokenizer, TokenizerError


class ServingChat:
    def __init__(self, tokenizer: ChatTokenizer, runner: ChoiceRunner, models: ServingModels):
        self.tok, self.runner, self.models = tokenizer, runner, models

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        try:
            return self.tok.apply_chat(messages)
        except (ValueError, TokenizerError) as exc:
            raise APIError(400, str(exc), param="messages") from None

    async def create(
        self, request: Request, body: ChatCompletionRequest
    ) -> ChatCompletion | StreamingResponse:
        self.models.check(body.model)
        try:
            messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        except ValueError as exc:
            raise APIError(400, str(exc), param="messages") from None
        prompt_ids = await run_in_threadpool(self.prompt_ids, messages)
        k = (body.top_logprobs or 0) if body.logprobs else None
        max_tokens = body.max_completion_tokens or body.max_tokens
        reqs, queue = self.runner.submit([prompt_ids], body, max_tokens, "messages", k)
        cid = new_id("chatcmpl")
        if not body.stream:
            choices = await self.runner.collect(request, reqs, queue)
            return ChatCompletion(
                id=cid,
                model=body.model,
                usage=usage_of([c.last for c in choices], len(choices)),
                choices=[
                    ChatChoice(
                        index=i,
                        message=ResponseMessage(content=c.text()),
                        finish_reason=c.last.finish_reason,
                        logprobs=chat_logprobs(c.logprobs, self.tok.token_piece) if k is not None else None,
                    )
                    for i, c in enumerate(choices)
                ],
            )

        def dump(choice: ChunkChoice) -> str:
            return ChatCompletionChunk(id=cid, model=body.model, choices=[choice]).model_dump_json()

        def chunks(index: int, ev: Event) -> list[str]:
            out = []
            # a token whose text is held back (half a character) still sends its log-probability
            if ev.text or (k is not None and ev.token_ids):
                lps = chat_logprobs(ev.logprobs or [], self.tok.token_piece) if k is not None else None
                out.append(dump(ChunkChoice(index=index, delta=DeltaMessage(content=ev.text), logprobs=lps)))
            if ev.finish_reason:
                out.append(
                    dump(ChunkChoice(index=index, delta=DeltaMessage(), finish_reason=ev.finish_reason))
                )
            return out

        def usage_chunk(usage: Usage) -> str:
            return ChatCompletionChunk(id=cid, model=body.model, choices=[], usage=usage).model_dump_json()

        first = [
            dump(ChunkChoice(index=i, delta=DeltaMessage(role="assistant", content="")))
            for i in range(len(reqs))
        ]
        include = bool(body.stream_options and body.stream_options.include_usage)
        return self.runner.sse(
            request, reqs, queue, chunks, usage_chunk, include, first, per_prompt=len(reqs)
        )
