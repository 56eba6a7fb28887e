"""Reading request bodies: strict JSON, whatever the Content-Type says."""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

import flask
from marshmallow import Schema, ValidationError
from webargs import core
from webargs.flaskparser import FlaskParser

from api.edge import read_body
from api.errors import ApiError, validation_error


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


# Deeper than any command needs (a metadata object nested a few levels), and far from
# the depth at which the parser would run out of stack.
MAX_DEPTH = 64


class DuplicateKey(ValueError):
    pass


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are unique: `{"amount": 1, "amount": 5}` is not a
    request anyone means, and taking the last (Python's way) would apply 5."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        keys = [key for key, _ in pairs]
        duplicate = next(key for i, key in enumerate(keys) if key in keys[:i])
        raise DuplicateKey(f"duplicate key {duplicate!r}")
    return obj


def load_json(data: bytes) -> Any:
    """Parse a body as strict JSON, or raise 400 invalid_json.

    Refused: NaN and Infinity (Python's extensions, not JSON), duplicate object keys,
    and nesting deeper than MAX_DEPTH. JSON allows "\u0000" in strings; PostgreSQL's
    text and jsonb do not, so such a body is refused here (422) instead of failing
    when it is stored.
    """
    try:
        body = json.loads(
            data, parse_constant=_refuse_constant, object_pairs_hook=_object_without_duplicates
        )
    except RecursionError:
        raise _invalid(f"nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise _invalid(str(error)) from None
    if _depth_exceeds(body, MAX_DEPTH):
        raise _invalid(f"nested deeper than {MAX_DEPTH} levels")
    if UNSTORABLE_ESCAPE.search(data) and _has_unstorable(body):
        raise validation_error(
            {"_body": ["Strings may not contain NUL (\\u0000) or unpaired surrogates."]}
        )
    return body


def _invalid(reason: str) -> ApiError:
    return ApiError(400, "invalid_json", f"The body is not valid JSON: {reason}.")


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether objects and arrays nest more than `limit` deep (iteratively: no recursion
    on input a client controls)."""
    stack = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            children: Any = current.values()
        elif isinstance(current, list):
            children = current
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


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
        data = read_body(req.environ)
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
