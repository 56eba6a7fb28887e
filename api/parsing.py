"""Reading request bodies: strict JSON, whatever the Content-Type says."""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

import flask
from marshmallow import Schema, ValidationError
from webargs import core
from webargs.flaskparser import FlaskParser

from api.errors import ApiError, validation_error


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def load_json(data: bytes) -> Any:
    """Parse a body as JSON. NaN and Infinity are Python's extensions, not JSON: refused.

    JSON allows "\u0000" in strings; PostgreSQL's text and jsonb do not. Such a body is
    refused here, as invalid input, instead of failing when it is stored.
    """
    try:
        body = json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {error}") from None
    if UNSTORABLE_ESCAPE.search(data) and _has_unstorable(body):
        raise validation_error(
            {"_body": ["Strings may not contain NUL (\\u0000) or unpaired surrogates."]}
        )
    return body


# The only ways a JSON string can hold what PostgreSQL's text and UTF-8 refuse: the NUL
# character, and a surrogate (\\ud800-\\udfff) that does not pair with another.
UNSTORABLE_ESCAPE = re.compile(rb"\\u(0000|[dD][89a-fA-F])")


def _has_unstorable(value: Any) -> bool:
    if isinstance(value, str):
        if "\x00" in value:
            return True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_unstorable(k) or _has_unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_unstorable(v) for v in value)
    return False


class StrictJsonParser(FlaskParser):
    """webargs' Flask parser, with our JSON rules and problem+json errors.

    Game servers do not always send `Content-Type: application/json`; a body is read
    as JSON either way, and an empty body is an empty object.
    """

    DEFAULT_VALIDATION_STATUS = 422

    def _raw_load_json(self, req: flask.Request) -> Any:
        data = req.get_data(cache=True)
        if not data.strip():
            return {}
        return load_json(data)

    def handle_error(
        self,
        error: ValidationError,
        req: flask.Request,
        schema: Schema,
        *,
        error_status_code: int | None,
        error_headers: Any,
    ) -> NoReturn:
        raise validation_error(error.messages)

    def _handle_invalid_json_error(
        self, error: Any, req: flask.Request, *a: Any, **k: Any
    ) -> NoReturn:
        raise ApiError(400, "invalid_json", "The body is not valid JSON.")


parser = StrictJsonParser()
missing = core.missing
