"""What one drain batch costs in round trips to PostgreSQL (worker.drain.apply_batch).

Under load a partition's latency is its batches' round trips, each a wait for a core on
a busy machine. A batch of plain commands is three: BEGIN with the lease and the pending
read, the wallets' lock, and the write with its COMMIT and the post-commit wake-up query
(db.uow, pipelined). Counted here at the driver: every statement the drain's connections
execute, and the BEGIN and COMMIT psycopg2 sends of its own on a transactional
connection (the autocommit pool's connections send none).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2.extensions
import pytest
from sqlalchemy import event, text

from api import intake
from db import batch as store
from db.clients import create_client
from db.engine import ENGINES, connect
from db.lease import DRAIN_LOCK_NAMESPACE
from db.uow import UnitOfWork
from ledger import DEFAULT_LEDGER_ID, CommandType, TransactionStatus, partition_of
from tests.integration.helpers import (
    balance,
    statuses,
    submit,
    users_in,
    users_in_distinct_partitions,
)
from tests.support import unique
from worker import drain as drain_module
from worker.drain import apply_batch


@contextmanager
def round_trips() -> Iterator[list[str]]:
    """The round trips of the block, as the SQL (or BEGIN / COMMIT) each one sent."""
    sent: list[str] = []
    engines = ENGINES.get()

    def executed(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    def began(conn):
        sent.append("BEGIN")  # psycopg2 sends it before the transaction's first statement

    def committed(conn):
        sent.append("COMMIT")

    listeners = [
        (engines.transactional, "before_cursor_execute", executed),
        (engines.autocommit, "before_cursor_execute", executed),
        (engines.transactional, "begin", began),
        (engines.transactional, "commit", committed),
    ]
    for target, name, fn in listeners:
        event.listen(target, name, fn)
    try:
        yield sent
    finally:
        for target, name, fn in listeners:
            event.remove(target, name, fn)


def test_a_batch_of_plain_commands_is_three_round_trips(rings):
    partition = 5
    players = users_in(partition, 3)
    for player in players:
        submit(CommandType.TOPUP, user_id=player, asset="GOLD_COINS", amount=50)
    apply_batch(partition, 500)  # the wallets and shards are known to this process now
    ids = [
        submit(CommandType.SPEND, user_id=player, asset="GOLD_COINS", amount=20)["id"]
        for player in players
    ]
    ids.append(submit(CommandType.TOPUP, user_id=players[0], asset="GOLD_COINS", amount=5)["id"])
    with round_trips() as sent:
        result = apply_batch(partition, 500)
    assert len(result.finished) == 4
    assert statuses(ids) == {(TransactionStatus.COMPLETED, None): 4}
    assert [balance(p) for p in players] == [35, 30, 30]
    assert len(sent) == 3, sent
    first, lock, last = sent
    assert first.startswith("BEGIN; SELECT pg_advisory_xact_lock")
    assert "FOR NO KEY UPDATE OF a" in lock
    assert "INSERT INTO ledger_entries" in last
    # The wake-up query runs after the COMMIT, in the same message.
    assert last.index("; COMMIT; ") < last.index("SELECT partition, wallet")


def test_an_idle_partition_costs_two_round_trips_and_keeps_no_lock(rings):
    partition = 6
    apply_batch(partition, 500)
    with round_trips() as sent:
        result = apply_batch(partition, 500)
    assert result.finished == []
    assert [s.split(";")[0] for s in sent] == ["BEGIN", "ROLLBACK"]
    with connect() as conn:  # the partition's lease went with the transaction
        assert conn.execute(
            text("SELECT pg_try_advisory_xact_lock(:ns, :p)"),
            {"ns": DRAIN_LOCK_NAMESPACE, "p": partition},
        ).scalar_one()


def test_a_transfer_still_wakes_the_partition_waiting_on_it(rings):
    """The wake-up query, sent after the COMMIT in the batch's last message, still finds
    the payee's partition, whose own command waited on the transfer."""
    payer, payee = users_in_distinct_partitions(2)
    submit(CommandType.TOPUP, user_id=payer, asset="GOLD_COINS", amount=10)
    submit(CommandType.TOPUP, user_id=payee, asset="GOLD_COINS", amount=1)
    apply_batch(partition_of(payer, 8), 500)
    apply_batch(partition_of(payee, 8), 500)  # both wallets exist: no wallet to create
    submit(CommandType.TRANSFER, from_user_id=payer, to_user_id=payee, asset="GOLD_COINS", amount=4)
    spend = submit(CommandType.SPEND, user_id=payee, asset="GOLD_COINS", amount=3)
    assert apply_batch(partition_of(payee, 8), 500).finished == []  # it waits
    with round_trips() as sent:
        paid = apply_batch(partition_of(payer, 8), 500)
    assert paid.ring == {partition_of(payee, 8)}
    assert len(sent) == 3, sent
    assert [str(f.id) for f in apply_batch(partition_of(payee, 8), 500).finished] == [spend["id"]]
    assert balance(payee) == 2


