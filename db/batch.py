"""The drain's reads and writes: a batch of one partition's commands in one transaction.

Every write is one statement for the whole batch (arrays unnested on the server), so a
batch of 500 commands costs about as many round trips as a batch of one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Row, text

import resources
from db.engine import get_engine
from db.lease import DRAIN_LOCK_NAMESPACE
from ledger import TransactionStatus


@dataclass(frozen=True)
class AccountRow:
    id: int
    balance: int
    held: int
    # The controls, read in the locking statement: the asset's rules (None: no rule),
    # the wallet's stored lots and recent debits (JSON, None when not kept), and the
    # player's freeze (None: not frozen).
    max_balance: int | None = None
    spend_limit_24h: int | None = None
    credit_lifetime_s: int | None = None
    lots: list[dict[str, Any]] | None = None
    recent_debits: list[dict[str, Any]] | None = None
    frozen_reason: str | None = None
    frozen_since: datetime | None = None


class Decided(NamedTuple):
    """A command's final status as the batch writes it."""

    id: uuid.UUID
    status: TransactionStatus
    code: str | None = None  # a rejection's code and message
    message: str | None = None
    balance_after: int | None = None
    # The amount to show when it differs from the accepted one (ledger.scheduling).
    amount: int | None = None


@dataclass
class BatchWrite:
    """Everything one batch changes, gathered in memory and written at once."""

    # (transaction id, account id, signed amount)
    entries: list[tuple[uuid.UUID, int, int]] = field(default_factory=list)
    # (account id, balance, held) of user wallets, absolute: their rows are locked.
    wallets: list[tuple[int, int, int]] = field(default_factory=list)
    # system shard account id -> signed delta; the shard belongs to this partition only.
    system_deltas: dict[int, int] = field(default_factory=dict)
    outcomes: list[Decided] = field(default_factory=list)
    hold_statuses: dict[uuid.UUID, str] = field(default_factory=dict)
    reversals: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    # Wallets of assets with rules, instead of in `wallets`: (account id, balance,
    # held, lots JSON, soonest dated lot, recent debits JSON); None where not kept.
    controlled: list[tuple[int, int, int, str | None, datetime | None, str | None]] = field(
        default_factory=list
    )
    # Holds just placed on an asset with a credit lifetime: their lots (JSON).
    hold_lots: dict[uuid.UUID, str] = field(default_factory=dict)
    # Freezes the batch changed: (ledger id, user id, reason, since, freeze id) to
    # store, (ledger id, user id) to delete.
    freezes: list[tuple[int, str, str, datetime, uuid.UUID]] = field(default_factory=list)
    unfreezes: list[tuple[int, str]] = field(default_factory=list)


def pending_commands(
    conn: Connection, partition: int, limit: int, begin: str = ""
) -> Sequence[Row[Any]]:
    """Take the partition's lease (db.lease.DrainLease), then read its oldest pending commands
    in acceptance order: one round trip (two statements, after `begin`, the SQL that
    opens a pipelined transaction (db.uow); the read's snapshot is taken after the lease
    is granted, so it sees everything the previous holder committed).

    Each row also carries `foreign_seq`: the lowest seq of a pending command of
    *another* partition touching one of its wallets (a transfer to it, or the payee's
    own command), which it must wait for. A wallet's own commands always live in its
    own partition (a repartition moves them together, db.partitioning), so three
    index probes on pending rows cover every case.
    """
    return conn.execute(
        text(begin + "SELECT pg_advisory_xact_lock(:ns, :p); " + PENDING),
        {"ns": DRAIN_LOCK_NAMESPACE, "p": partition, "n": limit},
    ).all()


