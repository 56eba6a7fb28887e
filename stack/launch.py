"""Start the whole stack (`python -m stack run`) as a child process group, wait until
it is ready, stop it as Ctrl-C would: shared by the end-to-end tests and the benchmark."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from stack.ports import LOCALHOST

ROOT = Path(__file__).resolve().parents[1]


class StackNotReady(RuntimeError):
    """The stack exited, or did not become ready in time; the message ends with its log."""


def any_free_port(host: str = LOCALHOST) -> int:
    """A port the kernel picks, free at the time of the call."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def start(env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`python -m stack run` with `env`, in a session of its own, its output in `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "stack", "run"],
            cwd=ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_ready(
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    log: Path,
    timeout: float,
    interval: float = 0.25,
) -> None:
    """Until `ready()` is true; StackNotReady if the stack exits or time runs out.
    `ready` may raise OSError-like request errors while the API is still starting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackNotReady(f"the stack exited ({process.returncode}):\n{_tail(log)}")
        try:
            if ready():
                return
        except OSError:  # requests' ConnectionError is one
            pass
        time.sleep(interval)
    raise StackNotReady(f"the stack was not ready in {timeout:.0f} s:\n{_tail(log)}")


def stop(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """SIGTERM to the stack's process group, as Ctrl-C would; SIGKILL if it hangs."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def _tail(log: Path, chars: int = 5000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"