def _lease_is_free(partition: int) -> bool:
    with connect() as conn:
        return bool(
            conn.execute(
                text("SELECT pg_try_advisory_xact_lock(:ns, :p)"),
                {"ns": DRAIN_LOCK_NAMESPACE, "p": partition},
            ).scalar_one()
        )


def test_a_wake_up_query_failing_after_the_commit_keeps_the_batch_and_asks_again(
    rings, monkeypatch
):
    """The batch is committed even though the message's last statement failed: its
    result (what to announce, count, call back) is kept, and the wake-up query is asked
    again on its own (worker.drain.waiting_partitions: which rings everyone if even that
    fails)."""
    partition = 5
    player = users_in(partition, 1)[0]
    command = submit(CommandType.TOPUP, user_id=player, asset="GOLD_COINS", amount=7)
    asked: list[set] = []
    monkeypatch.setattr(store, "FOREIGN_PENDING", "SELECT 1/0")
    monkeypatch.setattr(
        drain_module, "waiting_partitions", lambda p, wallets: asked.append(set(wallets)) or {99}
    )
    result = apply_batch(partition, 500)
    assert [str(f.id) for f in result.finished] == [command["id"]]
    assert result.ring == {99} and asked == [{(DEFAULT_LEDGER_ID, player)}]
    assert balance(player) == 7 and _lease_is_free(partition)


def test_a_write_failing_with_its_commit_fails_the_batch_and_leaves_nothing_open(
    rings, monkeypatch
):
    partition = 5
    player = users_in(partition, 1)[0]
    command = submit(CommandType.TOPUP, user_id=player, asset="GOLD_COINS", amount=7)
    real = store.write_statement

    def failing(batch):
        sql, params = real(batch)
        return sql + "; SELECT 1/0", params

    monkeypatch.setattr(store, "write_statement", failing)
    with pytest.raises(drain_module.BatchFailed):
        apply_batch(partition, 500)
    assert statuses([command["id"]]) == {(TransactionStatus.PENDING, None): 1}
    assert _lease_is_free(partition)
    with UnitOfWork(pipelined=True) as uow:  # the pool's connection is out of it too
        dbapi = uow.connection.connection.dbapi_connection
        assert dbapi.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    monkeypatch.undo()
    assert [str(f.id) for f in apply_batch(partition, 500).finished] == [command["id"]]


def test_a_batch_that_only_waits_rolls_back_and_asks_who_waits_on_its_own(rings):
    payer, payee = users_in_distinct_partitions(2)
    submit(CommandType.TOPUP, user_id=payer, asset="GOLD_COINS", amount=10)
    submit(CommandType.TOPUP, user_id=payee, asset="GOLD_COINS", amount=1)
    apply_batch(partition_of(payer, 8), 500)
    apply_batch(partition_of(payee, 8), 500)
    submit(CommandType.TRANSFER, from_user_id=payer, to_user_id=payee, asset="GOLD_COINS", amount=4)
    submit(CommandType.SPEND, user_id=payee, asset="GOLD_COINS", amount=3)
    with round_trips() as sent:
        waiting = apply_batch(partition_of(payee, 8), 500)
    assert waiting.finished == [] and partition_of(payer, 8) in waiting.ring
    assert sent[0].startswith("BEGIN; ") and sent[1] == "ROLLBACK"
    assert "SELECT partition, wallet" in sent[2] and "COMMIT" not in sent[2]
    assert _lease_is_free(partition_of(payee, 8))


def test_a_batch_with_callbacks_writes_before_its_outbox_rows(rings):
    """An outbox row's payload is the transaction as it became final: the write is sent
    before the outbox is filled, and the COMMIT goes on its own (with the wake-up)."""
    partition = 5
    player = users_in(partition, 1)[0]
    submit(CommandType.TOPUP, user_id=player, asset="GOLD_COINS", amount=3)
    apply_batch(partition, 500)
    with connect() as conn:
        game = create_client(
            conn, DEFAULT_LEDGER_ID, unique("game"), ["submit"], ["game.example"]
        ).client
    fields = {
        "user_id": player,
        "asset": "GOLD_COINS",
        "amount": 2,
        "callback_url": "https://game.example/hook",
    }
    command = intake.submit(
        game, intake.Submission(CommandType.SPEND, unique("k"), fields)
    ).resource
    with round_trips() as sent:
        result = apply_batch(partition, 500)
    assert len(result.callbacks) == 1
    writes = [n for n, s in enumerate(sent) if "INSERT INTO ledger_entries" in s]
    outbox = [n for n, s in enumerate(sent) if "INSERT INTO callback_deliveries" in s]
    assert writes and outbox and writes[0] < outbox[0]
    assert sent[-1].startswith("COMMIT; SELECT partition, wallet")
    with connect() as conn:
        payload = conn.execute(
            text("SELECT payload FROM callback_deliveries WHERE transaction_id = :t"),
            {"t": command["id"]},
        ).scalar_one()
    assert '"status":"completed"' in payload and '"balance_after":1' in payload
