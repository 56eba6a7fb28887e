"""The partition lease (worker.lease) as a state machine: random interleavings of two
drain chains of one partition acquiring, draining, lingering, handing off, letting go
and being killed, with intake rings anywhere (also inside a chain's last look, between
its release and its reclaim), against the real PostgreSQL and Redis of the tests.

Two things must hold after every step: never do two chains hold the lease (and when
one says it does, PostgreSQL agrees), and never is a rung command left with no chain
running and none enqueued (a lost bell: only the sweeper would find it, seconds late).
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from db.engine import autocommit
from db.lease import CHAIN_LOCK_NAMESPACE
from worker import doorbell
from worker.lease import PartitionLease

PARTITION = 61  # a queue no other test drains
# What a running chain does next: drain (just started, or woken by a ring), or let go
# (it drained, found nothing more, lingered, and no ring came).
MUST_DRAIN, LINGERED = "must drain", "lingered"
ACTIONS = st.lists(st.sampled_from(["ring", "start"]), max_size=2)


def _lock_holder() -> int | None:
    """The backend holding the partition's chain lock, as PostgreSQL sees it."""
    with autocommit() as conn:
        return conn.execute(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = :ns AND objid = :p AND objsubid = 2"
            ),
            {"ns": CHAIN_LOCK_NAMESPACE, "p": PARTITION},
        ).scalar()


