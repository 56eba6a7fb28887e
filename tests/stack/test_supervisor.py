"""The supervisor, for real: stand-in child processes, real signals, real restarts."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from stack.supervisor import Program, run_once

ROOT = Path(__file__).resolve().parents[2]

# A long-running child that says who it is. `family` also has a child of its own (like
# gunicorn's workers); `stubborn` ignores SIGTERM and must be killed after the grace period.
SLEEPER = "import os, time; print(f'pid={os.getpid()}', flush=True); time.sleep(1000)"
FAMILY = (
    "import os, subprocess, sys, time;"
    "kid = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1000)']);"
    "print(f'pid={os.getpid()} kid={kid.pid}', flush=True); time.sleep(1000)"
)
STUBBORN = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); " + SLEEPER

SUPERVISOR = textwrap.dedent(
    """
    import sys
    from stack.supervisor import Program, supervise

    def child(code):
        return [sys.executable, "-c", code]

    sys.exit(supervise(
        [
            Program("alpha", child({sleeper!r})),
            Program("family", child({family!r})),
            Program("stubborn", child({stubborn!r})),
        ],
        stop_timeout=1.0,
    ))
    """
).format(sleeper=SLEEPER, family=FAMILY, stubborn=STUBBORN)


class Supervised:
    """A supervisor process whose output lines a thread collects."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SUPERVISOR],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"},
        )
        self.lines: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode().rstrip("\n"))

    def wait_for(self, pattern: str, after: int = 0, timeout: float = 10.0) -> re.Match[str]:
        """The first line matching `pattern` among the lines from number `after` on."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                if match := re.search(pattern, line):
                    return match
            time.sleep(0.02)
        raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.lines))

    def pid_of(self, name: str, after: int = 0) -> int:
        return int(self.wait_for(rf"^{name} +\| pid=(\d+)", after).group(1))


@pytest.fixture
def supervised() -> Iterator[Supervised]:
    running = Supervised()
    yield running
    if running.proc.poll() is None:
        running.proc.kill()
        running.proc.wait()


def test_each_line_is_prefixed_with_the_child_name(supervised: Supervised) -> None:
    for name in ("alpha", "family", "stubborn"):
        # Names are padded to the longest one, so the output lines up.
        assert supervised.wait_for(rf"^{name} +\| pid=\d+").group(0).index("|") == 9


def test_a_child_killed_with_sigkill_is_back_within_two_seconds(supervised: Supervised) -> None:
    first = supervised.pid_of("alpha")
    mark = len(supervised.lines)
    killed_at = time.monotonic()
    os.kill(first, signal.SIGKILL)

    supervised.wait_for(r"^stack +\| alpha exited \(killed by SIGKILL\); restarting", mark)
    second = supervised.pid_of("alpha", mark)
    assert second != first
    assert time.monotonic() - killed_at < 2.0


def test_sigterm_stops_every_child_and_grandchild_and_exits_zero(
    supervised: Supervised,
) -> None:
    family = supervised.wait_for(r"^family +\| pid=(\d+) kid=(\d+)")
    pids = [supervised.pid_of("alpha"), supervised.pid_of("stubborn"), *map(int, family.groups())]

    supervised.proc.send_signal(signal.SIGTERM)

    assert supervised.proc.wait(timeout=10) == 0
    # stubborn ignored SIGTERM and was killed after the 1 s grace period.
    supervised.wait_for(r"^stack +\| killing what is left")
    supervised.wait_for(r"^stack +\| all processes stopped")
    assert [pid for pid in pids if _alive(pid)] == []


def test_children_do_not_outlive_a_supervisor_killed_with_sigkill(
    supervised: Supervised,
) -> None:
    alpha = supervised.pid_of("alpha")

    supervised.proc.kill()

    deadline = time.monotonic() + 5
    while _alive(alpha) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(alpha)


def test_run_once_prefixes_the_output_and_returns_the_exit_code() -> None:
    out = io.BytesIO()
    code = (
        "print('one'); print('two', flush=True); print('no newline', end=''); raise SystemExit(3)"
    )

    assert run_once(Program("seed", [sys.executable, "-c", code]), out=out) == 3

    assert out.getvalue().decode().splitlines() == [
        "seed  | one",
        "seed  | two",
        "seed  | no newline",
    ]


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
