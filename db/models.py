"""Typed SQLAlchemy models: the schema as Python sees it.

The migrations in db/migrations are the schema's source of truth (they also create the
triggers and partial indexes the ORM cannot express); a test checks that these models
and the migrated database agree.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NOW = func.now()


class Base(DeclarativeBase):
    pass


class Ledger(Base):
    """An isolated book: a game title, or one environment of it (0005)."""

    __tablename__ = "ledgers"
    __table_args__ = (
        UniqueConstraint("code", name="ledgers_code_key"),
        CheckConstraint("code ~ '^[a-z][a-z0-9_-]{1,31}$'", name="ledgers_code_format"),
    )

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)


class Partitioning(Base):
    """The partition count, one row (0006): db.partitioning reads and changes it."""

    __tablename__ = "wallet_partitioning"
    __table_args__ = (
        CheckConstraint("singleton", name="wallet_partitioning_one_row"),
        CheckConstraint("partitions >= 1", name="wallet_partitioning_positive"),
    )

    singleton: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=text("true"))
    partitions: Mapped[int] = mapped_column(SmallInteger)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)


class Asset(Base):
    __tablename__ = "assets"
    __table_args__ = (
        UniqueConstraint("ledger_id", "code", name="assets_ledger_code_key"),
        UniqueConstraint("ledger_id", "id", name="assets_ledger_id_key"),
        # The controls (0008): NULL is no rule.
        CheckConstraint(
            "max_balance IS NULL OR max_balance BETWEEN 1 AND 9007199254740991",
            name="assets_max_balance_range",
        ),
        CheckConstraint(
            "spend_limit_24h IS NULL OR spend_limit_24h BETWEEN 1 AND 9007199254740991",
            name="assets_spend_limit_24h_range",
        ),
        CheckConstraint(
            "credit_lifetime_s IS NULL OR credit_lifetime_s BETWEEN 1 AND 9007199254740991",
            name="assets_credit_lifetime_s_range",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    ledger_id: Mapped[int] = mapped_column(ForeignKey("ledgers.id"))
    code: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
    max_balance: Mapped[int | None] = mapped_column(BigInteger)
    spend_limit_24h: Mapped[int | None] = mapped_column(BigInteger)
    credit_lifetime_s: Mapped[int | None] = mapped_column(BigInteger)


class ApiClient(Base):
    """A game server (or operator) that calls the API. Keys are stored as SHA-256."""

    __tablename__ = "api_clients"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    ledger_id: Mapped[int] = mapped_column(ForeignKey("ledgers.id"))
    name: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    # NULL for the bootstrap client, whose key lives in WALLET_ADMIN_KEY only.
    key_hash: Mapped[str | None] = mapped_column(Text, unique=True)
    # Kept in clear: the service must compute HMACs with it.
    webhook_secret: Mapped[str] = mapped_column(Text)
    callback_hosts: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)


class Account(Base):
    """A wallet (user, one asset) or one shard of a system account.

    System accounts have one row per partition (`shard`), written only by that
    partition's drain: no row is a lock that every command waits on.
    """

    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint(
            "ledger_id", "owner", "asset_id", "shard", name="accounts_ledger_owner_asset_shard_key"
        ),
        ForeignKeyConstraint(
            ["ledger_id", "asset_id"],
            ["assets.ledger_id", "assets.id"],
            name="accounts_ledger_asset_fkey",
        ),
        CheckConstraint("held >= 0", name="accounts_held_not_negative"),
        CheckConstraint(
            "owner LIKE '@%' OR (balance - held >= 0 AND shard = 0)",
            name="accounts_user_available_not_negative",
        ),
        CheckConstraint("owner NOT LIKE '@%' OR held = 0", name="accounts_system_never_held"),
        CheckConstraint(
            "lots IS NULL OR wallet_lots_total(lots) = balance - held",
            name="accounts_lots_cover_available",
        ),
        # The expiry sweeper's look-up (0008).
        Index(
            "accounts_lots_expiring",
            "lots_expire_at",
            postgresql_where=text("lots_expire_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    ledger_id: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(Text)
    asset_id: Mapped[int] = mapped_column(Integer)
    shard: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    # numeric: a system shard sums all it ever issued; users are capped at 2^53-1.
    balance: Mapped[int] = mapped_column(Numeric(38, 0), server_default="0")
    held: Mapped[int] = mapped_column(BigInteger, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
    # An asset with a credit lifetime: the free lots, soonest first, and the soonest
    # dated one's instant; an asset with a spend limit: the debits of the last 24 hours.
    lots: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    lots_expire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    recent_debits: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)


class Transaction(Base):
    """A command as accepted (pending) and, once applied, its outcome."""

    __tablename__ = "transactions"
    __table_args__ = (
        UniqueConstraint(
            "ledger_id", "client_id", "idempotency_key", name="transactions_ledger_client_key_key"
        ),
        UniqueConstraint("ledger_id", "id", name="transactions_ledger_id_key"),
        ForeignKeyConstraint(
            ["ledger_id", "asset_id"],
            ["assets.ledger_id", "assets.id"],
            name="transactions_ledger_asset_fkey",
        ),
        ForeignKeyConstraint(
            ["ledger_id", "reference_id"],
            ["transactions.ledger_id", "transactions.id"],
            name="transactions_ledger_reference_fkey",
        ),
        CheckConstraint(
            "type IN ('topup', 'bonus', 'spend', 'transfer', 'hold', 'capture', 'release', "
            "'reverse', 'expiry', 'freeze', 'unfreeze')",
            name="transactions_type_known",
        ),
        CheckConstraint(
            "asset_id IS NOT NULL OR type IN ('freeze', 'unfreeze')",
            name="transactions_asset_known",
        ),
        CheckConstraint(
            "lots IS NULL OR hold_status IS DISTINCT FROM 'active' "
            "OR wallet_lots_total(lots) = amount",
            name="transactions_hold_lots_cover_amount",
        ),
        CheckConstraint(
            "status IN ('pending', 'completed', 'rejected')", name="transactions_status_known"
        ),
        CheckConstraint(
            "hold_status IS NULL OR hold_status IN ('active', 'captured', 'released', 'expired')",
            name="transactions_hold_status_known",
        ),
        # The drain reads a partition's pending commands in acceptance order.
        # Each pending index is usable only by lookups on its own column (0004).
        Index(
            "transactions_pending_by_partition",
            "partition",
            "seq",
            postgresql_where=text("status = 'pending' AND partition IS NOT NULL"),
        ),
        Index(
            "transactions_active_holds",
            "partition",
            "expires_at",
            postgresql_where=text("hold_status = 'active'"),
        ),
        Index("transactions_by_user", "ledger_id", "user_id", "seq"),
        # Pending commands by wallet: does another partition hold an earlier one?
        Index(
            "transactions_pending_by_user",
            "ledger_id",
            "user_id",
            "seq",
            postgresql_where=text("status = 'pending' AND user_id IS NOT NULL"),
        ),
        Index(
            "transactions_pending_by_payee",
            "ledger_id",
            "to_user_id",
            "seq",
            postgresql_where=text("status = 'pending' AND to_user_id IS NOT NULL"),
        ),
        Index(
            "transactions_by_payee",
            "ledger_id",
            "to_user_id",
            "seq",
            postgresql_where=text("to_user_id IS NOT NULL"),
        ),
        # The admin search by status: rejections are few, so only they are indexed.
        # A ledger's transactions, and its rejections, newest first (0006).
        Index("transactions_by_ledger", "ledger_id", "seq"),
        Index(
            "transactions_rejected",
            "ledger_id",
            "seq",
            postgresql_where=text("status = 'rejected'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    # Acceptance order. Commands of one partition are applied in this order.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    ledger_id: Mapped[int] = mapped_column(Integer)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_clients.id"))
    idempotency_key: Mapped[str] = mapped_column(Text)
    # SHA-256 of the canonical request: a replay with another body is refused.
    fingerprint: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    partition: Mapped[int] = mapped_column(SmallInteger)
    user_id: Mapped[str] = mapped_column(Text)
    to_user_id: Mapped[str | None] = mapped_column(Text)
    # NULL for a freeze or unfreeze only: they concern a player in every asset.
    asset_id: Mapped[int | None] = mapped_column(Integer)
    amount: Mapped[int | None] = mapped_column(BigInteger)
    # The hold a capture or release acts on, or the transaction a reversal undoes.
    reference_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    reason: Mapped[str | None] = mapped_column(Text)
    item_id: Mapped[str | None] = mapped_column(Text)
    callback_url: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    hold_status: Mapped[str | None] = mapped_column(Text)
    reversed_by: Mapped[uuid.UUID | None] = mapped_column(UUID)
    error_code: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    balance_after: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The X-Request-Id of the request that submitted it: logged by the drain as well.
    request_id: Mapped[str | None] = mapped_column(Text)
    # A hold of an asset with a credit lifetime: the lots it reserved.
    lots: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)


class FrozenPlayer(Base):
    """A frozen player of a ledger (0008): their own debits are refused until an unfreeze."""

    __tablename__ = "frozen_players"
    __table_args__ = (
        ForeignKeyConstraint(
            ["ledger_id", "freeze_id"],
            ["transactions.ledger_id", "transactions.id"],
            name="frozen_players_freeze_fkey",
        ),
    )

    ledger_id: Mapped[int] = mapped_column(ForeignKey("ledgers.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(Text, primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    freeze_id: Mapped[uuid.UUID] = mapped_column(UUID)


class LedgerEntry(Base):
    """One posting. Append-only: the database refuses UPDATE, DELETE and TRUNCATE."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="ledger_entries_amount_not_zero"),
        # A transaction posts once to an account: a second application cannot be written.
        UniqueConstraint(
            "transaction_id", "account_id", name="ledger_entries_transaction_account_key"
        ),
        Index("ledger_entries_by_account", "account_id", "id"),
        # Statements and balances in time (0009): created_at is the entry's instant.
        Index(
            "ledger_entries_by_account_time",
            "account_id",
            "created_at",
            "id",
            postgresql_include=["amount"],
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    transaction_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("transactions.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    # Signed: a credit is positive, a debit negative.
    amount: Mapped[int] = mapped_column(BigInteger)
    # The instant the transaction was applied: its completed_at (db.batch.write).
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)


class CallbackDelivery(Base):
    """The outbox: a callback owed for a final transaction, delivered at least once."""

    __tablename__ = "callback_deliveries"
    __table_args__ = (
        CheckConstraint(
            "event IN ('transaction.completed', 'transaction.rejected')",
            name="callback_deliveries_event_known",
        ),
        CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')", name="callback_deliveries_status_known"
        ),
        Index(
            "callback_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("callback_deliveries_by_transaction", "transaction_id"),
        # Failed or pending deliveries of a ledger, in keyset pages (0005).
        Index("callback_deliveries_by_ledger", "ledger_id", "status", "id"),
    )

    # The event id: the same for every attempt, so receivers can dedupe.
    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    transaction_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("transactions.id"))
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_clients.id"))
    ledger_id: Mapped[int] = mapped_column(ForeignKey("ledgers.id"))
    url: Mapped[str] = mapped_column(Text)
    event: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CallbackAttempt(Base):
    __tablename__ = "callback_attempts"
    __table_args__ = (Index("callback_attempts_by_delivery", "delivery_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("callback_deliveries.id"))
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
