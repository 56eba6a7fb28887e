"""Scale-out under load, against the whole stack: worker groups on two "hosts" (their
own HOSTNAME and Celery node names, their own process groups, both consuming every
partition queue) with one killed with SIGKILL, and a repartition from 4 to 8 partitions
(`python -m stack repartition 8`) while players top up and spend. Every accepted command
ends applied exactly once, per-wallet order holds, no client ever sees a 500."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg2
import pytest

from db.lease import DRAIN_LOCK_NAMESPACE
from ledger import partition_of
from stack import embedded, launch
from tests.ha.clusters import Processes, RedisNode, wait_for
from tests.ha.load import PairLoad
from tests.ha.stack import RunningStack, consumers, drains_run, running_stack, worker_host

pytestmark = [pytest.mark.ha, pytest.mark.timeout(240)]


@pytest.fixture
def database(servers) -> Iterator[str]:
    url = servers.database(f"wallet_scale_{uuid.uuid4().hex[:12]}")
    embedded.ensure_database(url)
    yield url
    embedded.drop_database(url)


def sql(database: str, query: str, *args: object) -> list[tuple]:
    with psycopg2.connect(database) as conn, conn.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchall()


def partition_workers(stack: RunningStack) -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process(stack.process.pid).children(recursive=True)
        if any(arg.startswith("partitions-") for arg in child.cmdline())
    ]


def test_a_worker_host_killed_with_sigkill_loses_nothing_and_the_other_host_takes_over(
    database: str,
    plain_redis: RedisNode,
    processes: Processes,
    stack_dir: Path,
    measured: list[str],
):
    backends = {
        "DATABASE_URL": database,
        "REDIS_URL": f"redis://127.0.0.1:{plain_redis.port}/0",
        "HOSTNAME": "hostA",
        "WALLET_MAX_PARTITIONS": "8",
    }
    (stack_dir / "a").mkdir()
    with running_stack(backends, stack_dir / "a") as stack:
        host_b = worker_host(processes, stack, "hostB", stack_dir / "b")

        def both_hosts_consume_every_queue() -> bool:
            found = consumers(stack)
            queues = {f"partition.{p}" for p in range(8)}
            return all(
                queues <= {q for node, qs in found.items() if node.endswith(host) for q in qs}
                for host in ("@hostA", "@hostB")
            )

        wait_for(both_hosts_consume_every_queue, 90, f"hostB's workers\n{host_b.tail()}")
        nodes = sorted(consumers(stack))
        with PairLoad(stack.api, users=40, threads=6) as load:
            wait_for(lambda: load.count() >= 200, 60, "the load to start")

            def drained_by_b() -> int:
                return sum(n for node, n in drains_run(stack).items() if node.endswith("@hostB"))

            wait_for(lambda: drained_by_b() >= 5, 60, f"hostB to drain\n{host_b.tail()}")
            by_b = drained_by_b()
            before = load.count()
            killed = time.monotonic()
            host_b.kill()  # every process of the host at once: a crash, not a shutdown
            wait_for(lambda: load.count() >= before + 200, 60, f"writes to go on\n{stack.tail()}")
        outcome = load.settle_and_check(timeout=60)
        settled = time.monotonic() - killed
        survivors = sorted(consumers(stack))
    measured.append(
        f"two worker hosts, hostB SIGKILLed under load: nodes {nodes}; hostB had run "
        f"{by_b} drain tasks; {outcome['accepted']} commands accepted "
        f"({load.spends()} spends), {outcome['applied']} applied once, all completed "
        f"{settled:.1f} s after the kill; 0 answers 500; survivors {survivors}"
    )
    print(measured[-1])
    assert len(nodes) == 6 and {n.split("@")[1] for n in nodes} == {"hostA", "hostB"}
    assert all(node.endswith("@hostA") for node in survivors)
    assert load.spends() > 100


def test_repartitioning_from_4_to_8_under_load_loses_and_reorders_nothing(
    database: str, plain_redis: RedisNode, stack_dir: Path, measured: list[str]
):
    """Top-up then spend pairs for 60 players; partition workers frozen for a moment so
    that a backlog sits in the 4 old partitions; `python -m stack repartition 8` runs
    (waiting for the frozen drains' leases); the workers thaw; the load goes on."""
    backends = {
        "DATABASE_URL": database,
        "REDIS_URL": f"redis://127.0.0.1:{plain_redis.port}/0",
        "WALLET_MAX_PARTITIONS": "8",
    }
    with running_stack(backends, stack_dir) as stack:
        with PairLoad(stack.api, users=60, threads=6) as load:
            wait_for(lambda: load.count() >= 200, 60, "the load to start")
            frozen = partition_workers(stack)
            assert len(frozen) == 2
            for worker in frozen:
                worker.suspend()
            try:
                wait_for(
                    lambda: (
                        sql(database, "SELECT count(*) FROM transactions WHERE status = 'pending'")[
                            0
                        ][0]
                        >= 60
                    ),
                    30,
                    "a backlog",
                )
                # Players whose wallets move: a top-up each now, in the old layout's
                # backlog; their spends come after the switch (below).
                movers = []
                while len(movers) < 40:
                    user = f"ha-mv-{uuid.uuid4().hex[:8]}"
                    if partition_of(user, 4) != partition_of(user, 8):
                        movers.append(user)
                for user in movers:
                    stack.api.submit("topup", {"user_id": user, "asset": "GOLD_COINS", "amount": 3})
                result: list[subprocess.CompletedProcess[str]] = []
                command = threading.Thread(
                    target=lambda: result.append(
                        subprocess.run(
                            [sys.executable, "-m", "stack", "repartition", "8"],
                            env=stack.env,
                            cwd=launch.ROOT,
                            capture_output=True,
                            text=True,
                            timeout=120,
                        )
                    )
                )
                started = time.monotonic()
                command.start()

                # Frozen until the switch has committed and commands were accepted after
                # it: a wallet's older commands then wait in its old partition's
                # backlog while newer ones arrive in the new layout, which is where a
                # wallet split across two partitions would apply out of order. (Unless
                # a frozen drain holds a lease the command waits for: then thaw.)
                def switched_or_stuck() -> str | None:
                    if result:
                        return "done"
                    if sql(database, "SELECT partitions FROM wallet_partitioning") == [(8,)]:
                        return "switched"
                    waiting = sql(
                        database,
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND classid = %s AND NOT granted",
                        DRAIN_LOCK_NAMESPACE,
                    )[0][0]
                    return "waiting for a frozen drain" if waiting else None

                def spend_all(users: list[str]) -> list[dict]:
                    return [
                        stack.api.submit(
                            "spend", {"user_id": u, "asset": "GOLD_COINS", "amount": 3}
                        )
                        for u in users
                    ]

                state = wait_for(switched_or_stuck, 60, "the switch", interval=0.02)
                if state != "waiting for a frozen drain":
                    after = load.count()
                    wait_for(lambda: load.count() >= after + 30, 30, "commands after it")
                    spends = spend_all(movers)
            finally:
                for worker in frozen:
                    worker.resume()
            command.join(120)
            if state == "waiting for a frozen drain":
                spends = spend_all(movers)
            switched = time.monotonic()
            before = load.count()
            wait_for(lambda: load.count() >= before + 300, 90, f"the load to go on\n{stack.tail()}")
        outcome = load.settle_and_check(timeout=90)
        # Each mover's spend, accepted after the switch, found its top-up applied first.
        finals = [stack.api.final(tx["id"], timeout=60) for tx in spends]
        assert {f["status"] for f in finals} == {"completed"}, finals
        assert all(stack.api.balance(u) == 0 for u in movers)
    assert result and result[0].returncode == 0, result
    report = result[0].stdout.strip().splitlines()[-1]
    assert report.startswith("partitions: 4 -> 8;"), report
    moved = int(report.split("; ")[1].split()[0])
    assert moved > 0, report
    assert sql(database, "SELECT partitions FROM wallet_partitioning") == [(8,)]
    # After the switch every command is in its wallet's new partition, and partitions
    # 4 to 7 (consumed all along, empty before) applied their share.
    late = sql(
        database,
        "SELECT user_id, partition FROM transactions WHERE user_id LIKE 'ha-%%' "
        "AND created_at > (SELECT changed_at FROM wallet_partitioning)",
    )
    assert late and all(p == partition_of(u, 8) for u, p in late)
    new_partitions = sql(
        database,
        "SELECT count(*) FROM transactions WHERE partition >= 4 AND status = 'completed'",
    )[0][0]
    assert new_partitions > 0
    measured.append(
        f"repartition 4 -> 8 under load: {report.split(': ', 1)[1]} (the command took "
        f"{switched - started:.1f} s with its start-up; workers thawed once it was "
        f"{state}); "
        f"{outcome['accepted']} commands accepted ({load.spends()} spends, all completed), "
        f"{outcome['applied']} applied once; {new_partitions} applied in partitions 4-7; "
        f"0 answers 500, {len(load.refused)} answers 503"
    )
    print(measured[-1])
