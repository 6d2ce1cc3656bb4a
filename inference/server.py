"""OpenAI-compatible HTTP server (FastAPI) in front of the engine.

Boundary: HTTP <-> engine requests. Routes: GET /v1/models, GET /v1/models/{id},
POST /v1/chat/completions, POST /v1/completions (both streaming as server-sent events), GET /health.
Bodies over `max_body_bytes` are refused with 413 before parsing (`body_limit.py`); tokenizing (the
heavy part of a big prompt: 2.5 s per MB of Cyrillic text) runs in a worker thread, so /health and
running streams keep answering while a large prompt is prepared. Every error leaves as the
OpenAI envelope {"error": {"message", "type", "param", "code"}} with the matching status. The engine
runs in its own thread; its events reach the request's asyncio queue via `call_soon_threadsafe`.
A request for n choices is n engine requests submitted, streamed and cancelled together (see
`choices.py`). Log-probabilities come from the engine per token;
their token strings and bytes from `ChatTokenizer.token_piece`.
"""

from __future__ import annotations

import hmac
import logging
import sys
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from inference.api_errors import APIError, error_response
from inference.body_limit import BodyLimit
from inference.choices import ChoiceRunner, usage_of
from inference.engine import (
    Engine,
    EngineConfig,
    Event,
    kv_cache_bytes,
)
from inference.errors import InferenceError
from inference.loader import check_memory, inspect_folder, load_model
from inference.openapi import install_openapi
from inference.schemas import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkChoice,
    Completion,
    CompletionChoice,
    CompletionRequest,
    DeltaMessage,
    ModelCard,
    ModelList,
    ResponseMessage,
    TextOffsets,
    Usage,
    chat_logprobs,
    completion_logprobs,
    new_id,
)
from inference.tokenizer import ChatTokenizer, TokenizerError

log = logging.getLogger(__name__)
DEFAULT_MAX_CONTEXT = 8192  # caps the per-slot KV cache for long-context models unless asked for more
DEFAULT_MAX_BODY = 4 * 2**20  # bytes; 32k tokens of text in JSON is well under 1 MB


@dataclass
class ServerConfig:
    model_dir: Path
    served_name: str | None = None
    max_batch: int = 8
    max_context: int | None = None
    max_queue: int = 64
    api_key: str | None = None
    device: str = "auto"
    attention: str = "auto"
    cuda_graphs: bool = True
    prefill_chunk: int = 512
    prefix_caching: bool = True
    max_body_bytes: int = DEFAULT_MAX_BODY


@dataclass
class Served:
    engine: Engine
    tokenizer: ChatTokenizer
    name: str
    attention: str
    weights: str  # "gptq-4bit" or the dense dtype, reported by /health


def load_served(cfg: ServerConfig) -> Served:
    """Check everything, then load: folder, tokenizer, memory for weights + KV cache, weights."""
    if cfg.max_batch < 1 or cfg.max_queue < 0:
        raise InferenceError(
            f"--max-batch must be >= 1 and max queue >= 0 (got {cfg.max_batch}, {cfg.max_queue})"
        )
    if cfg.prefill_chunk < 0:
        raise InferenceError(f"--prefill-chunk must be >= 0 (0: whole prompts), got {cfg.prefill_chunk}")
    folder = inspect_folder(cfg.model_dir)
    tokenizer = ChatTokenizer.from_folder(folder.path, folder.config.eos_token_ids)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    mc = folder.config
    limit = min(mc.max_position_embeddings, mc.sliding_window or mc.max_position_embeddings)
    max_context = min(cfg.max_context or min(limit, DEFAULT_MAX_CONTEXT), limit)
    # CUDA graphs pad batches into one extra scratch slot; count it so the check stays honest
    scratch = 1 if cfg.cuda_graphs and device.startswith("cuda") else 0
    kv = kv_cache_bytes(mc, cfg.max_batch + scratch, max_context, dtype)
    check_memory(folder, device=device, kv_bytes=kv, what=f"{cfg.max_batch} slots x {max_context} tokens")
    model, folder, attn = load_model(folder, device=device, dtype=dtype, attention=cfg.attention)
    engine_cfg = EngineConfig(
        cfg.max_batch,
        max_context,
        cfg.max_queue,
        device,
        dtype,
        cuda_graphs=cfg.cuda_graphs,
        prefill_chunk=cfg.prefill_chunk,
        prefix_reuse_min=EngineConfig.prefix_reuse_min if cfg.prefix_caching else 0,
    )
    engine = Engine(model, tokenizer, engine_cfg)
    name = cfg.served_name or folder.path.resolve().name
    weights = f"gptq-{folder.quant['bits']}bit" if folder.quant else str(dtype).removeprefix("torch.")
    return Served(engine, tokenizer, name, attn, weights)


