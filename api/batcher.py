"""Group commit, generically: many callers' items handled together, each answered alone.

Callers `submit` an item and block; worker threads take everything queued when they
become free (up to `max_batch`) and hand it to `handle` in one call, which returns one
outcome per item, in order: a result or an exception. Under load a call carries tens of
items; a lone item goes straight through. Nothing here knows what the items are.

- A failure of the whole call fails only the items it belongs to: the batch is split in
  halves and each retried, down to the one item that fails on its own (one bad item
  among 200 costs about 16 calls, not 200), unless `fails_all(error)` says the error is
  everyone's (the database is down: no point in retrying anything now).
- Every caller is answered: with its outcome, with `Timeout` after `timeout` seconds,
  or with `Closed` once `close()` was called.
- Items of one batch go to `handle` in the order they were submitted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Timeout(TimeoutError):
    """No outcome in time: the handler is stuck longer than any call may take."""


class Closed(RuntimeError):
    """The batcher was closed before this item was handled."""


def _held() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    # Held until the item is answered: the caller waits by acquiring it, the worker
    # answers by releasing it. A bare lock, not an Event (a Condition, its lock, and a
    # lock allocated per wait): the caller's thread costs the GIL less per request.
    done: threading.Lock = field(default_factory=_held)
    outcome: R | BaseException | None = None
    answered: bool = False


class Batcher(Generic[T, R]):
    def __init__(
        self,
        handle: Callable[[list[T]], Sequence[R | BaseException]],
        *,
        workers: int,
        max_batch: int,
        timeout: float = 40.0,
        fails_all: Callable[[BaseException], bool] = lambda error: False,
        name: str = "batcher",
    ) -> None:
        self._handle = handle
        self._workers = workers
        self._max_batch = max_batch
        self._timeout = timeout
        self._fails_all = fails_all
        self._name = name
        self._ready = threading.Condition()
        self._queue: list[_Waiting[T, R]] = []
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, item: T) -> R:
        """Queue `item`, wait for its outcome: return its result or raise its error."""
        waiting: _Waiting[T, R] = _Waiting(item)
        with self._ready:
            if self._closed:
                raise Closed(f"{self._name} is closed")
            if not self._threads:
                self._start()
            self._queue.append(waiting)
            self._ready.notify()
        if not waiting.done.acquire(timeout=self._timeout):
            raise Timeout(f"{self._name}: no answer in {self._timeout} s")
        if isinstance(waiting.outcome, BaseException):
            raise waiting.outcome
        return waiting.outcome  # type: ignore[return-value]

    def close(self, wait: float = 5.0) -> None:
        """Stop the workers once the batches they hold are handled; items still queued
        are answered with `Closed`."""
        with self._ready:
            self._closed = True
            left, self._queue = self._queue, []
            self._ready.notify_all()
            threads = list(self._threads)
        _answer(left, [Closed(f"{self._name} is closed")] * len(left))
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(wait)

    def _start(self) -> None:
        for n in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"{self._name}-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if self._closed and not self._queue:
                    return
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
            outcomes: Sequence[R | BaseException] = []
            try:
                outcomes = self._split([w.item for w in batch])
            except Exception as error:  # never leave a caller waiting, never die
                outcomes = [error] * len(batch)
            finally:  # even a BaseException ending this thread answers everyone
                _answer(batch, outcomes)

    def _split(self, items: list[T]) -> Sequence[R | BaseException]:
        try:
            outcomes = self._handle(items)
        except Exception as error:
            if self._fails_all(error) or len(items) == 1:
                return [error] * len(items)
            middle = len(items) // 2
            return [*self._split(items[:middle]), *self._split(items[middle:])]
        if len(outcomes) != len(items):
            raise RuntimeError(f"{len(outcomes)} outcomes for {len(items)} items")
        return outcomes


def _answer(batch: Sequence[_Waiting[T, R]], outcomes: Sequence[R | BaseException]) -> None:
    for waiting, outcome in zip(batch, outcomes, strict=False):
        waiting.outcome = outcome
        waiting.answered = True
    for waiting in batch:
        if not waiting.answered:
            waiting.outcome = RuntimeError("no outcome")
        waiting.done.release()  # each item is answered once: it left the queue once
