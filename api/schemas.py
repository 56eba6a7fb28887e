"""marshmallow schemas: they validate requests and generate the OpenAPI document."""

from __future__ import annotations

import json
import re
from datetime import UTC
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from db.clients import callback_host
from ledger import (
    ASSET_CODE_PATTERN,
    MAX_AMOUNT,
    SYSTEM_ACCOUNTS,
    CommandType,
    TransactionStatus,
    is_same_wallet_transfer,
    is_valid_user_id,
)

METADATA_MAX_BYTES = 4096
HOLD_MAX_SECONDS = 604_800
IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,255}")
# The same rules as JSON Schema patterns (ECMA regex, no lookahead) for the document:
# is_valid_user_id's "not starting with '@'" is the first character's smaller class.
IDEMPOTENCY_KEY_PATTERN = r"^[\x20-\x7e]{1,255}$"
USER_ID_PATTERN = r"^[A-Za-z0-9_.:-][A-Za-z0-9_.:@-]{0,127}$"
# A wallet read also takes the system accounts (@treasury...).
ACCOUNT_PATTERN = f"^({'|'.join(SYSTEM_ACCOUNTS)}|{USER_ID_PATTERN[1:-1]})$"
# Cursors are unpadded URL-safe base64 of "seq:<n>".
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# The shape of a callback_hosts entry, for the OpenAPI document; _callback_host decides.
HOST = re.compile(r"^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")


def _callback_host(value: str) -> None:
    try:
        callback_host(value)
    except ValueError as error:
        raise ValidationError(
            "Must be host or host:port: a DNS name, an IPv4 address or a bracketed IPv6 "
            f"address, and a port 1-65535. {error}"
        ) from None


