"""Error bodies: OpenAI style on /v1 and elsewhere, Ollama style (``{"error": "..."}``) on /api, Anthropic style
(``{"type": "error", "error": {"type", "message"}}``) on /v1/messages."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from slmnode.errors import SlmnodeError


def openai_body(message: str, error_type: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


ANTHROPIC_PATHS = ("/v1/messages",)
# Anthropic's error types by status; an engine that cannot take work now (503) is Anthropic's 529 "overloaded"
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                    429: "rate_limit_error", 504: "timeout_error", 529: "overloaded_error"}


def anthropic_error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    """The status and body Anthropic's API would send for ``status`` (4xx other than listed: invalid request)."""
    status = 529 if status == 503 else status
    etype = _ANTHROPIC_TYPES.get(status) or ("invalid_request_error" if status < 500 else "api_error")
    return status, {"type": "error", "error": {"type": etype, "message": message}}


def error_response(request: Request, status: int, message: str, error_type: str,
                   code: str | None, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    if request.url.path.startswith(ANTHROPIC_PATHS):
        status, body = anthropic_error(status, message)
        return JSONResponse(body, status_code=status, headers=headers)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status, headers=headers)
    return JSONResponse(openai_body(message, error_type, code, param), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errs = exc.errors()
    if not errs:
        return "invalid request", None
    first = errs[0]
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON; send a JSON object", None
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    where = ".".join(loc)
    more = f" (and {len(errs) - 1} more problem(s))" if len(errs) > 1 else ""
    return (f"{where}: {first.get('msg')}{more}" if where else f"{first.get('msg')}{more}"), (loc[0] if loc else None)


def install(app: Any) -> None:
    @app.exception_handler(SlmnodeError)
    async def _slmnode(request: Request, exc: SlmnodeError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after or 1)} if exc.status_code == 503 else None
        return error_response(request, exc.status_code, exc.message, exc.error_type, exc.code, exc.param, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return error_response(request, 400, message, "invalid_request_error", "invalid_request", param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "invalid_api_key", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        etype = "authentication_error" if exc.status_code == 401 else "invalid_request_error"
        msg = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and msg == "Not Found":
            msg = f"no route {request.method} {request.url.path}; see /docs for the API"
        return error_response(request, exc.status_code, msg, etype, code, None, getattr(exc, "headers", None))
