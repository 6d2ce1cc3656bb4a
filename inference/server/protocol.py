"""OpenAI API request/response models (the subset the server implements), with the OpenAI names.

Boundary: data shapes only (and building the log-probability shapes from the engine's plain
values); validation limits here produce 400s with the field named as `param`.
Unknown request fields are ignored, as vLLM does, so clients that send extras keep working; but
the OpenAI parameters this server does not implement (tools, JSON mode, logit bias, penalties,
best_of, suffix) are refused with a 400 naming the parameter whenever they ask for something other
than the default, because silently ignoring them gives a client an answer it did not ask for.
"""

from __future__ import annotations

import codecs
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

if TYPE_CHECKING:
    from inference.engine import TokenLogprob

Piece = Callable[[int], "tuple[str, bytes | None]"]  # token id -> (display string, exact bytes)
MAX_N = 16  # choices per request; each is its own engine request (a KV cache slot or a queue place)


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        unsupported = [p.type for p in self.content if p.type != "text"]
        if unsupported:
            raise ValueError(f"content parts of type {unsupported[0]!r} are not supported (text only)")
        return "".join(p.text or "" for p in self.content)


class StreamOptions(BaseModel):
    include_usage: bool = False


def _unsupported(param: str, why: str) -> ValueError:
    return ValueError(f"{param} is not supported by this server ({why}); send the request without it")


class _Sampling(_Request):
    model: str
    max_tokens: int | None = Field(None, ge=1)
    # None (JSON null, which some clients send for "unset") means the OpenAI default
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)  # vLLM extension; 0 is off
    n: int | None = Field(None, ge=1, le=MAX_N)
    seed: int | None = Field(None, ge=-(2**63), lt=2**64)  # what torch's generator takes
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None  # vLLM extension
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # OpenAI parameters this server does not implement: accepted only at their default values
    logit_bias: dict[str, float] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None

    @field_validator("logit_bias")
    @classmethod
    def _no_logit_bias(cls, value: dict[str, float] | None) -> None:
        if value:
            raise _unsupported("logit_bias", "sampling has no per-token bias")

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _no_penalties(cls, value: float | None, info: ValidationInfo) -> None:
        if value:
            raise _unsupported(info.field_name, "sampling applies no repetition penalties; 0 is accepted")

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(None, ge=0, le=20)  # declared after `logprobs`: its check reads it
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None

    @field_validator("tools", "functions")
    @classmethod
    def _no_tools(cls, value: list | None, info: ValidationInfo) -> None:
        if value:
            raise _unsupported(info.field_name, "no tool or function calling")

    @field_validator("tool_choice", "function_call")
    @classmethod
    def _no_tool_choice(cls, value: str | dict | None, info: ValidationInfo) -> None:
        if value not in (None, "none", "auto"):  # "auto" with no tools means no tool call: honest
            raise _unsupported(info.field_name, "no tool or function calling")

    @field_validator("response_format")
    @classmethod
    def _text_only(cls, value: dict[str, Any] | None) -> None:
        if value and value.get("type", "text") != "text":
            raise _unsupported(f"response_format {value.get('type')!r}", "no JSON mode; only 'text'")

    @field_validator("top_logprobs")
    @classmethod
    def _needs_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and not info.data.get("logprobs"):
            raise ValueError("top_logprobs requires logprobs to be true")
        return value


class CompletionRequest(_Sampling):
    # a string, several strings, token ids, or several lists of token ids (lm-eval sends those)
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(16, ge=1)  # the OpenAI default for completions
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=5)  # legacy API: the number of alternatives; null is off
    best_of: int | None = None
    suffix: str | None = None

    @field_validator("suffix")
    @classmethod
    def _no_suffix(cls, value: str | None) -> None:
        if value:
            raise _unsupported("suffix", "no insertion mode")

    @field_validator("best_of")
    @classmethod
    def _best_of_is_n(cls, value: int | None, info: ValidationInfo) -> int | None:
        # best_of=k ranks k samples and returns the n best: only best_of == n (no ranking) is honest
        if value is not None and value != (info.data.get("n") or 1):
            raise _unsupported(f"best_of={value}", "no server-side ranking; best_of must equal n")
        return value


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0  # prompt tokens whose keys/values a finished request left in the cache


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None  # None for special tokens (no text)


class ChatCompletionTokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    content: list[ChatCompletionTokenLogprob] | None
    refusal: list[ChatCompletionTokenLogprob] | None = None


class CompletionLogprobs(BaseModel):
    """The legacy completions shape: parallel lists, one item per generated token; text_offset is
    each token's character offset in the choice's text."""

    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float | None] = Field(default_factory=list)  # None: an echoed prompt's first
    top_logprobs: list[dict[str, float] | None] = Field(default_factory=list)
    text_offset: list[int] = Field(default_factory=list)


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: ResponseMessage
    finish_reason: str | None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatChoice]
    usage: Usage


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: DeltaMessage
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: str | None
    logprobs: CompletionLogprobs | None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "research-bot"
    max_model_len: int | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


def _finite(x: float) -> float:
    return max(x, -9999.0)  # JSON has no -inf; vLLM reports -9999.0 the same way


def _top(piece: Piece, token_id: int, logprob: float) -> TopLogprob:
    text, raw = piece(token_id)
    return TopLogprob(token=text, logprob=_finite(logprob), bytes=None if raw is None else list(raw))


def chat_logprobs(lps: Sequence[TokenLogprob], piece: Piece) -> ChoiceLogprobs:
    """The chat shape: one entry per generated token, with its alternatives best first."""
    return ChoiceLogprobs(
        content=[
            ChatCompletionTokenLogprob(
                **_top(piece, lp.token_id, lp.logprob).model_dump(),
                top_logprobs=[_top(piece, t, v) for t, v in lp.top],
            )
            for lp in lps
        ]
    )


class TextOffsets:
    """Character offsets of tokens in the text their bytes make, fed token by token (a stream goes
    on from chunk to chunk). A token that continues a character (the second half of a Cyrillic
    letter) gets the offset of that character; one that follows a dangling lead byte (random models
    emit those) comes after the U+FFFD the lead byte decodes to, as in the returned text."""

    def __init__(self, start: int = 0) -> None:
        self.chars = start  # characters decoded so far, not counting an unfinished one
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    @classmethod
    def for_echo(cls, text: str, prompt_ids: Sequence[int], piece: Piece) -> TextOffsets:
        """Offsets into an echoed prompt's `text`. A SentencePiece vocabulary (Llama 2, Mistral)
        prepends a space its decoder strips again: the first token's bytes start with a space the
        text does not have, so counting starts one character early."""
        first = next((raw for raw in (piece(t)[1] for t in prompt_ids) if raw), b"")
        dummy_space = first.startswith(b" ") and not text.startswith(" ")
        return cls(-1 if dummy_space else 0)

    def next(self, raw: bytes | None) -> int:
        raw = raw or b""
        pending = self._utf8.getstate()[0]  # the first bytes of an unfinished character
        text = self._utf8.decode(raw)
        still_open = self._utf8.getstate()[0] == pending + raw  # the character is not finished yet
        continues = still_open or (bool(text) and not text.startswith("\ufffd"))
        offset = self.chars if not pending or continues else self.chars + 1
        self.chars += len(text)
        return max(offset, 0)


def completion_logprobs(
    lps: Sequence[TokenLogprob], piece: Piece, offsets: TextOffsets
) -> CompletionLogprobs:
    """The legacy shape; each top_logprobs dict also lists the chosen token (up to k+1 keys), as OpenAI."""
    out = CompletionLogprobs()
    for lp in lps:
        text, raw = piece(lp.token_id)
        out.tokens.append(text)
        out.text_offset.append(offsets.next(raw))
        if lp.logprob is None:  # an echoed prompt's first token: nothing predicts it
            out.token_logprobs.append(None)
            out.top_logprobs.append(None)
            continue
        alternatives = {piece(t)[0]: _finite(v) for t, v in lp.top}
        alternatives.setdefault(text, _finite(lp.logprob))
        out.token_logprobs.append(_finite(lp.logprob))
        out.top_logprobs.append(alternatives)
    return out


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"
