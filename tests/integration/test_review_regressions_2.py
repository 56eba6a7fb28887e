"""Regressions for the second review (group commit, doorbell chains, wake-ups)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy.exc import OperationalError

from api import intake
from db import batch as store
from ledger import CommandType, partition_of
from tests.integration.conftest import ADMIN
from tests.integration.helpers import (
    bootstrap,
    drain_all,
    submit,
    transaction,
    users_in_distinct_partitions,
)
from tests.support import unique
from worker import drain as drain_module
from worker.drain import drain


def test_a_command_waiting_on_a_rejected_transfer_is_woken(rings):
    """The transfer it waited for is rejected (no wallet changes): its partition is
    still rung, so it does not wait for the sweeper."""
    payer, payee = users_in_distinct_partitions(2)
    doomed = submit(
        CommandType.TRANSFER, from_user_id=payer, to_user_id=payee, asset="GOLD_COINS", amount=5
    )
    spend = submit(CommandType.SPEND, user_id=payee, asset="GOLD_COINS", amount=1)
    assert drain(partition_of(payee, 8)).finished == []  # waits for the transfer
    rejected = drain(partition_of(payer, 8))
    assert transaction(doomed["id"])["error"]["code"] == "insufficient_funds"
    assert partition_of(payee, 8) in rejected.ring
    drain(partition_of(payee, 8))
    assert transaction(spend["id"])["status"] == "rejected"  # applied, in order


def test_when_the_wake_up_query_fails_every_other_partition_is_rung(monkeypatch):
    def down(*args, **kwargs):
        raise OperationalError("SELECT", {}, ConnectionError("gone"))

    monkeypatch.setattr(store, "foreign_pending", down)
    assert drain_module.waiting_partitions(3, {"someone"}) == set(range(8)) - {3}
    assert drain_module.waiting_partitions(3, set()) == set()


def test_a_replay_of_a_still_pending_command_rings_again(rings):
    user, key = unique(), unique("key")
    submit(CommandType.TOPUP, key, user_id=user, asset="GOLD_COINS", amount=1)
    submit(CommandType.TOPUP, key, user_id=user, asset="GOLD_COINS", amount=1)
    assert rings.count(partition_of(user, 8)) == 2
    drain_all()


def test_one_drain_chain_per_partition():
    first, second = store.ChainLock(5), store.ChainLock(5)
    try:
        assert first.acquire()
        assert not second.acquire()
        first.release()
        assert second.acquire()
        assert store.ChainLock(6).acquire() is True
    finally:
        first.close()
        second.close()


def test_a_failed_drain_chain_releases_the_doorbell(monkeypatch):
    from worker import doorbell, tasks

    partition = 7
    doorbell.redis_client().set(doorbell.flag(partition), "1")
    monkeypatch.setattr(tasks, "drain", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    tasks.apply_partition(partition)
    assert doorbell.redis_client().get(doorbell.flag(partition)) is None


# -- group commit ---------------------------------------------------------------------


def test_a_stuck_group_commit_answers_503_instead_of_hanging(monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(intake, "accept", lambda items, ordered=True: release.wait() and [])
    group = intake.GroupCommit(committers=1, max_batch=10, timeout=0.5)
    started = time.monotonic()
    outcome = group.accept(bootstrap(), intake.Submission(CommandType.TOPUP, "k", {}))
    assert isinstance(outcome, OperationalError)
    assert time.monotonic() - started < 2
    release.set()


def test_a_committer_that_fails_answers_everyone_and_keeps_running(monkeypatch):
    calls = []

    def broken_then_fine(items, ordered=True):
        calls.append(len(items))
        if len(calls) == 1:
            raise KeyError("not an infrastructure error, not per item")
        return [intake.Accepted({"id": "x"}, created=True) for _ in items]

    monkeypatch.setattr(intake, "accept", broken_then_fine)
    group = intake.GroupCommit(committers=1, max_batch=10, timeout=5)
    first = group.accept(bootstrap(), intake.Submission(CommandType.TOPUP, "a", {}))
    assert isinstance(first, KeyError)
    second = group.accept(bootstrap(), intake.Submission(CommandType.TOPUP, "b", {}))
    assert isinstance(second, intake.Accepted)


def test_one_bad_command_in_a_group_fails_alone_by_halves(monkeypatch):
    statements = []

    def accept(items, ordered=True):
        statements.append(len(items))
        if any(sub.idempotency_key == "bad" for _, sub in items):
            raise ValueError("this one breaks the shared statement")
        return [intake.Accepted({"id": sub.idempotency_key}, created=True) for _, sub in items]

    monkeypatch.setattr(intake, "accept", accept)
    group = intake.GroupCommit(committers=1, max_batch=64, timeout=5)
    batch = [
        intake._Waiting(bootstrap(), intake.Submission(CommandType.TOPUP, k, {}))
        for k in [*map(str, range(63)), "bad"]
    ]
    outcomes = group._commit(batch)
    assert [isinstance(o, ValueError) for o in outcomes] == [False] * 63 + [True]
    assert len(statements) <= 2 * 7 + 1  # halving: about 2 log2(64), not 64


@pytest.mark.parametrize("raw", ['"\\ud800"', '"a\\udfffb"'])
def test_unpaired_surrogates_are_refused_with_422(client, raw):
    """Unstorable in PostgreSQL: refused when the body is read, like malformed JSON (a
    batch that holds one is refused whole, and nothing is recorded), never a 500."""
    body = '{"user_id": "u1", "asset": "GOLD_COINS", "amount": 1, "reason": ' + raw + "}"
    single = client.post(
        "/v1/transactions/bonus", data=body, headers={**ADMIN, "Idempotency-Key": unique()}
    )
    assert single.status_code == 422
    item = '{"type": "bonus", "idempotency_key": "x", "user_id": "u", "asset": "GOLD_COINS", '
    batch = '{"commands": [' + item + '"amount": 1, "reason": ' + raw + "}]}"
    response = client.post("/v1/transactions/batch", data=batch, headers=ADMIN)
    assert response.status_code == 422


def test_a_paired_surrogate_is_an_ordinary_character(client):
    body = '{"user_id": "u1", "asset": "GOLD_COINS", "amount": 1, "reason": "gift \\ud83c\\udf81"}'
    response = client.post(
        "/v1/transactions/bonus", data=body, headers={**ADMIN, "Idempotency-Key": unique()}
    )
    assert response.status_code == 202
    assert response.get_json()["reason"] == "gift \U0001f381"
    drain_all()