PENDING = (
    "SELECT t.id, t.seq, t.ledger_id, t.client_id, t.type, t.user_id, t.to_user_id, t.asset_id, "
    "t.amount, t.reference_id, t.expires_at, t.reason, t.item_id, t.callback_url, "
    "t.request_id, "
    # `(partition <> :p) IS TRUE`, not `partition <> :p`: IS TRUE is not strict, so it
    # does not imply `partition IS NOT NULL` and cannot let the planner use the
    # partition index for these lookups (0004). ORDER BY seq LIMIT 1 on the lookup's
    # own index stops at the first foreign row: a busy payee costs one index step, not
    # its whole backlog.
    "t.created_at, LEAST("
    # A wallet is (ledger, user): the same user id in another ledger is someone else.
    "  (SELECT f.seq FROM transactions f WHERE f.ledger_id = t.ledger_id "
    "   AND f.to_user_id = t.user_id "
    "   AND f.status = 'pending' AND (f.partition <> :p) IS TRUE ORDER BY f.seq LIMIT 1), "
    "  (SELECT f.seq FROM transactions f WHERE f.ledger_id = t.ledger_id "
    "   AND f.user_id = t.to_user_id "
    "   AND f.status = 'pending' AND (f.partition <> :p) IS TRUE ORDER BY f.seq LIMIT 1), "
    "  (SELECT f.seq FROM transactions f WHERE f.ledger_id = t.ledger_id "
    "   AND f.to_user_id = t.to_user_id "
    "   AND f.status = 'pending' AND (f.partition <> :p) IS TRUE ORDER BY f.seq LIMIT 1)"
    ") AS foreign_seq "
    "FROM transactions t WHERE t.partition = :p AND t.status = 'pending' "
    # NO KEY UPDATE: an intake inserting a capture of this hold takes KEY SHARE
    # on it for the foreign key, and must not wait for the drain.
    "ORDER BY t.seq LIMIT :n FOR NO KEY UPDATE OF t"
)


def due_holds(
    conn: Connection, partition: int, limit: int, grace_seconds: float = 0.0
) -> Sequence[Row[Any]]:
    """Active holds of the partition whose time ran out at least `grace_seconds` ago."""
    return conn.execute(
        text(
            "SELECT id, ledger_id, user_id, asset_id, amount, expires_at, hold_status, lots "
            "FROM transactions "
            "WHERE hold_status = 'active' AND partition = :p "
            "AND expires_at <= now() - make_interval(secs => :grace) "
            "ORDER BY expires_at LIMIT :n"
        ),
        {"p": partition, "n": limit, "grace": grace_seconds},
    ).all()


def foreign_pending(
    conn: Connection, partition: int, wallets: Iterable[tuple[int, str]]
) -> Sequence[Row[Any]]:
    """Pending commands of *other* partitions that touch these wallets, (ledger id,
    user id) pairs, as (partition, wallet, first seq): transfers to them, and a payee's
    own commands."""
    wallets = sorted(set(wallets))
    if not wallets:
        return []
    rows = conn.execute(text(FOREIGN_PENDING), foreign_pending_params(wallets)).all()
    return others(partition, rows)


# The statement of foreign_pending, for a caller that sends it with others (the drain
# sends it right after its batch's COMMIT, in the same round trip: db.uow).
FOREIGN_PENDING = (
    # No condition on partition here: it would let the planner use the
    # partition index for these lookups (0004); own rows are dropped by `others`.
    "SELECT partition, wallet, min(seq) AS seq FROM ("
    "  SELECT t.partition, t.to_user_id AS wallet, t.seq FROM transactions t "
    "  JOIN unnest(CAST(:fp_l AS int[]), CAST(:fp_w AS text[])) AS w(ledger_id, usr) "
    "    ON t.ledger_id = w.ledger_id AND t.to_user_id = w.usr "
    "  WHERE t.status = 'pending' "
    "  UNION ALL "
    "  SELECT t.partition, t.user_id AS wallet, t.seq FROM transactions t "
    "  JOIN unnest(CAST(:fp_l AS int[]), CAST(:fp_w AS text[])) AS w(ledger_id, usr) "
    "    ON t.ledger_id = w.ledger_id AND t.user_id = w.usr "
    "  WHERE t.status = 'pending'"
    ") found GROUP BY partition, wallet"
)


def foreign_pending_params(wallets: Iterable[tuple[int, str]]) -> dict[str, list[Any]]:
    wallets = sorted(set(wallets))
    return {"fp_l": [w[0] for w in wallets], "fp_w": [w[1] for w in wallets]}


def others(partition: int, rows: Sequence[Row[Any]]) -> list[Row[Any]]:
    """The rows of FOREIGN_PENDING that are another partition's."""
    return [row for row in rows if row.partition != partition]


