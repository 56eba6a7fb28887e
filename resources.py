"""This process's resources: database engines, Redis clients, pools, caches, threads.

Each is declared once, where it is used, as a `Resource` (a name, how to build it, how
to let it go) and built on first use in the process's `Resources`. There is one
`Resources` per process: the app factory (`api.create_app`) and Celery's
`worker_process_init` call `start()`; a fork gives the child a fresh one (the parent's
sockets and threads are not the child's); tests call `reset()` when the environment
changed. Nothing else keeps process-global state, so nothing else needs resetting.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

import settings

T = TypeVar("T")


class Resource(Generic[T]):
    """One kind of per-process resource: `build()` makes it, `close(value, after_fork)`
    lets it go (after a fork: without touching what the parent still uses)."""

    def __init__(
        self,
        name: str,
        build: Callable[[], T],
        close: Callable[[T, bool], None] | None = None,
    ) -> None:
        self.name = name
        self.build = build
        self.close = close

    def get(self) -> T:
        """This process's instance, built on first use (a dict lookup once built: the
        asset catalogue asks for its resource for every command a batch accepts)."""
        built = _current._built
        if self in built:
            return cast(T, built[self])
        return _current.get(self)

    def built(self) -> T | None:
        """This process's instance if it was built, without building it."""
        return current().built(self)

    def __repr__(self) -> str:
        return f"Resource({self.name!r})"


class Resources:
    """The resources one process has built, by kind."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._built: dict[Resource[Any], Any] = {}
        self.pid = os.getpid()

    def get(self, resource: Resource[T]) -> T:
        try:
            return cast(T, self._built[resource])
        except KeyError:
            pass
        with self._lock:
            if resource not in self._built:
                self._built[resource] = resource.build()
            return cast(T, self._built[resource])

    def built(self, resource: Resource[T]) -> T | None:
        return cast("T | None", self._built.get(resource))

    def close(self, after_fork: bool = False) -> None:
        """Let every built resource go, the last built first. (No lock: after a fork
        another thread of the parent may have held it, and that thread is gone.)"""
        built, self._built = list(self._built.items()), {}
        for resource, value in reversed(built):
            if resource.close is not None:
                resource.close(value, after_fork)


_current = Resources()
_lock = threading.Lock()


def current() -> Resources:
    return _current


def start() -> Resources:
    """The process's resources (a fresh set if this process has none of its own yet)."""
    global _current
    with _lock:
        if _current.pid != os.getpid():
            _current = Resources()
        return _current


def reset() -> None:
    """Close everything this process built, forget the settings read, and start afresh
    (tests that change the environment: a new database, another Redis)."""
    global _current
    with _lock:
        old, _current = _current, Resources()
    old.close()
    settings.load.cache_clear()


def _after_fork_in_child() -> None:
    global _current
    old, _current = _current, Resources()
    old.close(after_fork=True)


os.register_at_fork(after_in_child=_after_fork_in_child)


def freeze_startup_objects() -> None:
    """Once a process has started (its modules, app, schemas and settings built), take
    what is alive now out of the cyclic garbage collector's walks (`gc.freeze`).

    A full collection walks every tracked object while holding the GIL: in the API
    process, with about 90,000 of them after `create_app()`, that took 40-140 ms on
    the 2-core machine, a stall of every request thread of the process at once, seen
    as the intake's latency tail (README, Performance). What is frozen is never freed,
    which is what startup objects are for anyway; new objects are collected as before.
    """
    import gc

    gc.collect()
    gc.freeze()