def create_app(
    served: Served,
    *,
    api_key: str | None = None,
    aliases: tuple[str, ...] = ("default",),
    max_body_bytes: int = DEFAULT_MAX_BODY,
) -> FastAPI:
    engine, tok, name = served.engine, served.tokenizer, served.name
    names = {name, *aliases}

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        engine.start()
        yield
        engine.shutdown()

    app = FastAPI(title="research-bot LLM server", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    install_openapi(app, secured=bool(api_key))

    @app.exception_handler(APIError)
    async def _api_error(_req: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid request", "loc": ()}
        if first.get("type") == "json_invalid":
            return error_response(
                APIError(400, f"malformed JSON body: {first.get('msg')}", code="invalid_json")
            )
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(loc) or None
        msg = str(first.get("msg")).removeprefix("Value error, ")
        return error_response(APIError(400, f"{param or 'body'}: {msg}", param=param))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(APIError(exc.status_code, str(exc.detail), code=None))

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(APIError(500, f"internal error: {type(exc).__name__}", type="server_error"))

    # A dependency, not an HTTP middleware: Starlette's BaseHTTPMiddleware wraps `receive` so that
    # `Request.is_disconnected()` never sees the client leave, which would keep cancelled work running.
    async def require_key(request: Request) -> None:
        if not api_key:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # RFC 7235: the scheme is case-insensitive; the key is compared in constant time
        ok = scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), api_key.encode())
        if not ok:
            raise APIError(
                401, "invalid or missing API key (Authorization: Bearer ...)", code="invalid_api_key"
            )

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": name,
            "attention": served.attention,
            "weights": served.weights,
            "cuda_graphs": engine.graphs is not None,
            **engine.stats(),
        }

    @v1.get("/models")
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=name, max_model_len=engine.config.max_context)])

    @v1.get("/models/{model_id:path}")
    async def model_card(model_id: str) -> ModelCard:
        check_model(model_id, param=None)
        return ModelCard(id=model_id, max_model_len=engine.config.max_context)

    def check_model(model: str, param: str | None = "model") -> None:
        if model not in names:
            raise APIError(
                404,
                f"The model {model!r} does not exist; this server serves {name!r}",
                param=param,
                code="model_not_found",
            )

    def chat_ids(messages: list[dict[str, str]]) -> list[int]:
        try:
            return tok.apply_chat(messages)
        except (ValueError, TokenizerError) as exc:
            raise APIError(400, str(exc), param="messages") from None

    runner = ChoiceRunner(engine)

    @v1.post("/chat/completions")
    async def chat(request: Request, body: ChatCompletionRequest):
        check_model(body.model)
        try:
            messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        except ValueError as exc:
            raise APIError(400, str(exc), param="messages") from None
        prompt_ids = await run_in_threadpool(chat_ids, messages)
        k = (body.top_logprobs or 0) if body.logprobs else None
        max_tokens = body.max_completion_tokens or body.max_tokens
        reqs, queue = runner.submit([prompt_ids], body, max_tokens, "messages", k)
        cid = new_id("chatcmpl")
        if not body.stream:
            choices = await runner.collect(request, reqs, queue)
            return ChatCompletion(
                id=cid,
                model=body.model,
                usage=usage_of([c.last for c in choices], len(choices)),
                choices=[
                    ChatChoice(
                        index=i,
                        message=ResponseMessage(content=c.text()),
                        finish_reason=c.last.finish_reason,
                        logprobs=chat_logprobs(c.logprobs, tok.token_piece) if k is not None else None,
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
                lps = chat_logprobs(ev.logprobs or [], tok.token_piece) if k is not None else None
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
        return runner.sse(request, reqs, queue, chunks, usage_chunk, include, first, per_prompt=len(reqs))

    vocab = tok.hf.vocab_size + len(tok.hf.get_added_vocab())

    def completion_prompts(prompt: Any) -> list[tuple[str | None, list[int]]]:
        """(text or None for token ids, ids) per prompt: a string, strings, token ids, lists of ids."""
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

    @v1.post("/completions")
    async def completions(request: Request, body: CompletionRequest):
        check_model(body.model)
        prompts = await run_in_threadpool(completion_prompts, body.prompt)
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

    app.include_router(v1)
    return app


def serve(cfg: ServerConfig, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Load (refusing early on any problem), then run uvicorn until interrupted."""
    import uvicorn

    served = load_served(cfg)
    app = create_app(served, api_key=cfg.api_key, max_body_bytes=cfg.max_body_bytes)
    cfg_e = served.engine.config
    print(
        f"serving {served.name} ({served.weights}, {served.attention} attention, {cfg_e.max_batch} slots x "
        f"{cfg_e.max_context} tokens{', CUDA graphs' if served.engine.graphs else ''}) on http://{host}:{port}/v1",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