def referenced(
    conn: Connection, ids: Iterable[uuid.UUID], ledger_ids: Iterable[int] | None = None
) -> Sequence[Row[Any]]:
    """Holds that captures and releases act on, and transactions that reversals undo.

    With `ledger_ids` (one per id, as the intake asks), each id is looked for in that
    ledger only: another ledger's transaction is not found.
    """
    ids = list(ids)
    ledgers = [None] * len(ids) if ledger_ids is None else list(ledger_ids)
    return conn.execute(
        text(
            "SELECT t.id, t.ledger_id, t.type, t.status, t.user_id, t.to_user_id, t.asset_id, "
            "t.amount, t.expires_at, t.hold_status, t.reversed_by, t.lots FROM transactions t "
            "JOIN unnest(CAST(:ids AS uuid[]), CAST(:ledgers AS int[])) AS w(id, ledger_id) "
            "ON t.id = w.id AND (w.ledger_id IS NULL OR t.ledger_id = w.ledger_id)"
        ),
        {"ids": ids, "ledgers": ledgers},
    ).all()


def entries_of(conn: Connection, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[Row[Any]]]:
    """The postings of earlier transactions: (owner, asset_id, amount) in entry order."""
    found: dict[uuid.UUID, list[Row[Any]]] = {}
    for row in conn.execute(
        text(
            "SELECT e.transaction_id, a.owner, a.asset_id, e.amount FROM ledger_entries e "
            "JOIN accounts a ON a.id = e.account_id WHERE e.transaction_id = ANY(:ids) "
            "ORDER BY e.id"
        ),
        {"ids": list(ids)},
    ):
        found.setdefault(row.transaction_id, []).append(row)
    return found


def create_missing_wallets(wallets: Iterable[tuple[str, int]]) -> None:
    """Create empty user wallets, committed at once on a connection of their own.

    Kept out of the drain's transaction on purpose: the drain then only ever waits for
    row locks taken in ascending id order, and an insert racing another drain's insert
    of the same wallet waits for a transaction that holds nothing else. No cycle can
    form, so no deadlock. Wallets this process has seen exist are skipped (wallets are
    never deleted).
    """
    wallets = sorted(set(wallets) - _cache().wallets)
    if not wallets:
        return
    with get_engine().begin() as conn:
        conn.execute(
            text(
                # The wallet's ledger is its asset's: the database says which.
                "INSERT INTO accounts (ledger_id, owner, asset_id) "
                "SELECT a.ledger_id, w.owner, w.asset_id "
                "FROM unnest(CAST(:owners AS text[]), CAST(:assets AS int[])) "
                "AS w(owner, asset_id) "
                "JOIN assets a ON a.id = w.asset_id "
                "ON CONFLICT (ledger_id, owner, asset_id, shard) DO NOTHING"
            ),
            {"owners": [w[0] for w in wallets], "assets": [w[1] for w in wallets]},
        )


LOCK_WALLETS = (
    "SELECT a.id, a.owner, a.asset_id, a.balance, a.held, a.lots, a.recent_debits, "
    "s.max_balance, s.spend_limit_24h, s.credit_lifetime_s, "
    "f.reason AS frozen_reason, f.since AS frozen_since "
    "FROM unnest(CAST(:owners AS text[]), CAST(:assets AS int[])) AS w(owner, asset_id) "
    # The asset names the wallet's ledger: with it, each wallet is one probe of the
    # accounts' unique key (ledger_id, owner, asset_id, shard). Without it the key's
    # leading column is unknown and every drain batch scanned every account.
    "JOIN assets s ON s.id = w.asset_id "
    "JOIN accounts a ON a.ledger_id = s.ledger_id AND a.owner = w.owner "
    "AND a.asset_id = w.asset_id AND a.shard = 0 "
    "LEFT JOIN frozen_players f ON f.ledger_id = a.ledger_id AND f.user_id = a.owner "
    "ORDER BY a.id FOR NO KEY UPDATE OF a"
)


def lock_wallets(
    conn: Connection, wallets: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], AccountRow]:
    """Lock user wallets in ascending id order: the one lock order every drain follows.

    The same statement reads what the controls need: the asset's rules (in this
    transaction, so a PATCH committed before it is in force), the wallet's lots and
    recent debits, and whether its player is frozen. For an asset without rules these
    are NULLs on a row already read: no extra round trip.
    """
    wallets = sorted(set(wallets))
    rows = conn.execute(
        text(LOCK_WALLETS),
        {"owners": [w[0] for w in wallets], "assets": [w[1] for w in wallets]},
    ).all()
    found = {
        (r.owner, r.asset_id): AccountRow(
            r.id,
            r.balance,
            r.held,
            r.max_balance,
            r.spend_limit_24h,
            r.credit_lifetime_s,
            r.lots,
            r.recent_debits,
            r.frozen_reason,
            r.frozen_since,
        )
        for r in rows
    }
    known = _cache().wallets
    if len(known) > 200_000:  # bounded: a miss costs one insert that does nothing
        known.clear()
    known.update(found)
    return found


