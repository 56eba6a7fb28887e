"""An exclusive lock on a file, held across processes for the length of a `with` block."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Block until this process holds the lock on `path` (created if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # flock, not a lock file that exists or not: the kernel releases it when the holder
    # dies, so a killed `make run` never leaves a stale lock behind.
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
