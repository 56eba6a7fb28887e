"""The Celery application (`celery -A worker.app ...`)."""

import logging
from typing import Any

from celery import Celery
from celery.signals import after_setup_logger

app = Celery("wallet")
app.config_from_object("celeryconfig")
# Registers the tasks and the worker signal handlers.
app.conf.imports = ("worker.tasks", "worker.observe")


@after_setup_logger.connect
def _one_line_per_event_not_per_task(**_: Any) -> None:
    """Received/succeeded lines for every doorbell (and beat's every tick) would drown
    the lines that matter; failures and warnings still show."""
    for name in ("celery.app.trace", "celery.worker.strategy", "celery.beat"):
        logging.getLogger(name).setLevel(logging.WARNING)
