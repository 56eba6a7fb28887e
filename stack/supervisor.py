"""Run named child processes like foreman: prefixed output, restarts, an orderly stop.

Each child runs in its own session (its own process group). Ctrl-C in a terminal
therefore reaches only the supervisor, which stops the children in order: SIGTERM to
each child's group (which reaches gunicorn's workers too), SIGKILL to what is left after
a grace period. Had the children shared our group, every one of them would get the
SIGINT at the same moment as we do, and their exits would race our decision not to
restart them. If the supervisor itself dies (even by SIGKILL), Linux sends each child
SIGTERM (PR_SET_PDEATHSIG), so nothing is left running and holding the ports.

A child that exits while the supervisor is not stopping is restarted after a short
backoff (0.5 s, doubling while it keeps crashing soon after start, at most 10 s).

Single-threaded on purpose: one loop reads every child's output with `selectors` and
polls for exits, so forking a child never happens while another thread holds a lock.
"""

from __future__ import annotations

import ctypes
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, BinaryIO

SUPERVISOR_NAME = "stack"
MIN_RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 10.0
# A child that ran this long before exiting is restarted after MIN_RESTART_DELAY again.
STABLE_AFTER = 10.0
TICK = 0.1
# Stop requests this close to the first are the same request. `kill -TERM -- -<pgid>` of
# `make run` (the README's stop) reaches us directly and, a fraction of a millisecond
# later, once more through make, which passes a SIGTERM on to its child. Only a request
# this long after the first (Ctrl-C pressed again while the stop takes its time) means
# "SIGKILL now".
REPEAT_AFTER = 1.0


@dataclass(frozen=True)
class Program:
    """A child process to run: its name (the output prefix), command line and setting."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None


def supervise(
    programs: Sequence[Program],
    *,
    stop_timeout: float = 10.0,
    out: BinaryIO | None = None,
    ready_check: Callable[[], bool] | None = None,
    on_ready: Callable[[], None] | None = None,
) -> int:
    """Run `programs` until SIGINT, SIGTERM or SIGHUP, restarting any that exits.

    Then stop them all (SIGTERM, SIGKILL after `stop_timeout` seconds or at a signal
    REPEAT_AFTER seconds or more after the first) and return 0. `on_ready` is called
    once, when `ready_check()` first holds.
    """
    output = Output(out or sys.stdout.buffer, [p.name for p in programs])
    supervisor = _Supervisor(programs, output, stop_timeout, ready_check, on_ready)
    with _signals_call(supervisor.request_stop):
        supervisor.run()
    return 0


def run_once(program: Program, out: BinaryIO | None = None) -> int:
    """Run `program` to completion with prefixed output; return its exit code.

    It stays in our process group, so a Ctrl-C reaches it as it reaches us.
    """
    output = Output(out or sys.stdout.buffer, [program.name])
    proc = _spawn(program, new_session=False)
    assert proc.stdout is not None
    for line in proc.stdout:
        output.write(program.name, line)
    return proc.wait()


class Output:
    """Writes children's lines with an aligned (and, on a terminal, coloured) name prefix."""

    _COLOURS = (36, 33, 32, 35, 34, 31, 96, 93, 92, 95, 94, 91)

    def __init__(self, stream: BinaryIO, names: Sequence[str]) -> None:
        self._stream = stream
        width = max(len(name) for name in [*names, SUPERVISOR_NAME])
        colour = _isatty(stream) and "NO_COLOR" not in os.environ
        self._prefixes: dict[str, bytes] = {}
        for i, name in enumerate([SUPERVISOR_NAME, *names]):
            text = f"{name:<{width}} | "
            if colour:
                text = f"\033[{self._COLOURS[i % len(self._COLOURS)]}m{text}\033[0m"
            self._prefixes[name] = text.encode()

    def write(self, name: str, line: bytes) -> None:
        if not line.endswith(b"\n"):
            line += b"\n"
        try:
            self._stream.write(self._prefixes[name] + line)
            self._stream.flush()
        except (OSError, ValueError):
            pass  # our own stdout is gone (a closed pipe): keep supervising regardless

    def say(self, message: str, level: str = "info") -> None:
        """A line from the supervisor itself: JSON, like every process's (logs.py)."""
        self.write(SUPERVISOR_NAME, json_line(message, level).encode())


@dataclass
class _Child:
    program: Program
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    delay: float = 0.0  # the last restart delay, doubled while the child keeps crashing
    restart_at: float | None = None


@dataclass
class _Stream:
    """One child's output pipe; outlives the child until EOF (grandchildren may hold it)."""

    name: str
    pipe: IO[bytes]
    pending: bytes = b""


@dataclass
class _StopRequests:
    """The stop requests received: when the first came, and whether one asked to kill."""

    first_at: float | None = None
    kill_now: bool = False

    def add(self, now: float) -> None:
        if self.first_at is None:
            self.first_at = now
        elif now - self.first_at >= REPEAT_AFTER:  # see REPEAT_AFTER for why not any repeat
            self.kill_now = True