class Amount(fields.Integer):
    """A JSON integer in 1..2^53-1. Booleans, floats (even 5.0) and strings are refused."""

    default_error_messages = {"invalid": "Must be a JSON integer (no fraction, no quotes)."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, validate=validate.Range(1, MAX_AMOUNT), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if type(value) is not int:
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class UserId(fields.String):
    """A game's player id: 1-128 of [A-Za-z0-9_.:@-], not starting with '@'."""

    def __init__(self, **kwargs: Any) -> None:
        # The check is a function; the document states the same rule as a pattern.
        documented = {"pattern": USER_ID_PATTERN, "minLength": 1, "maxLength": 128}
        kwargs["metadata"] = {**documented, "example": "alice", **kwargs.get("metadata", {})}
        super().__init__(validate=self._check, **kwargs)

    @staticmethod
    def _check(value: str) -> None:
        if not is_valid_user_id(value):
            raise ValidationError(
                "Must be 1-128 characters of A-Z a-z 0-9 _ . : @ - and not start with '@'."
            )


class AssetCode(fields.String):
    """An asset's code: ^[A-Z][A-Z0-9_]{1,31}$."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["metadata"] = {"example": "GOLD_COINS", **kwargs.get("metadata", {})}
        super().__init__(
            validate=validate.Regexp(
                ASSET_CODE_PATTERN, error="Must match ^[A-Z][A-Z0-9_]{{1,31}}$."
            ),
            **kwargs,
        )


def _metadata_size(value: dict[str, Any]) -> None:
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > METADATA_MAX_BYTES:
        raise ValidationError(f"Must be at most {METADATA_MAX_BYTES} bytes as JSON ({size}).")


# -- commands ------------------------------------------------------------------------


class CommandSchema(Schema):
    """Fields every command may carry."""

    metadata = fields.Dict(
        keys=fields.String(),
        validate=_metadata_size,
        metadata={
            "description": f"Any JSON object, at most {METADATA_MAX_BYTES} bytes serialized; "
            "returned as sent.",
            "example": {"order_id": "8812"},
        },
    )
    # Checked against the client's callback_hosts at intake (422 callback_not_allowed).
    callback_url = fields.String(
        validate=validate.Length(1, 2048),
        metadata={
            "description": "http(s) URL whose host (or host:port) is one of the client's "
            "callback_hosts, else 422 callback_not_allowed.",
            "format": "uri",
            "example": "https://game.example.com/wallet-events",
        },
    )


class TopUpSchema(CommandSchema):
    user_id = UserId(required=True)
    asset = AssetCode(required=True)
    amount = Amount(required=True)


class BonusSchema(TopUpSchema):
    reason = fields.String(validate=validate.Length(1, 255))


class SpendSchema(TopUpSchema):
    item_id = fields.String(validate=validate.Length(1, 255))


class TransferSchema(CommandSchema):
    from_user_id = UserId(required=True)
    to_user_id = UserId(required=True)
    asset = AssetCode(required=True)
    amount = Amount(required=True)

    @validates_schema
    def _different_wallets(self, data: dict[str, Any], **_: Any) -> None:
        payer, payee = data.get("from_user_id"), data.get("to_user_id")
        if payer is not None and payee is not None and is_same_wallet_transfer(payer, payee):
            raise ValidationError("Cannot transfer to the same wallet.", "to_user_id")


class HoldSchema(TopUpSchema):
    expires_in = fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(1, HOLD_MAX_SECONDS),
        metadata={"description": "Seconds until the hold expires (is released).", "example": 900},
    )


class CaptureSchema(CommandSchema):
    amount = Amount()


class ReleaseSchema(CommandSchema):
    pass


class ReverseSchema(CommandSchema):
    reason = fields.String(required=True, validate=validate.Length(1, 1000))


class FreezeSchema(CommandSchema):
    reason = fields.String(
        required=True,
        validate=validate.Length(1, 1000),
        metadata={"description": "Why (shown in the wallet's `frozen`).", "example": "fraud"},
    )


class UnfreezeSchema(CommandSchema):
    reason = fields.String(validate=validate.Length(1, 1000))


# The body schema of each command type, and the path field that names its reference.
COMMAND_SCHEMAS: dict[CommandType, type[CommandSchema]] = {
    CommandType.TOPUP: TopUpSchema,
    CommandType.BONUS: BonusSchema,
    CommandType.SPEND: SpendSchema,
    CommandType.TRANSFER: TransferSchema,
    CommandType.HOLD: HoldSchema,
    CommandType.CAPTURE: CaptureSchema,
    CommandType.RELEASE: ReleaseSchema,
    CommandType.REVERSE: ReverseSchema,
    CommandType.FREEZE: FreezeSchema,
    CommandType.UNFREEZE: UnfreezeSchema,
}
REFERENCE_FIELD = {
    CommandType.CAPTURE: "hold_id",
    CommandType.RELEASE: "hold_id",
    CommandType.REVERSE: "transaction_id",
}


class BatchSchema(Schema):
    commands = fields.List(
        fields.Dict(),
        required=True,
        validate=validate.Length(1, 1000, error="Must hold 1 to 1000 commands."),
        metadata={
            "description": "Each item: `type`, `idempotency_key`, the fields of that command "
            "type, and `hold_id` (capture, release) or `transaction_id` (reverse)."
        },
    )


# -- responses -------------------------------------------------------------------------


class EntrySchema(Schema):
    account = fields.String(required=True)
    direction = fields.String(required=True, validate=validate.OneOf(["debit", "credit"]))
    amount = fields.Integer(required=True)


class RejectionSchema(Schema):
    """Why a transaction was rejected: a stable code (e.g. insufficient_funds) and a text."""

    code = fields.String(required=True)
    message = fields.String(required=True)


class TransactionSchema(Schema):
    id = fields.String(required=True)
    type = fields.String(required=True, validate=validate.OneOf([t.value for t in CommandType]))
    status = fields.String(
        required=True, validate=validate.OneOf([s.value for s in TransactionStatus])
    )
    user_id = fields.String(required=True)
    asset = fields.String(
        required=True, allow_none=True, metadata={"description": "null for freeze, unfreeze."}
    )
    amount = fields.Integer(allow_none=True)
    idempotency_key = fields.String(required=True)
    metadata = fields.Dict(allow_none=True)
    error = fields.Nested(RejectionSchema, allow_none=True)
    balance_after = fields.Integer(allow_none=True)
    entries = fields.List(fields.Nested(EntrySchema), required=True)
    created_at = fields.String(required=True)
    completed_at = fields.String(allow_none=True)
    to_user_id = fields.String(metadata={"description": "Transfers: the payee."})
    expires_at = fields.String(
        metadata={"description": "Holds; expiries: the instant of the credits expired."}
    )
    hold_status = fields.String(
        validate=validate.OneOf(["active", "captured", "released", "expired"]),
        allow_none=True,
        metadata={"description": "Holds: null until the hold is applied."},
    )
    hold_id = fields.String(metadata={"description": "Captures and releases."})
    reverses = fields.String(metadata={"description": "Reversals: the transaction undone."})
    reversed_by = fields.String(metadata={"description": "Set once a reversal completed."})
    reason = fields.String()
    item_id = fields.String()
    callback_url = fields.String()


class BatchResultSchema(Schema):
    results = fields.List(
        fields.Dict(),
        required=True,
        metadata={
            "description": "One per command, in request order: the transaction (with "
            "`replayed`) or a problem object (with `status` as an HTTP status)."
        },
    )


class CallbackAttemptSchema(Schema):
    attempt = fields.Integer(required=True)
    attempted_at = fields.String(required=True)
    status_code = fields.Integer(allow_none=True, metadata={"description": "null: no answer"})
    error = fields.String(allow_none=True)
    duration_ms = fields.Integer(required=True)
    next_attempt_at = fields.String(allow_none=True, metadata={"description": "null: no retry"})


class CallbackLogSchema(Schema):
    transaction_id = fields.String(required=True)
    event_id = fields.String(allow_none=True, metadata={"description": "Wallet-Event-Id"})
    event = fields.String(allow_none=True)
    url = fields.String(allow_none=True)
    status = fields.String(
        allow_none=True, validate=validate.OneOf(["pending", "delivered", "failed"])
    )
    next_attempt_at = fields.String(allow_none=True)
    delivered_at = fields.String(allow_none=True)
    items = fields.List(fields.Nested(CallbackAttemptSchema), required=True)


class ExpiringSchema(Schema):
    amount = fields.Integer(required=True)
    expires_at = fields.String(required=True)


class Instant(fields.AwareDateTime):
    """An RFC 3339 time with an offset, as a UTC datetime (microseconds, the database's
    resolution: finer digits are cut). One that is out of range in UTC (year 1 at
    +01:00) is refused, not a 500 when it is shown."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise ValidationError("Out of range.") from None


# Held and available as they stood at an instant are not recorded: see WalletQuerySchema.
AT_ONLY_BALANCE = "Absent with `?at=`, which reports the posted balance only."


class BalanceSchema(Schema):
    asset = fields.String(required=True)
    balance = fields.Integer(
        required=True, metadata={"description": "Posted; with `?at=`, as it stood then."}
    )
    held = fields.Integer(metadata={"description": AT_ONLY_BALANCE})
    available = fields.Integer(metadata={"description": AT_ONLY_BALANCE})
    updated_at = fields.String(metadata={"description": AT_ONLY_BALANCE})
    expiring = fields.List(
        fields.Nested(ExpiringSchema),
        metadata={
            "description": "Available credits that will expire, soonest first, at most 10; "
            "only for an asset with a credit lifetime (absent otherwise, so a balance of an "
            "asset without rules reads as it always did). Held credits are not listed: "
            "they are protected while their hold is active. " + AT_ONLY_BALANCE
        },
    )


class FrozenSchema(Schema):
    reason = fields.String(required=True)
    since = fields.String(required=True)


class WalletSchema(Schema):
    user_id = fields.String(required=True)
    frozen = fields.Nested(
        FrozenSchema,
        allow_none=True,
        metadata={
            "description": "null unless the player is frozen (their debits refused). "
            + AT_ONLY_BALANCE
        },
    )
    at = fields.String(
        metadata={"description": "With `?at=`: the instant asked about, to the microsecond."}
    )
    balances = fields.List(fields.Nested(BalanceSchema), required=True)


class WalletQuerySchema(Schema):
    at = Instant(
        metadata={
            "description": "RFC 3339 with an offset (a future one shows what is applied "
            "so far): each wallet's posted `balance` as it stood at that instant, every "
            "entry applied at or before it (asked at an entry's instant, a statement's `at` "
            "or its transaction's `completed_at`, that entry's `balance_after`). "
            "A wallet with no entry by then shows 0. `held` and `available` are left out: "
            "a hold's end by expiry has no recorded instant, so they cannot be told exactly "
            "for the past. Not for system accounts (422).",
            "example": "2026-11-20T10:00:00.000000Z",
        }
    )


class StatementQuerySchema(Schema):
    asset = AssetCode(required=True)
    start = Instant(
        data_key="from",
        metadata={
            "description": "RFC 3339 with an offset: the window's start, included. "
            "Default: the wallet's beginning (opening balance 0)."
        },
    )
    end = Instant(
        data_key="to",
        metadata={
            "description": "RFC 3339 with an offset: the window's end, excluded (an entry "
            "applied exactly then is in the next window). Default: now. A window still "
            "open lists what has been applied so far."
        },
    )

    @validates_schema
    def _window(self, data: dict[str, Any], **_: Any) -> None:
        start, end = data.get("start"), data.get("end")
        if start is not None and end is not None and start >= end:
            raise ValidationError("Must be after from.", "to")


class StatementEntrySchema(Schema):
    transaction_id = fields.String(required=True)
    type = fields.String(required=True, validate=validate.OneOf([t.value for t in CommandType]))
    amount = fields.Integer(
        required=True, metadata={"description": "Signed: a credit positive, a debit negative."}
    )
    balance_after = fields.Integer(required=True)
    at = fields.String(
        required=True,
        metadata={
            "description": "When the entry was applied (its transaction's completed_at), "
            "to the microsecond: distinct and rising within a wallet."
        },
    )


class StatementSchema(Schema):
    user_id = fields.String(required=True)
    asset = fields.String(required=True)
    from_ = fields.String(
        data_key="from",
        required=True,
        allow_none=True,
        metadata={"description": "null: from the beginning."},
    )
    to = fields.String(required=True)
    opening_balance = fields.Integer(required=True)
    entries = fields.List(fields.Nested(StatementEntrySchema), required=True)
    closing_balance = fields.Integer(required=True)


class HistoryQuerySchema(Schema):
    asset = AssetCode()
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    cursor = fields.String(
        metadata={"pattern": CURSOR_PATTERN, "description": "A page's `next_cursor`."}
    )


class HistoryPageSchema(Schema):
    items = fields.List(fields.Nested(TransactionSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class WaitQuerySchema(Schema):
    wait = fields.Float(
        load_default=0,
        validate=validate.Range(0, 30),
        metadata={"description": "Seconds to wait for a final status (long poll)."},
    )


class KeyQuerySchema(Schema):
    idempotency_key = fields.String(
        required=True,
        validate=validate.Length(1, 255),
        metadata={"example": "3f6c1e9a-8812-4d3b-9a57-topup-example"},
    )


def _setting(description: str) -> Amount:
    return Amount(allow_none=True, metadata={"description": description})


MAX_BALANCE_DOC = (
    "The highest balance a credit may leave in a player's wallet (else the credit is "
    "rejected balance_limit_exceeded); null: no cap."
)
SPEND_LIMIT_DOC = (
    "The most a player may debit (spend, transfer out, capture) in any rolling 24 hours "
    "(else spend_limit_exceeded); null: no limit."
)
LIFETIME_DOC = (
    "Seconds after which each credit expires to @expired (soonest-expiring credits are "
    "used first); null: credits never expire."
)


class AssetSchema(Schema):
    code = AssetCode(required=True)
    name = fields.String(required=True, validate=validate.Length(1, 100))
    max_balance = _setting(MAX_BALANCE_DOC)
    spend_limit_24h = _setting(SPEND_LIMIT_DOC)
    credit_lifetime = _setting(LIFETIME_DOC)


class AssetPatchSchema(Schema):
    """Some of an asset's settings: a value sets or changes one, null clears it."""

    max_balance = _setting(MAX_BALANCE_DOC)
    spend_limit_24h = _setting(SPEND_LIMIT_DOC)
    credit_lifetime = _setting(LIFETIME_DOC)

    @validates_schema
    def _something(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError(
                "Send at least one of max_balance, spend_limit_24h, credit_lifetime.", "_body"
            )


class AssetListSchema(Schema):
    items = fields.List(fields.Nested(AssetSchema), required=True)


LEDGER_CODE = r"^[a-z][a-z0-9_-]{1,31}$"


class LedgerCode(fields.String):
    """A ledger's code: ^[a-z][a-z0-9_-]{1,31}$."""

    def __init__(self, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(
            validate=validate.Regexp(LEDGER_CODE, error="Must match ^[a-z][a-z0-9_-]{{1,31}}$."),
            metadata={"pattern": LEDGER_CODE, "example": "space-miners-prod", **(metadata or {})},
            **kwargs,
        )


class LedgerRequestSchema(Schema):
    code = LedgerCode(required=True)
    name = fields.String(required=True, validate=validate.Length(1, 100))


class LedgerSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    created_at = fields.String(required=True)


class LedgerListSchema(Schema):
    items = fields.List(fields.Nested(LedgerSchema), required=True)


class ClientRequestSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(1, 100))
    ledger = LedgerCode(
        metadata={
            "description": "The ledger the client acts in (default: the caller's own). "
            "Only the bootstrap key places a client in another ledger.",
        }
    )
    scopes = fields.List(
        fields.String(validate=validate.OneOf(["submit", "read", "admin"])),
        required=True,
        validate=validate.Length(min=1),
    )
    callback_hosts = fields.List(
        fields.String(
            validate=[validate.Length(1, 259), _callback_host], metadata={"pattern": HOST.pattern}
        ),
        load_default=list,
    )


class ClientCreatedSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    ledger = fields.String(required=True)
    scopes = fields.List(fields.String(), required=True)
    callback_hosts = fields.List(fields.String(), required=True)
    api_key = fields.String(required=True, metadata={"description": "Shown once."})
    webhook_secret = fields.String(required=True)


class MismatchSchema(Schema):
    account = fields.String(required=True)
    shard = fields.Integer(required=True)
    field = fields.String(required=True)
    cached = fields.Integer(required=True)
    expected = fields.Integer(required=True)


class AssetReconciliationSchema(Schema):
    asset = fields.String(required=True)
    sum_of_balances = fields.Integer(required=True)
    accounts_checked = fields.Integer(required=True)
    mismatches = fields.List(fields.Nested(MismatchSchema), required=True)


class AboveCapSchema(Schema):
    account = fields.String(required=True)
    asset = fields.String(required=True)
    balance = fields.Integer(required=True)
    max_balance = fields.Integer(required=True)


class LotsMismatchSchema(Schema):
    account = fields.String(required=True)
    asset = fields.String(required=True)
    hold_id = fields.String(allow_none=True, metadata={"description": "null: the wallet's lots"})
    lots_total = fields.Integer(required=True)
    expected = fields.Integer(required=True)


class SpendWindowMismatchSchema(Schema):
    account = fields.String(required=True)
    asset = fields.String(required=True)
    stored = fields.Integer(required=True)
    ledger = fields.Integer(required=True)


class ReconciliationSchema(Schema):
    ok = fields.Boolean(required=True)
    ledger = fields.String(required=True)
    unbalanced_transactions = fields.List(fields.String(), required=True)
    assets = fields.List(fields.Nested(AssetReconciliationSchema), required=True)
    wallets_above_cap = fields.List(
        fields.Nested(AboveCapSchema),
        required=True,
        metadata={"description": "Above a cap lowered under them; informational, not an error."},
    )
    lots_mismatches = fields.List(fields.Nested(LotsMismatchSchema), required=True)
    spend_window_mismatches = fields.List(fields.Nested(SpendWindowMismatchSchema), required=True)


class ProblemSchema(Schema):
    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    code = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


# -- operators -------------------------------------------------------------------------


class PartitionSchema(Schema):
    partition = fields.Integer(required=True)
    pending = fields.Integer(required=True, metadata={"description": "Commands not yet applied."})
    oldest_pending_age_s = fields.Float(
        allow_none=True,
        required=True,
        metadata={"description": "Seconds since the oldest pending command was accepted."},
    )
    consumers = fields.Integer(
        allow_none=True,
        required=True,
        metadata={
            "description": "Live workers consuming the partition's queue (Celery's control "
            "API, cached a few seconds); null when the broker cannot be asked."
        },
    )
    stalled = fields.Boolean(
        allow_none=True,
        required=True,
        metadata={"description": "Pending commands and no consumer; null if consumers unknown."},
    )
    last_drain_at = fields.String(
        allow_none=True, required=True, metadata={"description": "When its last batch committed."}
    )


class PartitionsSchema(Schema):
    items = fields.List(fields.Nested(PartitionSchema), required=True)
    consumers_counted_at = fields.String(
        allow_none=True, required=True, metadata={"description": "When the census was taken."}
    )
    broker = fields.String(required=True, metadata={"description": "ok, or unreachable."})


class AdminTransactionQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf([s.value for s in TransactionStatus]))
    type = fields.String(validate=validate.OneOf([t.value for t in CommandType]))
    user_id = fields.String(validate=validate.Length(1, 128))
    asset = AssetCode()
    created_from = fields.AwareDateTime(
        metadata={"description": "RFC 3339 with an offset; created at or after this instant."}
    )
    created_to = fields.AwareDateTime(
        metadata={"description": "RFC 3339 with an offset; created before this instant."}
    )
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    cursor = fields.String()

    @validates_schema
    def _window(self, data: dict[str, Any], **_: Any) -> None:
        start, end = data.get("created_from"), data.get("created_to")
        if start is not None and end is not None and start >= end:
            raise ValidationError("Must be after created_from.", "created_to")


class CallbackQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(["failed", "pending", "delivered"]))
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    cursor = fields.String()


class CallbackDeliverySchema(Schema):
    event_id = fields.String(required=True, metadata={"description": "Wallet-Event-Id"})
    transaction_id = fields.String(required=True)
    url = fields.String(required=True)
    event = fields.String(required=True)
    status = fields.String(
        required=True, validate=validate.OneOf(["pending", "delivered", "failed"])
    )
    attempts = fields.Integer(required=True)
    last_error = fields.String(allow_none=True)
    next_attempt_at = fields.String(allow_none=True)
    created_at = fields.String(required=True)
    delivered_at = fields.String(allow_none=True)


class CallbackPageSchema(Schema):
    items = fields.List(fields.Nested(CallbackDeliverySchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class RedeliverySchema(Schema):
    event_id = fields.String(required=True)
    transaction_id = fields.String(required=True)
    status = fields.String(required=True)
    next_attempt_at = fields.String(allow_none=True)
