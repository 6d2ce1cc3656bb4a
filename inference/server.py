"""OpenAI-compatible HTTP server (FastAPI) in front of the engine.

Boundary: HTTP <-> engine requests. Routes: GET /v1/models, POST /v1/chat/completions,
POST /v1/completions (both streaming as server-sent events), GET /health. Every error leaves as the
OpenAI envelope {"error": {"message", "type", "param", "code"}} with the matching status. The engine
runs in its own thread; its events reach the request's asyncio queue via `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from inference.engine import (
    ContextLengthError,
    Engine,
    EngineConfig,
    Event,
    QueueFullError,
    SamplingParams,
    kv_cache_bytes,
)
from inference.errors import InferenceError
from inference.loader import check_memory, inspect_folder, load_model
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
    ErrorBody,
    ErrorResponse,
    ModelCard,
    ModelList,
    ResponseMessage,
    Usage,
    new_id,
)
from inference.tokenizer import ChatTokenizer, TokenizerError

log = logging.getLogger(__name__)
DEFAULT_MAX_CONTEXT = 8192  # caps the per-slot KV cache for long-context models unless asked for more
POLL_S = 0.25  # how often a waiting request checks whether its client went away


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.body = status, ErrorBody(message=message, type=type, param=param, code=code)
        self.headers = headers


def error_response(exc: APIError) -> JSONResponse:
    return JSONResponse(
        ErrorResponse(error=exc.body).model_dump(), status_code=exc.status, headers=exc.headers
    )


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
    folder = inspect_folder(cfg.model_dir)
    tokenizer = ChatTokenizer.from_folder(folder.path, folder.config.eos_token_ids)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    mc = folder.config
    limit = min(mc.max_position_embeddings, mc.sliding_window or mc.max_position_embeddings)
    max_context = min(cfg.max_context or min(limit, DEFAULT_MAX_CONTEXT), limit)
    kv = kv_cache_bytes(mc, cfg.max_batch, max_context, dtype)
    check_memory(folder, device=device, kv_bytes=kv, what=f"{cfg.max_batch} slots x {max_context} tokens")
    model, folder, attn = load_model(folder, device=device, dtype=dtype, attention=cfg.attention)
    engine_cfg = EngineConfig(
        cfg.max_batch, max_context, cfg.max_queue, device, dtype, cuda_graphs=cfg.cuda_graphs
    )
    engine = Engine(model, tokenizer, engine_cfg)
    name = cfg.served_name or folder.path.resolve().name
    weights = f"gptq-{folder.quant['bits']}bit" if folder.quant else str(dtype).removeprefix("torch.")
    return Served(engine, tokenizer, name, attn, weights)


def create_app(
    served: Served, *, api_key: str | None = None, aliases: tuple[str, ...] = ("default",)
) -> FastAPI:
    engine, tok, name = served.engine, served.tokenizer, served.name
    names = {name, *aliases}

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        engine.start()
        yield
        engine.shutdown()

    app = FastAPI(title="research-bot LLM server", docs_url=None, redoc_url=None, lifespan=lifespan)

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
        return error_response(APIError(400, f"{param or 'body'}: {first.get('msg')}", param=param))

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
        if api_key and request.headers.get("authorization", "") != f"Bearer {api_key}":
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
            **engine.stats(),
        }

    @v1.get("/models")
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=name, max_model_len=engine.config.max_context)])

    def check_model(model: str) -> None:
        if model not in names:
            raise APIError(
                404,
                f"the model {model!r} does not exist; this server serves {name!r}",
                param="model",
                code="model_not_found",
            )

    def submit(
        prompt_ids: list[int], body: Any, max_tokens: int | None, prompt_param: str
    ) -> tuple[Any, asyncio.Queue]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event] = asyncio.Queue()

        def on_event(ev: Event) -> None:
            with contextlib.suppress(RuntimeError):  # loop closed: server shutting down
                loop.call_soon_threadsafe(queue.put_nowait, ev)

        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=1.0 if body.temperature is None else body.temperature,
            top_p=1.0 if body.top_p is None else body.top_p,
            top_k=body.top_k or 0,
            seed=body.seed,
            stop=body.stop_list(),
            stop_token_ids=tuple(body.stop_token_ids or ()),
        )
        try:
            req = engine.submit(prompt_ids, params, on_event)
        except QueueFullError as exc:
            raise APIError(
                429, str(exc), type="rate_limit_error", code="server_busy", headers={"Retry-After": "1"}
            ) from None
        except ContextLengthError as exc:
            raise APIError(400, str(exc), param=prompt_param, code="context_length_exceeded") from None
        return req, queue

    async def next_event(request: Request, req: Any, queue: asyncio.Queue) -> Event | None:
        """The request's next event, or None once the client has gone (the request is cancelled)."""
        while True:
            try:
                return await asyncio.wait_for(queue.get(), POLL_S)
            except TimeoutError:
                if await request.is_disconnected():
                    engine.cancel(req)
                    return None

    async def collect(request: Request, req: Any, queue: asyncio.Queue) -> tuple[str, Event]:
        parts: list[str] = []
        try:
            while True:
                ev = await next_event(request, req, queue)
                if ev is None:
                    raise APIError(499, "client closed the request", code="client_closed")
                parts.append(ev.text)
                if ev.finish_reason:
                    break
        finally:
            engine.cancel(req)  # no-op when finished; frees the slot when the client left
        if ev.finish_reason == "error":
            raise APIError(500, "generation failed; see the server log", type="server_error")
        return "".join(parts), ev

    def sse(
        request: Request,
        req: Any,
        queue: asyncio.Queue,
        make_chunk,
        usage_chunk,
        include_usage: bool,
        first: str | None,
    ) -> StreamingResponse:
        async def body() -> AsyncIterator[str]:
            if first is not None:
                yield first
            while True:
                ev = await next_event(request, req, queue)
                if ev is None:
                    return
                if ev.finish_reason == "error":
                    err = ErrorBody(message="generation failed; see the server log", type="server_error")
                    yield f"data: {json.dumps({'error': err.model_dump()})}\n\n"
                    break
                if ev.text or ev.finish_reason:
                    yield f"data: {make_chunk(ev.text, ev.finish_reason)}\n\n"
                if ev.finish_reason:
                    if include_usage:
                        yield f"data: {usage_chunk(_usage(ev))}\n\n"
                    break
            yield "data: [DONE]\n\n"

        return _SSE(body(), on_close=lambda: engine.cancel(req))

    @v1.post("/chat/completions")
    async def chat(request: Request, body: ChatCompletionRequest):
        check_model(body.model)
        try:
            messages = [{"role": m.role, "content": m.text()} for m in body.messages]
            prompt_ids = tok.apply_chat(messages)
        except (ValueError, TokenizerError) as exc:
            raise APIError(400, str(exc), param="messages") from None
        req, queue = submit(prompt_ids, body, body.max_completion_tokens or body.max_tokens, "messages")
        cid = new_id("chatcmpl")
        if not body.stream:
            text, last = await collect(request, req, queue)
            return ChatCompletion(
                id=cid,
                model=body.model,
                usage=_usage(last),
                choices=[ChatChoice(message=ResponseMessage(content=text), finish_reason=last.finish_reason)],
            )

        def chunk(text: str, finish: str | None) -> str:
            delta = DeltaMessage(content=text) if text else DeltaMessage()
            return ChatCompletionChunk(
                id=cid, model=body.model, choices=[ChunkChoice(delta=delta, finish_reason=finish)]
            ).model_dump_json()

        def usage_chunk(usage: Usage) -> str:
            return ChatCompletionChunk(id=cid, model=body.model, choices=[], usage=usage).model_dump_json()

        first = ChatCompletionChunk(
            id=cid, model=body.model, choices=[ChunkChoice(delta=DeltaMessage(role="assistant", content=""))]
        ).model_dump_json()
        include = bool(body.stream_options and body.stream_options.include_usage)
        return sse(request, req, queue, chunk, usage_chunk, include, f"data: {first}\n\n")

    @v1.post("/completions")
    async def completions(request: Request, body: CompletionRequest):
        check_model(body.model)
        prompt = body.prompt
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
            if len(prompt) != 1:
                raise APIError(400, "only one prompt per request is supported", param="prompt")
            prompt = prompt[0]
        if isinstance(prompt, list):
            if any(not 0 <= t < tok.hf.vocab_size + len(tok.hf.get_added_vocab()) for t in prompt):
                raise APIError(400, "prompt token id out of the vocabulary", param="prompt")
            prompt_ids = list(prompt)
        else:
            prompt_ids = tok.encode(prompt)
        req, queue = submit(prompt_ids, body, body.max_tokens, "prompt")
        cid = new_id("cmpl")
        if not body.stream:
            text, last = await collect(request, req, queue)
            prefix = prompt if (body.echo and isinstance(prompt, str)) else ""
            return Completion(
                id=cid,
                model=body.model,
                usage=_usage(last),
                choices=[CompletionChoice(text=prefix + text, finish_reason=last.finish_reason)],
            )

        def chunk(text: str, finish: str | None) -> str:
            return Completion(
                id=cid, model=body.model, choices=[CompletionChoice(text=text, finish_reason=finish)]
            ).model_dump_json(exclude={"usage"})

        def usage_chunk(usage: Usage) -> str:
            return Completion(id=cid, model=body.model, choices=[], usage=usage).model_dump_json()

        include = bool(body.stream_options and body.stream_options.include_usage)
        return sse(request, req, queue, chunk, usage_chunk, include, None)

    app.include_router(v1)
    return app


def _usage(ev: Event) -> Usage:
    return Usage(
        prompt_tokens=ev.prompt_tokens,
        completion_tokens=ev.completion_tokens,
        total_tokens=ev.prompt_tokens + ev.completion_tokens,
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


def serve(cfg: ServerConfig, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Load (refusing early on any problem), then run uvicorn until interrupted."""
    import uvicorn

    served = load_served(cfg)
    app = create_app(served, api_key=cfg.api_key)
    cfg_e = served.engine.config
    print(
        f"serving {served.name} ({served.weights}, {served.attention} attention, {cfg_e.max_batch} slots x "
        f"{cfg_e.max_context} tokens{', CUDA graphs' if served.engine.graphs else ''}) on http://{host}:{port}/v1",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