def frozen_players(
    conn: Connection, players: Iterable[tuple[int, str]]
) -> dict[tuple[int, str], tuple[str, datetime]]:
    """The freezes of these (ledger id, user id) players: what a batch's freeze and
    unfreeze commands decide against (their players may have no wallet to lock)."""
    players = sorted(set(players))
    rows = conn.execute(
        text(
            "SELECT f.ledger_id, f.user_id, f.reason, f.since FROM frozen_players f "
            "JOIN unnest(CAST(:l AS int[]), CAST(:u AS text[])) AS p(ledger_id, user_id) "
            "ON f.ledger_id = p.ledger_id AND f.user_id = p.user_id"
        ),
        {"l": [p[0] for p in players], "u": [p[1] for p in players]},
    ).all()
    return {(r.ledger_id, r.user_id): (r.reason, r.since) for r in rows}


def system_shards(
    conn: Connection, partition: int, owners: Sequence[str], asset_ids: Iterable[int]
) -> dict[tuple[str, int], int]:
    """The ids of this partition's shard of each system account, created when missing.

    Shard rows are never deleted, so their ids are kept for the life of the process.
    """
    shards = _cache().shards
    keys = sorted({(owner, asset_id) for owner in owners for asset_id in asset_ids})
    missing = [k for k in keys if (partition, *k) not in shards]
    if missing:
        params = {
            "owners": [k[0] for k in missing],
            "assets": [k[1] for k in missing],
            "shard": partition,
        }
        conn.execute(
            text(
                "INSERT INTO accounts (ledger_id, owner, asset_id, shard) "
                "SELECT a.ledger_id, w.owner, w.asset_id, :shard "
                "FROM unnest(CAST(:owners AS text[]), CAST(:assets AS int[])) "
                "AS w(owner, asset_id) JOIN assets a ON a.id = w.asset_id "
                "ON CONFLICT (ledger_id, owner, asset_id, shard) DO NOTHING"
            ),
            params,
        )
        for row in conn.execute(
            text(
                "SELECT a.id, a.owner, a.asset_id "
                "FROM unnest(CAST(:owners AS text[]), CAST(:assets AS int[])) "
                "AS w(owner, asset_id) JOIN assets s ON s.id = w.asset_id "
                "JOIN accounts a ON a.ledger_id = s.ledger_id AND a.owner = w.owner "
                "AND a.asset_id = w.asset_id AND a.shard = :shard"
            ),
            params,
        ):
            shards[(partition, row.owner, row.asset_id)] = row.id
    return {k: shards[(partition, *k)] for k in keys}


@dataclass
class _ProcessCache:
    """Facts about rows that are never deleted, kept per process and per database."""

    engine: object = None
    shards: dict[tuple[int, str, int], int] = field(default_factory=dict)
    wallets: set[tuple[str, int]] = field(default_factory=set)


_KNOWN_ROWS = resources.Resource("db.batch.known_rows", _ProcessCache)


def _cache() -> _ProcessCache:
    cache = _KNOWN_ROWS.get()
    if cache.engine is not get_engine():  # another database: nothing of it is known
        cache.engine = get_engine()
        cache.shards.clear()
        cache.wallets.clear()
    return cache


# The instant of a batch, kept for the rest of its transaction: after every row lock
# the batch takes (the write is its last round trip), and after the last instant of
# every account it writes entries to, so that each account's instants rise strictly in
# its ledger order (docs/controls.md, "Statements and balances in time"). The batch's
# n-th command is applied at this instant plus n microseconds.
BATCH_INSTANT = (
    "SELECT set_config('wallet.batch_instant', CAST(greatest(clock_timestamp(), "
    "(SELECT max(last.at) + interval '1 microsecond' "
    " FROM unnest(CAST(:i_acc AS bigint[])) AS a(id) CROSS JOIN LATERAL "
    " (SELECT e.created_at AS at FROM ledger_entries e WHERE e.account_id = a.id "
    "  ORDER BY e.created_at DESC LIMIT 1) last)) AS text), true)"
)
INSTANT = "CAST(current_setting('wallet.batch_instant') AS timestamptz)"


