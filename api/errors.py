"""problem+json (RFC 9457) for every error the API returns, through one handler."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, json
from marshmallow import ValidationError
from redis import RedisError
from sqlalchemy.exc import DataError, OperationalError, TimeoutError
from werkzeug.exceptions import HTTPException

from db.engine import is_unavailable

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# Codes for errors that only carry an HTTP status.
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error the client should see: status, stable code, human detail, field errors."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"/problems/{self.code}",
            "title": HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if self.errors:
            body["errors"] = self.errors
        return body


def validation_error(messages: Any, detail: str = "The request is not valid.") -> ApiError:
    return ApiError(422, "validation_error", detail, errors=flatten(messages))


def unknown_asset(code: str) -> ApiError:
    return ApiError(
        422, "unknown_asset", f"There is no asset '{code}'.", errors={"asset": ["Unknown asset."]}
    )


def unavailable(what: str) -> ApiError:
    return ApiError(
        503,
        "unavailable",
        f"The {what} is unavailable; retry shortly.",
        headers={"Retry-After": "1"},
    )


def problem_body(error: ApiError) -> bytes:
    """The problem+json document of an error, as sent (one line, ending in a newline)."""
    return (json.dumps(error.problem()) + "\n").encode("utf-8")


def problem_response(error: ApiError) -> Response:
    response = Response(problem_body(error), error.status, mimetype=PROBLEM_JSON)
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def register(app: Flask) -> None:
    app.register_error_handler(ApiError, problem_response)
    app.register_error_handler(
        ValidationError, lambda e: problem_response(validation_error(e.messages))
    )
    app.register_error_handler(HTTPException, _http_exception)
    # The database or broker is down: 503 with Retry-After, never a 500.
    app.register_error_handler(OperationalError, _database_down)
    app.register_error_handler(TimeoutError, _database_down)
    app.register_error_handler(RedisError, lambda e: problem_response(unavailable("broker")))
    # A value PostgreSQL refuses to store (out of range, malformed): the request's fault.
    app.register_error_handler(DataError, _unstorable)
    app.register_error_handler(UnicodeEncodeError, _unstorable)
    app.register_error_handler(Exception, _unexpected)


def _http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    if status == 422 and "messages" in data:
        return problem_response(validation_error(data["messages"]))
    code = STATUS_CODES.get(status, "error")
    detail = error.description or HTTPStatus(status).phrase
    if status == 413:
        detail = "The request body is larger than 1 MiB."
    elif status == 404:
        detail = "No such resource."
    headers = dict(data.get("headers") or {})
    if status == 405 and error.get_headers():
        headers.update({k: v for k, v in error.get_headers() if k == "Allow"})
    return problem_response(ApiError(status, code, detail, headers=headers))


def _unstorable(error: Exception) -> Response:
    log.warning("refused by the database: %s", error)
    return problem_response(
        ApiError(422, "validation_error", "A value in the request cannot be stored.")
    )


def _database_down(error: Exception) -> Response:
    log.warning("database unavailable: %s", error)
    return problem_response(unavailable("database"))


def _unexpected(error: Exception) -> Response:
    # Every other way a failover shows (a demoted primary's "read-only transaction", a
    # connection invalidated mid-statement, a raw driver error): still 503, not 500.
    if is_unavailable(error):
        return _database_down(error)
    log.exception("unexpected error")
    return problem_response(ApiError(500, "internal_error", "An unexpected error occurred."))


def flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as {"field.sub": ["message"]}; body-level under "_body"."""
    if isinstance(messages, list):
        return {prefix or "_body": [str(m) for m in messages]}
    flat: dict[str, list[str]] = {}
    for key, value in messages.items():
        if key in ("json", "query", "view_args") and not prefix:
            flat.update(flatten(value))
            continue
        name = "_body" if key == "_schema" and not prefix else f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat.setdefault(name, []).extend(str(m) for m in value)
    return flat
