"""The OpenAPI document as the service really answers: problem+json errors, headers, examples.

flask-smorest documents every error as its own JSON `Error` object (`code` an integer,
`status` a string) under a `default` response. This API sends RFC 9457 problems
instead, so `WalletApi` documents those, status by status, and `HeadersPlugin` adds
the headers every response carries.
"""

from __future__ import annotations

import http
from typing import Any

from apispec import BasePlugin
from flask_smorest import Api
from marshmallow import fields

from api.schemas import ProblemSchema

PROBLEM_JSON = "application/problem+json"

# Sent on every response (the client's own id when it sent a sane one): documented on
# every response, success or error.
REQUEST_ID = "X-Request-Id"
HEADERS: dict[str, dict[str, Any]] = {
    REQUEST_ID: {
        "description": "The request's id, as in the service's logs: the client's own "
        "X-Request-Id if it sent a sane one, else a new one.",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
    },
    "Retry-After": {
        "description": "Seconds to wait before asking again.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "Location": {
        "description": "Where the created resource is read.",
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "`true`: this key was already accepted with this body; nothing new "
        "was done.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "WWW-Authenticate": {
        "description": "The Bearer challenge.",
        "schema": {"type": "string"},
    },
}

# What each error status means here, with the problem `code`s it carries. Some come
# from the HTTP layer before a view runs (gunicorn's own 400/414/431, the 1 MiB limit).
PROBLEMS: dict[int, str] = {
    400: "`invalid_json` (not JSON, duplicate object keys, nested deeper than 64 levels), "
    "`idempotency_key_missing` (no Idempotency-Key, or not 1-255 printable ASCII), or "
    "`bad_request` (control characters in the path or query, malformed framing).",
    401: "`unauthorized`: no API key, or not a valid one.",
    403: "`forbidden`: the key lacks the scope this operation needs.",
    404: "`not_found` (no such transaction in this ledger), `user_not_found`, or "
    "`ledger_not_found` (the bootstrap key named a ledger that does not exist).",
    409: "A conflict with what exists: `asset_exists`, `ledger_exists`, "
    "`callback_delivered` (a redelivery of a delivered callback).",
    413: "`payload_too_large`: a body over 1 MiB, however it is framed.",
    414: "The request line is too long.",
    406: "`not_acceptable`: the `Accept` header names none of the operation's media "
    "types (a statement is JSON or CSV).",
    422: "`validation_error` (with `errors` per field), `unknown_asset`, "
    "`callback_not_allowed`, `idempotency_key_reused`, `not_a_hold`, `not_reversible`, "
    "`window_too_large` (a statement window of more than 10000 entries).",
    431: "The request headers are too large.",
    503: "`unavailable`: the database or the broker cannot be reached; retry after "
    "`Retry-After` seconds.",
}
PROBLEM_HEADERS: dict[int, tuple[str, ...]] = {
    401: ("WWW-Authenticate",),
    503: ("Retry-After",),
}


def header_refs(*names: str) -> dict[str, dict[str, str]]:
    """Response `headers` referring to the shared header components."""
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def problem_response(status: int) -> dict[str, Any]:
    """The component response of one error status: a Problem as problem+json."""
    description = PROBLEMS.get(status, http.HTTPStatus(status).phrase)
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        "headers": header_refs(REQUEST_ID, *PROBLEM_HEADERS.get(status, ())),
    }


def problem_ref(status: int) -> str:
    """The name an operation uses to refer to the response of an error status."""
    return http.HTTPStatus(status).name


# Every authenticated operation acts in one ledger: the caller's, or for the bootstrap
# key the one this header names.
LEDGER_HEADER = {
    "in": "header",
    "name": "Wallet-Ledger",
    "required": False,
    "description": "The ledger to act in: for the bootstrap key (WALLET_ADMIN_KEY) only; "
    "absent means `default`. A client key acts in its own ledger; naming another is 403.",
    "schema": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{1,31}$"},
}


class HeadersPlugin(BasePlugin):
    """Adds X-Request-Id to each response an operation describes inline (its successes;
    the error responses are components that already carry it), and the Wallet-Ledger
    request header to every operation that needs a key."""

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **_: Any
    ) -> None:
        for operation in (operations or {}).values():
            if not isinstance(operation, dict):
                continue
            for response in operation.get("responses", {}).values():
                if isinstance(response, dict) and "$ref" not in response:
                    response.setdefault("headers", {}).update(header_refs(REQUEST_ID))
            if operation.get("security"):
                operation.setdefault("parameters", []).insert(0, LEDGER_HEADER)


