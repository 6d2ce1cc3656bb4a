"""POST /v1/completions (legacy): one or several prompts, as text or token ids, each with n choices;
echo and prompt log-probabilities (what evaluation harnesses send to score answers).

Boundary: a validated `CompletionRequest` in, one `Completion` or its server-sent events out; HTTP
plumbing is the router's and the app's. Tokenizing runs in a worker thread, as for chat.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from inference.engine import Event
from inference.server.api_errors import APIError
from inference.server.choices import ChoiceRunner, usage_of
from inference.server.protocol import (
    Completion,
    CompletionChoice,
    CompletionRequest,
    TextOffsets,
    Usage,
    completion_logprobs,
    new_id,
)
from inference.server.serving_models import ServingModels
from inference.tokenizer import ChatTokenizer


class ServingCompletion:
    def __init__(self, tokenizer: ChatTokenizer, runner: ChoiceRunner, models: ServingModels):
        self.tok, self.runner, self.models = tokenizer, runner, models
        self.vocab = tokenizer.hf.vocab_size + len(tokenizer.hf.get_added_vocab())

    def prompts(self, prompt: Any) -> list[tuple[str | None, list[int]]]:
        """(text or None for token ids, ids) per prompt: a string, strings, token ids, lists of ids."""
        tok, vocab = self.tok, self.vocab
        if isinstance(prompt, str):
            return [(prompt, tok.encode(prompt))]
        if not prompt:
            raise APIError(400, "prompt: an empty list holds no prompt", param="prompt", code="empty_prompt")
        if isinstance(prompt[0], int):
            prompt = [prompt]
        out: list[tuple[str | None, list[int]]] = []
        for item in prompt:
            if isinstance(item, str):
                out.append((item, tok.encode(item)))
            else:
                bad = next((t for t in item if not 0 <= t < vocab), None)
                if bad is not None:
                    raise APIError(
                        400,
                        f"prompt: token id {bad} is outside the vocabulary (0..{vocab - 1})",
                        param="prompt",
                    )
                out.append((None, list(item)))
        return out

    async def create(self, request: Request, body: CompletionRequest) -> Completion | StreamingResponse:
        tok, runner = self.tok, self.runner
        self.models.check(body.model)
        prompts = await run_in_threadpool(self.prompts, body.prompt)
        n = body.n or 1
        k = body.logprobs
        # echo + logprobs scores the prompt too (what evaluation harnesses send to rank answers)
        scoring = k if body.echo else None
        reqs, queue = runner.submit([ids for _, ids in prompts], body, body.max_tokens, "prompt", k, scoring)
        cid = new_id("cmpl")
        prefixes = [
            (text if text is not None else tok.hf.decode(ids, skip_special_tokens=True)) if body.echo else ""
            for text, ids in prompts
        ]

        def new_offsets(p: int) -> TextOffsets:
            """text_offset counts from the start of the returned text, the echoed prompt included."""
            if scoring is None:
                return TextOffsets()
            return TextOffsets.for_echo(prefixes[p], prompts[p][1], tok.token_piece)

        if not body.stream:
            choices = await runner.collect(request, reqs, queue)
            return Completion(
                id=cid,
                model=body.model,
                usage=usage_of([c.last for c in choices], n),
                choices=[
                    CompletionChoice(
                        index=i,
                        text=prefixes[i // n] + c.text(),
                        finish_reason=c.last.finish_reason,
                        logprobs=completion_logprobs(c.logprobs, tok.token_piece, new_offsets(i // n))
                        if k is not None
                        else None,
                    )
                    for i, c in enumerate(choices)
                ],
            )

        offsets = [new_offsets(i // n) for i in range(len(reqs))]  # text_offset goes on from chunk to chunk
        # with prompt scores the echoed prompt rides in the first event's chunk, beside its scores
        unsent_prefix = [prefixes[i // n] if scoring is not None else "" for i in range(len(reqs))]

        def dump(choice: CompletionChoice) -> str:
            return Completion(id=cid, model=body.model, choices=[choice]).model_dump_json(exclude={"usage"})

        def chunks(index: int, ev: Event) -> list[str]:
            out = []
            text, unsent_prefix[index] = unsent_prefix[index] + ev.text, ""
            if text or (k is not None and ev.token_ids):
                lps = (
                    completion_logprobs(ev.logprobs or [], tok.token_piece, offsets[index])
                    if k is not None
                    else None
                )
                out.append(dump(CompletionChoice(index=index, text=text, finish_reason=None, logprobs=lps)))
            if ev.finish_reason:
                out.append(dump(CompletionChoice(index=index, text="", finish_reason=ev.finish_reason)))
            return out

        def usage_chunk(usage: Usage) -> str:
            return Completion(id=cid, model=body.model, choices=[], usage=usage).model_dump_json()

        first = []
        if body.echo and scoring is None:
            first = [
                dump(CompletionChoice(index=i, text=prefixes[i // n], finish_reason=None))
                for i in range(len(reqs))
                if prefixes[i // n]
            ]
        include = bool(body.stream_options and body.stream_options.include_usage)
        return runner.sse(request, reqs, queue, chunks, usage_chunk, include, first, per_prompt=n)
