"""Errors as the OpenAI API shapes them: {"error": {"message", "type", "param", "code"}} with a status.

Boundary: the exception the HTTP layer raises and the response it becomes; nothing about the engine.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

from inference.server.protocol import ErrorBody, ErrorResponse


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
