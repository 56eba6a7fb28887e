"""The generic group-commit batcher (api.batcher), with real threads: items of a batch
keep their order, one failing item fails alone, every caller is answered (a timeout, a
shutdown), and an error that is everyone's fails everyone at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from api.batcher import Batcher, Closed, Timeout


def test_each_caller_gets_its_own_result_and_batches_keep_submission_order():
    calls: list[list[int]] = []
    gate = threading.Event()

    def handle(items: list[int]) -> list[int]:
        gate.wait(5)  # the first call holds the worker while the others queue up
        calls.append(list(items))
        return [item * 10 for item in items]

    group: Batcher[int, int] = Batcher(handle, workers=1, max_batch=100, timeout=5)
    with ThreadPoolExecutor(20) as pool:
        first = pool.submit(group.submit, 0)
        time.sleep(0.05)
        rest = []
        for item in range(1, 20):
            rest.append(pool.submit(group.submit, item))
            time.sleep(0.002)  # a submission order to keep
        gate.set()
        answers = [first.result(5)] + [f.result(5) for f in rest]
    assert answers == [item * 10 for item in range(20)]
    assert calls[0] == [0]
    assert [item for call in calls[1:] for item in call] == list(range(1, 20))
    assert len(calls) < 20  # the queued ones shared calls
    group.close()


def test_one_failing_item_fails_alone_and_the_others_succeed():
    def handle(items: list[str]) -> list[str]:
        if "bad" in items:
            raise ValueError("bad breaks the shared call")
        return [item.upper() for item in items]

    group: Batcher[str, str] = Batcher(handle, workers=1, max_batch=64, timeout=5)
    items = [*map(str, range(40)), "bad", *map(str, range(40, 63))]
    outcomes = group._split(items)
    assert [isinstance(o, ValueError) for o in outcomes] == [i == "bad" for i in items]
    assert [o for o in outcomes if not isinstance(o, ValueError)] == [
        i.upper() for i in items if i != "bad"
    ]
    with ThreadPoolExecutor(8) as pool:
        good = pool.submit(group.submit, "ok")
        bad = pool.submit(group.submit, "bad")
        assert good.result(5) == "OK"
        with pytest.raises(ValueError):
            bad.result(5)
    group.close()


def test_an_error_that_is_everyones_fails_the_batch_at_once_without_splitting():
    calls: list[int] = []

    def handle(items: list[int]) -> list[int]:
        calls.append(len(items))
        raise ConnectionError("the database is down")

    group: Batcher[int, int] = Batcher(
        handle, workers=1, max_batch=64, fails_all=lambda e: isinstance(e, ConnectionError)
    )
    outcomes = group._split(list(range(32)))
    assert all(isinstance(o, ConnectionError) for o in outcomes) and len(outcomes) == 32
    assert calls == [32]


def test_a_stuck_handler_times_callers_out_instead_of_hanging():
    release = threading.Event()
    group: Batcher[int, int] = Batcher(
        lambda items: release.wait(10) and items, workers=1, max_batch=10, timeout=0.3
    )
    started = time.monotonic()
    with pytest.raises(Timeout):
        group.submit(1)
    assert time.monotonic() - started < 2
    release.set()
    group.close()


def test_a_worker_survives_a_failing_handler_and_answers_the_next_batch():
    calls: list[int] = []

    def handle(items: list[int]) -> list[int]:
        calls.append(len(items))
        if len(calls) == 1:
            raise KeyError("once")
        return items

    group: Batcher[int, int] = Batcher(handle, workers=1, max_batch=10, timeout=5)
    with pytest.raises(KeyError):
        group.submit(1)
    assert group.submit(2) == 2
    group.close()


def test_close_answers_queued_callers_and_refuses_new_ones():
    gate = threading.Event()
    group: Batcher[int, int] = Batcher(
        lambda items: gate.wait(5) and items, workers=1, max_batch=1, timeout=5
    )
    with ThreadPoolExecutor(4) as pool:
        running = pool.submit(group.submit, 1)
        time.sleep(0.05)  # 1 is being handled; 2 and 3 queue behind it
        queued = [pool.submit(group.submit, n) for n in (2, 3)]
        time.sleep(0.05)
        closer = pool.submit(group.close)
        time.sleep(0.05)
        for future in queued:
            with pytest.raises(Closed):
                future.result(5)
        gate.set()
        assert running.result(5) == 1  # the batch in hand is finished, not dropped
        closer.result(5)
    with pytest.raises(Closed):
        group.submit(4)
    assert not any(t.is_alive() for t in group._threads)