def _arrays(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    """Rows as one array parameter per column, for `unnest(CAST(:name AS type[]), ...)`:
    `names[i]` is the i-th column's parameter."""
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


def write(conn: Connection, batch: BatchWrite) -> None:
    """Write a decided batch: entries, balances, statuses, hold states, reversal links.

    Every statement the batch needs, sent as one round trip.
    """
    statement = write_statement(batch)
    if statement is not None:
        conn.execute(text(statement[0]), statement[1])


def write_statement(batch: BatchWrite) -> tuple[str, dict[str, Any]] | None:
    """The SQL and parameters of `write`, for a caller that sends them with its COMMIT
    (db.uow); None when the batch changes nothing."""
    statements: list[str] = []
    params: dict[str, Any] = {}
    # The n-th outcome's instant (completed_at, and its entries' created_at): the
    # batch's instant plus n microseconds (see BATCH_INSTANT).
    order = {outcome.id: n for n, outcome in enumerate(batch.outcomes)}
    if batch.outcomes:
        statements.append(BATCH_INSTANT)
        params["i_acc"] = sorted({e[1] for e in batch.entries})
    if batch.entries:
        statements.append(
            "INSERT INTO ledger_entries (transaction_id, account_id, amount, created_at) "
            f"SELECT e.tx, e.acc, e.amt, {INSTANT} + e.n * interval '1 microsecond' "
            "FROM unnest(CAST(:e_tx AS uuid[]), CAST(:e_acc AS bigint[]), "
            "CAST(:e_amt AS bigint[]), CAST(:e_n AS int[])) AS e(tx, acc, amt, n)"
        )
        params.update(_arrays(("e_tx", "e_acc", "e_amt"), batch.entries))
        params["e_n"] = [order[e[0]] for e in batch.entries]
    if batch.wallets:
        statements.append(
            # An asset without rules keeps no lots or debits: whatever an earlier rule
            # left (a lifetime removed while this drain's rules were read) goes, so the
            # lots can never disagree with the balance (accounts_lots_cover_available).
            "UPDATE accounts a SET balance = w.balance, held = w.held, lots = NULL, "
            "lots_expire_at = NULL, recent_debits = NULL, updated_at = now() "
            "FROM unnest(CAST(:w_ids AS bigint[]), CAST(:w_bal AS bigint[]), "
            "CAST(:w_held AS bigint[])) AS w(id, balance, held) WHERE a.id = w.id"
        )
        params.update(_arrays(("w_ids", "w_bal", "w_held"), batch.wallets))
    deltas = [(k, v) for k, v in sorted(batch.system_deltas.items()) if v != 0]
    if deltas:
        statements.append(
            "UPDATE accounts a SET balance = a.balance + d.delta, updated_at = now() "
            "FROM unnest(CAST(:s_ids AS bigint[]), CAST(:s_deltas AS bigint[])) "
            "AS d(id, delta) WHERE a.id = d.id"
        )
        params.update(_arrays(("s_ids", "s_deltas"), deltas))
    if batch.outcomes:
        statements.append(
            "UPDATE transactions t SET status = o.status, error_code = o.code, "
            "error_message = o.message, balance_after = o.balance_after, "
            "amount = coalesce(o.amount, t.amount), "
            f"completed_at = {INSTANT} + (o.n - 1) * interval '1 microsecond' "
            "FROM unnest(CAST(:o_ids AS uuid[]), CAST(:o_status AS text[]), "
            "CAST(:o_code AS text[]), CAST(:o_message AS text[]), CAST(:o_bal AS bigint[]), "
            "CAST(:o_amount AS bigint[])) WITH ORDINALITY "
            "AS o(id, status, code, message, balance_after, amount, n) WHERE t.id = o.id"
        )
        params.update(
            _arrays(
                ("o_ids", "o_status", "o_code", "o_message", "o_bal", "o_amount"), batch.outcomes
            )
        )
    if batch.hold_statuses:
        statements.append(
            "UPDATE transactions t SET hold_status = h.status "
            "FROM unnest(CAST(:h_ids AS uuid[]), CAST(:h_status AS text[])) AS h(id, status) "
            "WHERE t.id = h.id"
        )
        params.update(_arrays(("h_ids", "h_status"), list(batch.hold_statuses.items())))
    if batch.reversals:
        statements.append(
            "UPDATE transactions t SET reversed_by = r.reversal "
            "FROM unnest(CAST(:r_ids AS uuid[]), CAST(:r_rev AS uuid[])) AS r(id, reversal) "
            "WHERE t.id = r.id"
        )
        params.update(_arrays(("r_ids", "r_rev"), list(batch.reversals.items())))
    _controls(batch, statements, params)
    return ("; ".join(statements), params) if statements else None


def _controls(batch: BatchWrite, statements: list[str], params: dict[str, Any]) -> None:
    """The statements of what the controls changed; nothing for a rule-free batch."""
    if batch.controlled:
        statements.append(
            "UPDATE accounts a SET balance = w.balance, held = w.held, "
            "lots = CAST(w.lots AS jsonb), lots_expire_at = w.expire_at, "
            "recent_debits = CAST(w.debits AS jsonb), updated_at = now() "
            "FROM unnest(CAST(:c_ids AS bigint[]), CAST(:c_bal AS bigint[]), "
            "CAST(:c_held AS bigint[]), CAST(:c_lots AS text[]), "
            "CAST(:c_expire AS timestamptz[]), CAST(:c_debits AS text[])) "
            "AS w(id, balance, held, lots, expire_at, debits) WHERE a.id = w.id"
        )
        params.update(
            _arrays(
                ("c_ids", "c_bal", "c_held", "c_lots", "c_expire", "c_debits"), batch.controlled
            )
        )
    if batch.hold_lots:
        statements.append(
            "UPDATE transactions t SET lots = CAST(h.lots AS jsonb) "
            "FROM unnest(CAST(:hl_ids AS uuid[]), CAST(:hl_lots AS text[])) AS h(id, lots) "
            "WHERE t.id = h.id"
        )
        params.update(_arrays(("hl_ids", "hl_lots"), list(batch.hold_lots.items())))
    if batch.freezes:
        statements.append(
            "INSERT INTO frozen_players (ledger_id, user_id, reason, since, freeze_id) "
            "SELECT * FROM unnest(CAST(:f_l AS int[]), CAST(:f_u AS text[]), "
            "CAST(:f_r AS text[]), CAST(:f_s AS timestamptz[]), CAST(:f_id AS uuid[])) "
            "ON CONFLICT (ledger_id, user_id) DO UPDATE SET reason = excluded.reason, "
            "since = excluded.since, freeze_id = excluded.freeze_id"
        )
        params.update(_arrays(("f_l", "f_u", "f_r", "f_s", "f_id"), batch.freezes))
    if batch.unfreezes:
        statements.append(
            "DELETE FROM frozen_players f USING unnest(CAST(:uf_l AS int[]), "
            "CAST(:uf_u AS text[])) AS p(ledger_id, user_id) "
            "WHERE f.ledger_id = p.ledger_id AND f.user_id = p.user_id"
        )
        params.update(_arrays(("uf_l", "uf_u"), batch.unfreezes))


def reject_alone(conn: Connection, tx_id: uuid.UUID, code: str, message: str) -> Row[Any] | None:
    """Finish one pending command as rejected, touching nothing else (a poison command)."""
    return conn.execute(
        text(
            "UPDATE transactions SET status = 'rejected', error_code = :code, "
            "error_message = :message, completed_at = now() "
            "WHERE id = :id AND status = 'pending' "
            "RETURNING id, ledger_id, type, client_id, callback_url, created_at, user_id, "
            "to_user_id"
        ),
        {"id": tx_id, "code": code, "message": message},
    ).first()


def partitions_to_sweep(conn: Connection, pending_for_seconds: float, partitions: int) -> list[int]:
    """Partitions with a command pending for too long, or a hold whose time ran out.

    The partitions are those of the count the database holds (`partitions` only until
    one is stored), read in this query: a repartition is followed at the next sweep.

    Each partition's oldest pending command is one index step, so a sweep costs the
    same with ten pending commands or a hundred thousand.
    """
    rows = conn.execute(
        text(
            "SELECT p.partition FROM generate_series(0, coalesce("
            "  (SELECT partitions FROM wallet_partitioning), :n) - 1) AS p(partition) "
            "WHERE (SELECT t.created_at FROM transactions t "
            "       WHERE t.partition = p.partition AND t.status = 'pending' "
            "       ORDER BY t.seq LIMIT 1) < now() - make_interval(secs => :s) "
            "UNION SELECT DISTINCT partition FROM transactions "
            "WHERE hold_status = 'active' AND expires_at <= now()"
        ),
        {"s": pending_for_seconds, "n": partitions},
    ).all()
    return sorted(r.partition for r in rows)
