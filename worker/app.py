"""The Celery application (`celery -A worker.app ...`)."""

import logging
import sys
from typing import Any

from celery import Celery
from celery.signals import beat_init, setup_logging

import logs

app = Celery("wallet")
app.config_from_object("celeryconfig")
# Registers the tasks and the worker signal handlers.
app.conf.imports = ("worker.tasks", "worker.observe")


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
