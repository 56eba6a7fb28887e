"""The Celery application (`celery -A worker.app ...`)."""

import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Concatenate, Literal, ParamSpec, Protocol, TypeVar, overload

from celery import Celery, signals

import logs
import resources

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
F = TypeVar("F", bound=Callable[..., Any])

# Celery has no type hints: what the service uses of it is typed here, once, and the
# rest of the service sees these types instead of Any.


class Task(Protocol[P, R_co]):
    """A task: called in this process (as the tests do), or enqueued for a worker."""

    name: str

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    def apply_async(self, args: Sequence[object] | None = None, **options: Any) -> object: ...


class BoundTask(Protocol):
    """The task a `bind=True` task function receives first: its own retries."""

    def retry(
        self, *, countdown: float | None = None, exc: BaseException | None = None
    ) -> Exception:
        """Raises Celery's Retry (or returns it, with throw=False): `raise task.retry(...)`."""
        ...


class Signal(Protocol):
    def connect(self, receiver: F) -> F:
        """`@signal.connect`: the receiver is connected and returned unchanged."""
        ...


class Inspect(Protocol):
    def active_queues(self) -> dict[str, list[dict[str, Any]]] | None: ...


class Control(Protocol):
    def inspect(self, timeout: float) -> Inspect: ...


class Conf(Protocol):
    imports: Sequence[str]
    beat_schedule: Mapping[str, Mapping[str, Any]]


class CeleryApp(Protocol):
    conf: Conf
    control: Control

    def config_from_object(self, obj: str) -> None: ...

    @overload
    def task(
        self, *, bind: Literal[True], **options: Any
    ) -> Callable[[Callable[Concatenate[BoundTask, P], R]], Task[P, R]]: ...

    @overload
    def task(
        self, *, bind: Literal[False] = False, **options: Any
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...


app: CeleryApp = Celery("wallet")
app.config_from_object("celeryconfig")
# Registers the tasks and the worker signal handlers.
app.conf.imports = ("worker.tasks", "worker.observe", "worker.expiry")


# The signals this service connects to.
setup_logging: Signal = signals.setup_logging
beat_init: Signal = signals.beat_init
worker_ready: Signal = signals.worker_ready
worker_process_init: Signal = signals.worker_process_init


@worker_process_init.connect
def _own_resources(**_: Any) -> None:
    """A prefork child builds its own engines, clients and pools (resources.py)."""
    resources.start()


@worker_ready.connect
def _freeze_startup_objects(**_: Any) -> None:
    """The worker is up: what it built leaves the garbage collector's full walks."""
    resources.freeze_startup_objects()


@setup_logging.connect
def _json_lines(loglevel: Any = logging.INFO, **_: Any) -> None:
    """Workers and beat log JSON lines like every process (logs.py); with this receiver
    connected Celery leaves logging to us.

    Received/succeeded lines for every doorbell (and beat's every tick) would drown
    the lines that matter; failures and warnings still show, and each drain batch
    logs a line of its own (worker.observe)."""
    logs.configure(_process_name(), loglevel or logging.INFO)
    for name in ("celery.app.trace", "celery.worker.strategy", "celery.beat"):
        logging.getLogger(name).setLevel(logging.WARNING)


@beat_init.connect
def _say_beat_started(**_: Any) -> None:
    logging.getLogger("worker.beat").info(
        "beat started", extra={"schedule": sorted(app.conf.beat_schedule)}
    )


def _process_name() -> str:
    """The stack's name for this Celery process: the worker's node name (partitions-0,
    callbacks), beat or flower (WALLET_PROCESS_NAME wins, if set)."""
    argv = sys.argv
    if "-n" in argv[:-1]:
        return argv[argv.index("-n") + 1].split("@", 1)[0]
    return next((name for name in ("beat", "flower") if name in argv), "celery")


# A celery command (worker, beat, flower) logs JSON from its first line: Celery warns
# (as root, a SecurityWarning) before its logging set-up, and Flower never runs it
# (it is started with --logging=none, so tornado adds no handler of its own either).
if sys.argv and sys.argv[0].endswith("celery"):
    logs.configure(_process_name())
