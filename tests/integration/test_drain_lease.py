"""The drain lease (db.lease.DrainLease): PostgreSQL, not Celery, decides who applies a
partition's commands. Two "hosts" draining one partition never apply a command twice or
out of order, and a drain whose session dies mid-batch writes nothing of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import text

from db import batch as store
from db.engine import connect
from db.uow import UnitOfWork
from ledger import CommandType, TransactionStatus
from tests.integration.helpers import balance, drain_all, statuses, submit, users_in
from worker.drain import drain

ROOT = Path(__file__).resolve().parents[2]
# One host's drain loop: drain the partition over and over for `seconds`, then write
# the ids of the commands it finished.
HOST = """
import json, sys, time
from worker.drain import drain
partition, seconds, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
finished, deadline = [], time.monotonic() + seconds
while time.monotonic() < deadline:
    finished += [str(f.id) for f in drain(partition, batch_size=7).finished]
json.dump(finished, open(out, "w"))
"""


def test_two_hosts_draining_one_partition_apply_each_command_once_in_order(tmp_path, rings):
    """Two processes (HOSTNAME hostA and hostB) drain partition 3 in a loop while
    players top up 5 and spend 5, one after the other: a duplicate would break the
    entries' unique key or a balance, an interleaving would reject a spend."""
    partition = 3
    users = users_in(partition, 6)
    hosts = []
    for name in ("hostA", "hostB"):
        out = tmp_path / f"{name}.json"
        env = {**os.environ, "HOSTNAME": name, "PYTHONPATH": str(ROOT)}
        argv = [sys.executable, "-c", HOST, str(partition), "8", str(out)]
        hosts.append((subprocess.Popen(argv, cwd=ROOT, env=env), out))
    time.sleep(1.5)  # both imported and draining
    ids = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for user in users:
            ids.append(submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=5)["id"])
            ids.append(submit(CommandType.SPEND, user_id=user, asset="GOLD_COINS", amount=5)["id"])
    for process, _ in hosts:
        assert process.wait(30) == 0
    applied = [json.loads(out.read_text()) for _, out in hosts]
    drain_all()

    assert all(applied), f"one host applied nothing: {[len(a) for a in applied]}"
    assert not set(applied[0]) & set(applied[1]), "a command applied by both hosts"
    by_hosts = set(applied[0]) | set(applied[1])
    assert len(by_hosts) >= len(ids) * 0.9, (len(by_hosts), len(ids))
    assert statuses(ids) == Counter({("completed", None): len(ids)})
    assert all(balance(u) == 0 for u in users)
    with connect() as conn:
        entries = conn.execute(
            text(
                "SELECT count(*) FROM ledger_entries "
                "WHERE transaction_id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"ids": ids},
        ).scalar_one()
    assert entries == 2 * len(ids)


def test_a_drain_whose_session_dies_mid_batch_writes_nothing(rings):
    """Host A reads a batch under the lease and then loses its PostgreSQL session
    (here pg_terminate_backend; a lost host, a cut link or the server's timeouts end
    it the same way). Host B waits for the lease meanwhile, then applies the batch; A's
    write fails, so nothing is applied twice."""
    user = users_in(5, 1)[0]
    ids = [
        submit(CommandType.TOPUP, user_id=user, asset="GOLD_COINS", amount=n)["id"]
        for n in (1, 2, 3)
    ]
    b_finished: list[str] = []
    with UnitOfWork() as stale:
        rows = store.pending_commands(stale.connection, 5, 500)
        assert {str(r.id) for r in rows} == set(ids)
        pid = stale.connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        host_b = threading.Thread(
            target=lambda: b_finished.extend(str(f.id) for f in drain(5).finished)
        )
        host_b.start()
        time.sleep(0.5)
        assert host_b.is_alive() and not b_finished, "host B did not wait for the lease"
        with connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        host_b.join(10)
        assert sorted(b_finished) == sorted(ids)
        # A carries on with the batch it read: its statements cannot reach the database.
        try:
            store.write(
                stale.connection,
                store.BatchWrite(
                    outcomes=[
                        store.Decided(r.id, TransactionStatus.REJECTED, "x", "x") for r in rows
                    ]
                ),
            )
            stale.commit()
            raise AssertionError("the stale drain wrote its batch")
        except Exception as error:  # the session is gone
            assert "terminat" in str(error) or "closed" in str(error), error
    assert statuses(ids) == Counter({("completed", None): 3})
    assert balance(user) == 6
