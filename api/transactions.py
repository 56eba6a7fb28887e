"""/v1/transactions: submit commands (single or batch) and read their outcomes."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, json, request
from marshmallow import ValidationError
from sqlalchemy import text

from api import intake, longpoll
from api.auth import current_client, require
from api.blueprint import Blueprint
from api.errors import ApiError, validation_error
from api.observability import request_id
from api.openapi import BATCH_EXAMPLE, COMMAND_EXAMPLES, header_refs
from api.schemas import (
    COMMAND_SCHEMAS,
    IDEMPOTENCY_KEY,
    IDEMPOTENCY_KEY_PATTERN,
    REFERENCE_FIELD,
    BatchResultSchema,
    BatchSchema,
    CallbackLogSchema,
    KeyQuerySchema,
    TransactionSchema,
    WaitQuerySchema,
)
from db import callbacks, reads
from db.engine import autocommit
from ledger import CommandType, TransactionStatus

F = TypeVar("F", bound=Callable[..., Any])

blp = Blueprint(
    "transactions",
    __name__,
    url_prefix="/v1/transactions",
    description="Wallet commands: accepted with 202, applied asynchronously, read back here.",
)

# The example key is one no test or README example uses: the fuzz sends it for real.
IDEMPOTENCY_HEADER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": True,
    "description": "1-255 printable ASCII characters, unique per client and command.",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": IDEMPOTENCY_KEY_PATTERN,
        "example": "3f6c1e9a-8812-4d3b-9a57-topup-example",
    },
}
SCOPE = {
    CommandType.REVERSE: "admin",
    CommandType.FREEZE: "admin",
    CommandType.UNFREEZE: "admin",
}
# What a batch may carry: the commands a client submits (an expiry is the sweeper's,
# a freeze or unfreeze is a wallet's: POST /v1/wallets/{user_id}/freeze).
BATCH_TYPES = tuple(
    t for t in COMMAND_SCHEMAS if t not in (CommandType.FREEZE, CommandType.UNFREEZE)
)
# Parsed once: schema instances are reusable and thread-safe for load().
ITEM_SCHEMAS = {kind: schema() for kind, schema in COMMAND_SCHEMAS.items()}


def idempotency_key(value: object) -> str:
    """The key of a request (a header, or a batch item's field), or 400."""
    if not isinstance(value, str) or not IDEMPOTENCY_KEY.fullmatch(value):
        raise ApiError(
            400,
            "idempotency_key_missing",
            "Send an Idempotency-Key of 1-255 printable ASCII characters.",
        )
    return value


def with_idempotency_key(view: Callable[..., Any]) -> Callable[..., Any]:
    """Check the header before the body is parsed: a bad key is a 400 whatever the body."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        kwargs["key"] = idempotency_key(request.headers.get("Idempotency-Key"))
        return view(*args, **kwargs)

    return wrapper


def respond(accepted: intake.Accepted) -> Response:
    """202 the first time; 200 with Idempotent-Replayed for the same key and body.

    The resource is already in its documented shape (db.reads.resource), so it is
    serialized as is: a marshmallow dump per request would only cost CPU.
    """
    headers = {"Location": f"/v1/transactions/{accepted.resource['id']}"}
    if not accepted.created:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        json.dumps(accepted.resource) + "\n",  # as jsonify ends its bodies
        202 if accepted.created else 200,
        headers,
        mimetype="application/json",
    )


def answers_a_command(blueprint: Blueprint) -> Callable[[F], F]:
    """The documented answers of every command submission (here and the player
    commands of /v1/wallets): 202 with the pending transaction, 200 for a replay."""

    def decorate(view: F) -> F:
        view = blueprint.alt_response(
            200,
            schema=TransactionSchema,
            description="Replay of the same key and body: the transaction in its current state.",
            headers=header_refs("Location", "Idempotent-Replayed"),
        )(view)
        return blueprint.response(
            202,
            TransactionSchema,
            description="Accepted: the pending transaction.",
            headers=header_refs("Location"),
        )(view)

    return decorate


def _command_view(kind: CommandType) -> Callable[..., Any]:
    """The view of one command type: the types differ only in schema and reference."""
    reference = REFERENCE_FIELD.get(kind)

    @require(SCOPE.get(kind, "submit"))
    @with_idempotency_key
    @blp.arguments(ITEM_SCHEMAS[kind], as_kwargs=False, example=COMMAND_EXAMPLES[kind.value])
    @answers_a_command(blp)
    # A capture, release or reversal names a transaction: 404 if there is none.
    @blp.secured(422, *([404] if reference else []), parameters=[IDEMPOTENCY_HEADER])
    def view(fields: dict[str, Any], key: str, **path: uuid.UUID) -> Any:
        if reference is not None:
            fields[reference] = path[reference]
        submission = intake.Submission(kind, key, fields, request_id())
        return respond(intake.submit(current_client(), submission))

    view.__name__ = f"submit_{kind.value}"
    view.__doc__ = f"Submit a {kind.value} command"
    return view


for _kind in (
    CommandType.TOPUP,
    CommandType.BONUS,
    CommandType.SPEND,
    CommandType.TRANSFER,
    CommandType.HOLD,
):
    blp.add_url_rule(f"/{_kind.value}", view_func=_command_view(_kind), methods=["POST"])
blp.add_url_rule(
    "/<uuid:hold_id>/capture", view_func=_command_view(CommandType.CAPTURE), methods=["POST"]
)
blp.add_url_rule(
    "/<uuid:hold_id>/release", view_func=_command_view(CommandType.RELEASE), methods=["POST"]
)
blp.add_url_rule(
    "/<uuid:transaction_id>/reverse",
    view_func=_command_view(CommandType.REVERSE),
    methods=["POST"],
)


@blp.route("/batch", methods=["POST"])
@require("submit")
@blp.arguments(BatchSchema(), example=BATCH_EXAMPLE)
@blp.response(202, BatchResultSchema)
@blp.secured(422)
def submit_batch(body: dict[str, Any]) -> Any:
    """Submit 1-1000 commands; each is accepted or refused on its own, in order"""
    client = current_client()
    items = [_batch_item(item, client.scopes) for item in body["commands"]]
    results = []
    for result in intake.submit_many(client, items):
        if isinstance(result, ApiError):
            results.append(result.problem())
        else:
            results.append({**result.resource, "replayed": not result.created})
    return {"results": results}


def _batch_item(item: dict[str, Any], scopes: frozenset[str]) -> intake.Submission | ApiError:
    """Validate one batch item as its own request would be validated."""
    try:
        # str(): only a string can name a type; anything else fails as before, below.
        kind = CommandType(str(item.get("type")))
        if kind not in BATCH_TYPES:
            raise ValueError(kind)
    except ValueError:
        return validation_error(
            {"type": [f"Must be one of: {', '.join(t.value for t in BATCH_TYPES)}."]}
        )
    try:
        key = idempotency_key(item.get("idempotency_key"))
    except ApiError as error:
        return error
    scope = SCOPE.get(kind, "submit")
    if scope not in scopes:
        return ApiError(403, "forbidden", f"This key lacks the '{scope}' scope.")
    fields = {k: v for k, v in item.items() if k not in ("type", "idempotency_key")}
    reference = REFERENCE_FIELD.get(kind)
    ref_value = fields.pop(reference, None) if reference else None
    errors: dict[str, Any] = {}
    if reference is not None:
        try:
            ref_value = uuid.UUID(str(ref_value))
        except ValueError:
            errors[reference] = ["Must be a transaction id (UUID)."]
    try:
        loaded = ITEM_SCHEMAS[kind].load(fields)
    except ValidationError as error:
        errors.update(
            error.messages if isinstance(error.messages, dict) else {"_body": error.messages}
        )
    if errors:
        return validation_error(errors)
    if reference is not None:
        loaded[reference] = ref_value
    return intake.Submission(kind, key, loaded, request_id())


@blp.route("/<uuid:tx_id>", methods=["GET"])
@require("read")
@blp.arguments(WaitQuerySchema(), location="query", as_kwargs=True)
@blp.response(
    200,
    TransactionSchema,
    description="The transaction; while pending, with Retry-After.",
    headers=header_refs("Retry-After"),
)
@blp.secured(404, 422)
def get_transaction(tx_id: uuid.UUID, wait: float) -> Any:
    """A transaction in its current state; ?wait=N (0-30 s) returns as soon as it is final"""

    ledger_id = current_client().ledger_id

    def read() -> dict[str, Any] | None:
        with autocommit() as conn:  # a connection per read, none held while waiting
            return reads.transaction(conn, ledger_id, tx_id)

    resource = read()
    if resource is not None and resource["status"] == TransactionStatus.PENDING and wait > 0:
        resource = longpoll.wait_final(tx_id, wait, read)
    if resource is None:
        raise ApiError(404, "not_found", f"There is no transaction {tx_id}.")
    return _with_retry_after(resource)


@blp.route("/<uuid:tx_id>/callbacks", methods=["GET"])
@require("read")
@blp.response(200, CallbackLogSchema)
@blp.secured(404)
def callback_log(tx_id: uuid.UUID) -> Any:
    """The transaction's callback and every delivery attempt (its client, or admin)"""
    client = current_client()
    with autocommit() as conn:
        owner = conn.execute(
            text("SELECT client_id FROM transactions WHERE ledger_id = :ledger AND id = :id"),
            {"ledger": client.ledger_id, "id": tx_id},
        ).scalar()
        if owner is None or (owner != client.id and "admin" not in client.scopes):
            raise ApiError(404, "not_found", f"There is no transaction {tx_id}.")
        return callbacks.for_transaction(conn, tx_id)


@blp.route("", methods=["GET"])
@require("read")
@blp.arguments(KeyQuerySchema(), location="query", as_kwargs=True)
@blp.response(
    200,
    TransactionSchema,
    description="The transaction; while pending, with Retry-After.",
    headers=header_refs("Retry-After"),
)
@blp.secured(404, 422)
def find_by_key(idempotency_key: str) -> Any:
    """The calling client's transaction for an Idempotency-Key"""
    with autocommit() as conn:
        client = current_client()
        resource = reads.transaction_by_key(conn, client.ledger_id, client.id, idempotency_key)
    if resource is None:
        raise ApiError(404, "not_found", "This client has no transaction with that key.")
    return _with_retry_after(resource)


def _with_retry_after(resource: dict[str, Any]) -> Any:
    if resource["status"] == TransactionStatus.PENDING:
        return resource, 200, {"Retry-After": "1"}
    return resource