class TwoChains(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        doorbell.redis_client().delete(doorbell.flag(PARTITION), doorbell.bell(PARTITION))
        self.enqueued = 0  # drain messages waiting in the partition's queue
        self.work = 0  # commands committed and not yet drained
        self.chains: list[PartitionLease | None] = [None, None]
        self.state: list[str | None] = [None, None]
        self.data: st.DataObject | None = None  # draws what happens between steps
        self._enqueue = doorbell.enqueue
        doorbell.enqueue = self._enqueued  # type: ignore[assignment]

    def _enqueued(self, partition: int) -> None:
        assert partition == PARTITION
        self.enqueued += 1

    def teardown(self) -> None:
        doorbell.enqueue = self._enqueue  # type: ignore[assignment]
        for chain in self.chains:
            if chain is not None:
                chain.close()
        doorbell.redis_client().delete(doorbell.flag(PARTITION), doorbell.bell(PARTITION))

    def _in(self, *states: str) -> list[int]:
        return [n for n in (0, 1) if self.state[n] in states]

    def _between(self, step: str) -> None:
        """Inside a move of one chain: rings, and the other chain starting."""
        if self.data is None:
            return
        for action in self.data.draw(ACTIONS, label=f"after {step}"):
            if action == "ring":
                self.ring()
            elif self.enqueued > 0 and self._in(None):
                self._start(self._in(None)[0])

    def _start(self, n: int) -> None:
        self.enqueued -= 1
        lease = PartitionLease(PARTITION, between=self._between)
        if lease.acquire():
            self.chains[n], self.state[n] = lease, MUST_DRAIN
        else:
            lease.close()  # another chain runs: it holds the flag and sees the rings

    def _end(self, n: int) -> None:
        lease = self.chains[n]
        assert lease is not None
        lease.close()
        self.chains[n], self.state[n] = None, None

    # The intake: a command is committed, then its partition rung.
    @rule()
    def ring(self) -> None:
        self.work += 1
        doorbell.ring(PARTITION)

    # A worker thread takes a message off the queue and starts a chain.
    @precondition(lambda self: self.enqueued > 0 and self._in(None))
    @rule(data=st.data())
    def start(self, data: st.DataObject) -> None:
        self._start(data.draw(st.sampled_from(self._in(None))))

    # A batch (it applies everything pending), then what the chain does with nothing
    # more: linger for a ring, or hand off (its time budget is spent).
    @precondition(lambda self: self._in(MUST_DRAIN))
    @rule(data=st.data(), hand_off=st.integers(0, 3).map(lambda n: n == 0))
    def drain(self, data: st.DataObject, hand_off: bool) -> None:
        n = data.draw(st.sampled_from(self._in(MUST_DRAIN)))
        lease = self.chains[n]
        assert lease is not None
        self.work = 0
        if not hand_off:
            self.state[n] = MUST_DRAIN if lease.linger(0.01) else LINGERED
            return
        self.data = data
        try:
            lease.hand_off()
        finally:
            self.data = None
        self._end(n)

    @precondition(lambda self: self._in(LINGERED))
    @rule(data=st.data())
    def let_go(self, data: st.DataObject) -> None:
        n = data.draw(st.sampled_from(self._in(LINGERED)))
        lease = self.chains[n]
        assert lease is not None

        def last_look() -> bool:
            found, self.work = self.work > 0, 0
            return found

        self.data = data
        try:
            kept = lease.let_go(last_look)
        finally:
            self.data = None
        if kept:
            self.state[n] = MUST_DRAIN
        else:
            self._end(n)

    # The worker process is SIGKILLed: its session ends, its flag stays in Redis, and
    # its message is delivered again (acks late, reject on worker lost).
    @precondition(lambda self: self._in(MUST_DRAIN, LINGERED))
    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        n = data.draw(st.sampled_from(self._in(MUST_DRAIN, LINGERED)))
        pid = _lock_holder()
        assert pid is not None
        with autocommit() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        deadline = time.monotonic() + 5
        while _lock_holder() is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        self._end(n)  # the dead session's connection, as the pool would drop it
        self.enqueued += 1

    # A flag left behind (by a killed worker) expires once nobody runs.
    @precondition(lambda self: not self._in(MUST_DRAIN, LINGERED))
    @rule()
    def flag_expires(self) -> None:
        doorbell.redis_client().delete(doorbell.flag(PARTITION))

    @invariant()
    def at_most_one_chain_holds_the_lease(self) -> None:
        running = [n for n in (0, 1) if self.chains[n] is not None]
        assert len(running) <= 1, running
        if running:
            assert _lock_holder() is not None  # PostgreSQL agrees that it is held

    @invariant()
    def no_rung_command_is_left_without_a_chain(self) -> None:
        if self.work:
            running = [n for n in (0, 1) if self.chains[n] is not None]
            assert running or self.enqueued > 0, "a ring was lost"


@pytest.mark.usefixtures("database")
def test_two_chains_never_both_hold_the_lease_and_never_lose_a_ring():
    run_state_machine_as_test(
        TwoChains,
        settings=settings(
            max_examples=100,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


class _Planned:
    """Stands in for hypothesis' data: what happens after each named step."""

    def __init__(self, plan: dict[str, list[str]]) -> None:
        self.plan = plan

    def draw(self, strategy: object, label: str | None = None) -> list[str]:
        return self.plan.pop(label or "", [])


@pytest.mark.usefixtures("database")
def test_a_ring_while_a_chain_lets_go_is_not_lost():
    """The interleaving the random search finds least often, spelled out: while a chain
    lets go, a ring comes right after the flag is deleted and its new chain starts at
    once. Were the flag deleted before the chain lock, that chain would find the lock
    still held and exit, the old one would then lose the flag to the ring, and the
    next ring would only push a bell nobody waits on."""
    machine = TwoChains()
    try:
        machine.ring()
        machine._start(0)
        lease = machine.chains[0]
        assert lease is not None
        machine.work = 0
        assert lease.linger(0.01)  # the bell of the ring that started it
        assert not lease.linger(0.01)
        machine.data = _Planned({"after flag deleted": ["ring", "start"]})  # type: ignore[assignment]

        def last_look() -> bool:
            found, machine.work = machine.work > 0, 0
            return found

        kept = lease.let_go(last_look)
        machine.data = None
        if not kept:
            machine._end(0)
        machine.ring()
        machine.no_rung_command_is_left_without_a_chain()
        machine.at_most_one_chain_holds_the_lease()
    finally:
        machine.teardown()


@pytest.mark.usefixtures("database")
def test_a_ring_that_came_during_a_batch_is_seen_without_waiting():
    """`rung` (a busy partition: gather, then drain) takes a waiting bell at once and
    never waits; `linger` (an idle one) waits for the next."""
    client = doorbell.redis_client()
    client.delete(doorbell.flag(PARTITION), doorbell.bell(PARTITION))
    lease = PartitionLease(PARTITION)
    try:
        started = time.monotonic()
        assert not lease.rung()
        assert time.monotonic() - started < 0.5
        client.lpush(doorbell.bell(PARTITION), "1")  # a ring during the batch
        assert lease.rung()
        assert not lease.rung() and client.llen(doorbell.bell(PARTITION)) == 0
        started = time.monotonic()
        assert not lease.linger(0.2)
        assert time.monotonic() - started >= 0.15  # lingering does wait
    finally:
        lease.close()
        client.delete(doorbell.flag(PARTITION), doorbell.bell(PARTITION))