class _Supervisor:
    def __init__(
        self,
        programs: Sequence[Program],
        output: Output,
        stop_timeout: float,
        ready_check: Callable[[], bool] | None,
        on_ready: Callable[[], None] | None,
    ) -> None:
        self._children = [_Child(program) for program in programs]
        self._output = output
        self._stop_timeout = stop_timeout
        self._ready_check = ready_check
        self._on_ready = on_ready
        self._next_ready_check = 0.0
        self._selector = selectors.DefaultSelector()
        self._stop_requests = _StopRequests()
        self._stop_deadline: float | None = None
        self._killed = False

    def request_stop(self) -> None:
        # Called from a signal handler: only record it, the loop acts on it.
        self._stop_requests.add(time.monotonic())

    def run(self) -> None:
        for child in self._children:
            self._start(child)
        while True:
            self._read_output(TICK)
            now = time.monotonic()
            self._handle_stop_requests(now)
            for child in self._children:
                self._check(child, now)
            if self._stop_deadline is not None and not self._any_running():
                break
            self._maybe_announce(now)
        self._drain_output(deadline=time.monotonic() + 1.0)
        self._output.say("all processes stopped")

    # -- starting and restarting ---------------------------------------------------------

    def _start(self, child: _Child) -> None:
        child.restart_at = None
        child.started_at = time.monotonic()
        try:
            child.proc = _spawn(child.program, new_session=True)
        except OSError as error:  # e.g. the executable does not exist
            self._output.say(f"cannot start {child.program.name}: {error}")
            self._schedule_restart(child, child.started_at)
            return
        pipe = child.proc.stdout
        assert pipe is not None
        os.set_blocking(pipe.fileno(), False)
        self._selector.register(pipe, selectors.EVENT_READ, _Stream(child.program.name, pipe))

    def _check(self, child: _Child, now: float) -> None:
        if child.proc is None:
            if child.restart_at is not None and now >= child.restart_at and not self._stopping:
                self._start(child)
            return
        code = child.proc.poll()
        if code is None:
            return
        # Whatever the child left in its group (gunicorn workers after a SIGKILLed master)
        # goes with it, so a restart never finds the port still taken.
        _signal_group(child.proc.pid, signal.SIGKILL)
        child.proc = None
        name = child.program.name
        if self._stopping:
            self._output.say(f"{name} stopped ({_describe(code)})")
            return
        self._schedule_restart(child, now)
        self._output.say(f"{name} exited ({_describe(code)}); restarting in {child.delay:.1f} s")

    def _schedule_restart(self, child: _Child, now: float) -> None:
        crashed_early = now - child.started_at < STABLE_AFTER
        child.delay = (
            min(max(child.delay * 2, MIN_RESTART_DELAY), MAX_RESTART_DELAY)
            if crashed_early
            else MIN_RESTART_DELAY
        )
        child.restart_at = now + child.delay

    # -- stopping ------------------------------------------------------------------------

    @property
    def _stopping(self) -> bool:
        return self._stop_deadline is not None

    def _handle_stop_requests(self, now: float) -> None:
        if self._stop_requests.first_at is not None and not self._stopping:
            self._output.say(f"stopping (SIGTERM, then SIGKILL after {self._stop_timeout:g} s)")
            self._stop_deadline = now + self._stop_timeout
            self._signal_all(signal.SIGTERM)
        overdue = self._stop_deadline is not None and now >= self._stop_deadline
        if (overdue or self._stop_requests.kill_now) and not self._killed:
            self._output.say("killing what is left (SIGKILL)")
            self._killed = True
            self._signal_all(signal.SIGKILL)

    def _signal_all(self, sig: signal.Signals) -> None:
        for child in self._children:
            if child.proc is not None:
                _signal_group(child.proc.pid, sig)

    def _any_running(self) -> bool:
        return any(child.proc is not None for child in self._children)

    # -- output --------------------------------------------------------------------------

    def _read_output(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            stream: _Stream = key.data
            try:
                data = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if data:
                self._emit(stream, stream.pending + data)
                continue
            if stream.pending:  # the child ended without a final newline
                self._output.write(stream.name, stream.pending)
            self._selector.unregister(stream.pipe)
            stream.pipe.close()

    def _emit(self, stream: _Stream, data: bytes) -> None:
        *complete, stream.pending = data.split(b"\n")
        for line in complete:
            self._output.write(stream.name, line)

    def _drain_output(self, deadline: float) -> None:
        while self._selector.get_map() and time.monotonic() < deadline:
            self._read_output(TICK)

    def _maybe_announce(self, now: float) -> None:
        if self._on_ready is None or self._stopping or now < self._next_ready_check:
            return
        self._next_ready_check = now + 0.5
        if self._ready_check is None or self._ready_check():
            self._on_ready()
            self._on_ready = None


def json_line(message: str, level: str = "info") -> str:
    """The supervisor's own log line, with the fields of logs.py (standard library only:
    the supervisor runs before, and without, the service's dependencies)."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    record = {"ts": now, "level": level, "process": SUPERVISOR_NAME, "event": message}
    return json.dumps({**record, "request_id": None, "transaction_id": None})


def _spawn(program: Program, *, new_session: bool) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(program.argv),
        env=dict(program.env) if program.env is not None else None,
        cwd=program.cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=new_session,
        preexec_fn=_die_with_parent() if new_session else None,
    )


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when the supervisor dies."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    parent = os.getpid()

    def hook() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the supervisor died before the request took effect
            os._exit(1)

    return hook


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # The child leads its own session, so its process group id is its pid.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


@contextmanager
def _signals_call(handler: Callable[[], None]) -> Iterator[None]:
    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, lambda *_: handler()) for sig in stop_signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _isatty(stream: BinaryIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
