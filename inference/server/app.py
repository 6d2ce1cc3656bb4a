"""The FastAPI application: middleware, error handlers, the routes and the serving objects wired
together; and `serve`, which loads a model and runs uvicorn.

Boundary: assembly only. Every error leaves as the OpenAI envelope
{"error": {"message", "type", "param", "code"}} with the matching status (validation errors as 400,
never FastAPI's 422). The engine runs in its own thread, started and stopped with the app.
"""

from __future__ import annotations

import logging
import sys
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from inference.server.api_errors import APIError, error_response
from inference.server.body_limit import BodyLimit
from inference.server.choices import ChoiceRunner
from inference.server.loading import DEFAULT_MAX_BODY, Served, ServerConfig, load_served
from inference.server.openapi import install_openapi
from inference.server.routes import router
from inference.server.serving_chat import ServingChat
from inference.server.serving_completion import ServingCompletion
from inference.server.serving_models import ServingModels

log = logging.getLogger(__name__)


async def _api_error(_req: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return error_response(exc)


async def _validation(_req: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"msg": "invalid request", "loc": ()}
    if first.get("type") == "json_invalid":
        return error_response(APIError(400, f"malformed JSON body: {first.get('msg')}", code="invalid_json"))
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    msg = str(first.get("msg")).removeprefix("Value error, ")
    return error_response(APIError(400, f"{param or 'body'}: {msg}", param=param))


async def _http(_req: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(APIError(exc.status_code, str(exc.detail), code=None))


async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error")
    return error_response(APIError(500, f"internal error: {type(exc).__name__}", type="server_error"))


def create_app(
    served: Served,
    *,
    api_key: str | None = None,
    aliases: tuple[str, ...] = ("default",),
    max_body_bytes: int = DEFAULT_MAX_BODY,
) -> FastAPI:
    engine = served.engine

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        engine.start()
        yield
        engine.shutdown()

    app = FastAPI(title="research-bot LLM server", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    install_openapi(app, secured=bool(api_key))
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)

    runner = ChoiceRunner(engine)
    models = ServingModels(served, aliases)
    app.state.served, app.state.api_key, app.state.models = served, api_key, models
    app.state.chat = ServingChat(served.tokenizer, runner, models)
    app.state.completion = ServingCompletion(served.tokenizer, runner, models)
    app.include_router(router)
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
