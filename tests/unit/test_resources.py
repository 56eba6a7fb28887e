"""The process's resources: built once on first use, closed and rebuilt by reset, and
never shared with a forked child."""

from __future__ import annotations

import os
import threading

import resources


def _counting() -> tuple[resources.Resource[object], list[object], list[tuple[object, bool]]]:
    built: list[object] = []
    closed: list[tuple[object, bool]] = []

    def build() -> object:
        value = object()
        built.append(value)
        return value

    return resources.Resource("test", build, lambda v, f: closed.append((v, f))), built, closed


def test_a_resource_is_built_once_per_process_even_by_racing_threads():
    resource, built, _ = _counting()
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(resource.get())) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1
    assert all(value is built[0] for value in seen)
    assert resources.start() is resources.current()  # start() keeps the process's set


def test_reset_closes_what_was_built_and_builds_afresh():
    resource, built, closed = _counting()
    first = resource.get()
    resources.reset()
    assert closed == [(first, False)]
    assert resource.built() is None
    assert resource.get() is not first
    assert len(built) == 2


def test_a_forked_child_builds_its_own_and_leaves_the_parents_alone():
    resource, _, closed = _counting()
    parent = resource.get()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether it got the parent's instance
        os.close(read)
        fresh = resource.built() is None and resource.get() is not parent
        told = closed == [(parent, True)]  # closed as "after a fork": nothing shared touched
        os.write(write, b"ok" if fresh and told else b"shared")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 16)
    os.waitpid(pid, 0)
    assert answer == b"ok"
    assert resource.get() is parent and closed == []
