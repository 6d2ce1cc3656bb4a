"""The HTTP routes: a thin router that checks the key and hands each request to its serving class.

Boundary: paths, methods and the API key; the work is in `serving_*.py`, the shapes in
`protocol.py`. The serving objects live on `app.state` (set by `app.create_app`), so this module
holds no state of its own.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Depends, Request

from inference.server.api_errors import APIError
from inference.server.protocol import ChatCompletionRequest, CompletionRequest, ModelCard, ModelList


# A dependency, not an HTTP middleware: Starlette's BaseHTTPMiddleware wraps `receive` so that
# `Request.is_disconnected()` never sees the client leave, which would keep cancelled work running.
async def require_key(request: Request) -> None:
    api_key: str | None = request.app.state.api_key
    if not api_key:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # RFC 7235: the scheme is case-insensitive; the key is compared in constant time
    ok = scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), api_key.encode())
    if not ok:
        raise APIError(401, "invalid or missing API key (Authorization: Bearer ...)", code="invalid_api_key")


router = APIRouter()
v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    served = request.app.state.served
    return {
        "status": "ok",
        "model": served.name,
        "attention": served.attention,
        "weights": served.weights,
        "cuda_graphs": served.engine.graphs is not None,
        **served.engine.stats(),
    }


@v1.get("/models")
async def models(request: Request) -> ModelList:
    return request.app.state.models.list()


@v1.get("/models/{model_id:path}")
async def model_card(request: Request, model_id: str) -> ModelCard:
    return request.app.state.models.card(model_id)


@v1.post("/chat/completions")
async def chat(request: Request, body: ChatCompletionRequest):
    return await request.app.state.chat.create(request, body)


@v1.post("/completions")
async def completions(request: Request, body: CompletionRequest):
    return await request.app.state.completion.create(request, body)


router.include_router(v1)
