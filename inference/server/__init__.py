"""OpenAI-compatible HTTP server (FastAPI) in front of the engine, laid out as vLLM's OpenAI
entrypoint is: a thin router, a serving class per endpoint, a protocol module.

Boundary: HTTP <-> engine requests. Routes: GET /v1/models, GET /v1/models/{id},
POST /v1/chat/completions, POST /v1/completions (both streaming as server-sent events), GET /health.

- `loading.py`: `ServerConfig`, `load_served` (checks, then loads model, tokenizer and engine)
- `app.py`: `create_app` (middleware, error handlers, wiring) and `serve` (uvicorn)
- `routes.py`: the router and the API-key check
- `serving_chat.py`, `serving_completion.py`, `serving_models.py`: one class per endpoint
- `choices.py`: the n choices of a request as engine requests (submit, collect, stream, cancel)
- `protocol.py`: the OpenAI request/response models; `api_errors.py`: the error envelope
- `openapi.py`: the corrected OpenAPI document; `body_limit.py`: the 413 before parsing
"""

from inference.server.app import create_app, serve
from inference.server.loading import DEFAULT_MAX_BODY, DEFAULT_MAX_CONTEXT, Served, ServerConfig, load_served

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_CONTEXT",
    "Served",
    "ServerConfig",
    "create_app",
    "load_served",
    "serve",
]