def nullable_ref(
    self: Any, field: fields.Field[Any], ret: dict[str, Any], **_: Any
) -> dict[str, Any]:
    """A nullable nested schema as `allOf: [$ref]` with `nullable` (OpenAPI 3.0).

    apispec writes `anyOf: [{type: object, nullable: true}, $ref]`, whose first branch
    is any object: a generated client then parses a Rejection as an untyped dict.
    """
    any_of = ret.get("anyOf")
    if (
        field.allow_none
        and isinstance(any_of, list)
        and len(any_of) == 2
        and any_of[0] == {"type": "object", "nullable": True}
        and "$ref" in any_of[1]
    ):
        del ret["anyOf"]
        return {"allOf": [any_of[1]], "nullable": True}
    return {}


# flask-smorest has no type hints, so its Api is Any to mypy.
class WalletApi(Api):  # type: ignore[misc]
    """flask-smorest's Api, documenting problem+json errors instead of its `Error`."""

    # No catch-all `default`: each operation lists the error statuses it can return.
    DEFAULT_ERROR_RESPONSE_NAME = None
    ERROR_SCHEMA = ProblemSchema

    def _init_spec(self, *, extra_plugins: Any = None, **kwargs: Any) -> None:
        super()._init_spec(extra_plugins=[*(extra_plugins or ()), HeadersPlugin()], **kwargs)
        self.ma_plugin.converter.add_attribute_function(nullable_ref)
        for name, header in HEADERS.items():
            self.spec.components.header(name, header)
        self.spec.components.schema("Problem", schema=ProblemSchema)
        self.spec.components.security_scheme(
            "bearerAuth", {"type": "http", "scheme": "bearer", "description": "An API key."}
        )

    def _register_responses(self) -> None:
        """Each error status, by its name (BAD_REQUEST...), as a problem+json response.

        Lazy, as flask-smorest's own: only those an operation refers to are in the
        document. `blp.arguments` refers to UNPROCESSABLE_ENTITY by itself.
        """
        for status in http.HTTPStatus:
            if status >= 400:
                self.spec.components.response(status.name, problem_response(status), lazy=True)


# Request bodies as Swagger UI's "Try it out" sends them: seeded assets and players,
# amounts that apply, no callback_url (it must name one of the client's callback_hosts).
COMMAND_EXAMPLES: dict[str, dict[str, Any]] = {
    "topup": {"user_id": "alice", "asset": "GOLD_COINS", "amount": 100},
    "bonus": {"user_id": "alice", "asset": "GOLD_COINS", "amount": 50, "reason": "daily login"},
    "spend": {
        "user_id": "alice",
        "asset": "GOLD_COINS",
        "amount": 30,
        "item_id": "sword-of-dawn",
        "metadata": {"order_id": "8812"},
    },
    "transfer": {"from_user_id": "alice", "to_user_id": "bob", "asset": "GOLD_COINS", "amount": 25},
    "hold": {"user_id": "alice", "asset": "GOLD_COINS", "amount": 40, "expires_in": 900},
    "capture": {"amount": 40},
    "release": {},
    "reverse": {"reason": "Refund: order 8812 was cancelled."},
}
BATCH_EXAMPLE = {
    "commands": [
        {"type": "topup", "idempotency_key": "batch-8812-1", **COMMAND_EXAMPLES["topup"]},
        {"type": "spend", "idempotency_key": "batch-8812-2", **COMMAND_EXAMPLES["spend"]},
    ]
}
ASSET_EXAMPLE = {
    "code": "STAR_DUST",
    "name": "Star Dust",
    "max_balance": 1000000,
    "spend_limit_24h": 50000,
    "credit_lifetime": 2592000,
}
ASSET_PATCH_EXAMPLE = {"spend_limit_24h": 20000, "max_balance": None}
FREEZE_EXAMPLE = {"reason": "chargeback under investigation"}
UNFREEZE_EXAMPLE = {"reason": "investigation closed"}
LEDGER_EXAMPLE = {"code": "space-miners-staging", "name": "Space Miners (staging)"}
CLIENT_EXAMPLE = {
    "name": "match-server",
    "scopes": ["submit", "read"],
    "callback_hosts": ["game.example.com", "10.0.0.7:8443"],
}
