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

from stack.supervisor import REPEAT_AFTER, Program, _StopRequests, run_once

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

# A child whose clean stop takes a while (like a worker finishing its task), under a
# supervisor whose grace period is long enough for it.
SLOW = (
    "import os, signal, sys, time;"
    "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(3), sys.exit(0)));"
    "print(f'pid={os.getpid()}', flush=True); time.sleep(1000)"
)
SLOW_SUPERVISOR = textwrap.dedent(
    """
    import sys
    from stack.supervisor import Program, supervise

    sys.exit(supervise([Program("slow", [sys.executable, "-c", {slow!r}])], stop_timeout=20))
    """
).format(slow=SLOW)


class Supervised:
    """A supervisor process whose output lines a thread collects."""

    def __init__(self, script: str = SUPERVISOR) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script],
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
    yield from _supervised(SUPERVISOR)


@pytest.fixture
def slow_to_stop() -> Iterator[Supervised]:
    yield from _supervised(SLOW_SUPERVISOR)


def _supervised(script: str) -> Iterator[Supervised]:
    running = Supervised(script)
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

    supervised.wait_for(
        r'^stack +\| \{.*"event": "alpha exited \(killed by SIGKILL\); restarting', mark
    )
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
    supervised.wait_for(r'^stack +\| \{.*"event": "killing what is left')
    supervised.wait_for(r'^stack +\| \{.*"event": "all processes stopped"')
    assert [pid for pid in pids if _alive(pid)] == []


def test_stop_requests_close_together_are_one_and_a_later_one_kills() -> None:
    together = _StopRequests()
    together.add(100.0)
    together.add(100.0001)  # make passing on the SIGTERM its process group got
    together.add(100.0 + REPEAT_AFTER * 0.9)
    assert together.first_at == 100.0
    assert not together.kill_now

    later = _StopRequests()
    later.add(100.0)
    later.add(100.0 + REPEAT_AFTER)  # Ctrl-C pressed again
    assert later.kill_now


def test_a_second_sigterm_at_once_is_the_same_clean_stop(slow_to_stop: Supervised) -> None:
    slow_to_stop.pid_of("slow")

    slow_to_stop.proc.send_signal(signal.SIGTERM)
    slow_to_stop.wait_for(r'^stack +\| \{.*"event": "stopping')
    slow_to_stop.proc.send_signal(signal.SIGTERM)

    assert slow_to_stop.proc.wait(timeout=10) == 0
    slow_to_stop.wait_for(r'^stack +\| \{.*"event": "all processes stopped')
    slow_to_stop.wait_for(r'^stack +\| \{.*"event": "slow stopped \(exit code 0\)')
    assert not [line for line in slow_to_stop.lines if "killing what is left" in line]


def test_a_second_sigterm_a_while_later_kills_at_once(slow_to_stop: Supervised) -> None:
    slow = slow_to_stop.pid_of("slow")

    slow_to_stop.proc.send_signal(signal.SIGTERM)
    slow_to_stop.wait_for(r'^stack +\| \{.*"event": "stopping')
    time.sleep(REPEAT_AFTER + 0.1)
    slow_to_stop.proc.send_signal(signal.SIGTERM)

    assert slow_to_stop.proc.wait(timeout=10) == 0
    slow_to_stop.wait_for(r'^stack +\| \{.*"event": "killing what is left \(SIGKILL\)')
    slow_to_stop.wait_for(r'^stack +\| \{.*"event": "slow stopped \(killed by SIGKILL\)')
    assert not _alive(slow)


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
