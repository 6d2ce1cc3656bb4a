"""The server's OpenAPI document, made to say what the server really does.

Boundary: FastAPI's generated document in, a corrected one out; no routes, no engine. FastAPI lists
200/422 for every route, but validation errors leave as OpenAI's 400 envelope (422 never happens),
and the streaming routes return either JSON or server-sent events. Here every /v1 operation gets
the error statuses it can answer (400, 401 with a key, 404, 413, 429, 500) with the error schema,
the 200 response schemas (JSON and `text/event-stream` chunk shapes) and the bearer scheme.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from inference.server.protocol import ChatCompletion, ChatCompletionChunk, Completion, ErrorResponse

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
ERRORS = {
    "400": "Invalid request: a parameter is wrong or unsupported (named in error.param), the prompt is "
    "empty or longer than the context (code context_length_exceeded)",
    "401": "Missing or wrong API key (Authorization: Bearer KEY)",
    "404": "The model does not exist on this server (code model_not_found)",
    "413": "Request body larger than the server's limit (code request_too_large)",
    "429": "Server busy: every slot and queue place taken; retry after Retry-After seconds",
    "500": "Generation failed (details in the server log)",
}
SUCCESS = {
    "/v1/chat/completions": (ChatCompletion, ChatCompletionChunk),
    "/v1/completions": (Completion, Completion),
}


def _error(status: str) -> dict[str, Any]:
    return {"description": ERRORS[status], "content": {"application/json": {"schema": ERROR_REF}}}


def _ref(model: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def build_openapi(app: FastAPI, *, secured: bool) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in (ErrorResponse, ChatCompletion, ChatCompletionChunk, Completion):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    components["securitySchemes"] = {
        "bearerAuth": {"type": "http", "scheme": "bearer", "description": "serve-llm --api-key"}
    }
    for path, operations in doc.get("paths", {}).items():
        for method, op in operations.items():
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            if not path.startswith("/v1"):
                continue
            op["security"] = [{"bearerAuth": []}] if secured else [{}, {"bearerAuth": []}]
            codes = ["401"] if secured else []
            if path.startswith("/v1/models/"):
                codes.append("404")
            if method == "post":
                codes += ["400", "404", "413", "429", "500"]
                full, chunk = SUCCESS[path]
                responses["200"] = {
                    "description": "The completion; with stream=true, server-sent events each holding "
                    "one chunk (`data: {json}`), ending with `data: [DONE]`",
                    "content": {
                        "application/json": {"schema": _ref(full)},
                        "text/event-stream": {"schema": {"type": "string"}, "x-chunk-schema": _ref(chunk)},
                    },
                }
            for code in sorted(set(codes)):
                responses[code] = _error(code)
    return doc


def install_openapi(app: FastAPI, *, secured: bool) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, secured=secured)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
