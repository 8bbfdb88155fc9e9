"""The one table that maps core errors to HTTP status codes, and the error body."""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse

from shared.errors import WorkflowError

log = logging.getLogger(__name__)

STATUS_BY_CODE: dict[str, int] = {
    "VALIDATION_FAILED": 422,
    "INVALID_INPUT": 400,
    "INVALID_FORMAT": 400,
    "INVALID_SETTINGS": 500,
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "CONFLICT": 409,
    "VERSION_MISMATCH": 409,
    "INVALID_STATE": 409,
    "WORKFLOW_INACTIVE": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "RATE_LIMITED": 429,
    "TRANSIENT": 503,
}


def status_for(error: WorkflowError) -> int:
    """HTTP status of a core error: by code, else 503 when retryable, else 500."""
    if error.code in STATUS_BY_CODE:
        return STATUS_BY_CODE[error.code]
    return 503 if error.retryable else 500


def error_response(error: Exception) -> JSONResponse:
    """``{"error": {"code", "message", "path"?, "errors"?}}`` with the mapped status."""
    if isinstance(error, WorkflowError):
        return JSONResponse({"error": error.to_dict()}, status_code=status_for(error))
    log.exception("unhandled error", exc_info=error)
    return JSONResponse({"error": {"code": "INTERNAL", "message": "internal error"}},
                        status_code=500)
