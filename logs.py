"""JSON lines on stderr, the same fields from every process of the service.

Each line has `ts` (RFC 3339, UTC), `level`, `process` (the stack's name for it: api,
partitions-0, callbacks, beat, flower, migrate, seed, stack), `event` (the message),
`logger`, and `request_id` / `transaction_id` where there is one; anything passed as
`extra=` becomes a field of its own. python-json-logger does the encoding (extras,
exceptions, datetimes, UUIDs).

A request id reaches log lines in two ways: the API sets it for the request's thread
(`request_context`), and code that knows it (a drain logging the commands it applied)
passes it as `extra`.

In the API, lines are written by one thread of their own (`write_in_background`): a
request thread only queues its record. Writing to stderr releases the GIL while the
handler's lock is held, so with a line per request the request threads queued on that
lock behind each write, and on the GIL behind each other (`python -m bench.api_cpu`
measured it: README, Performance).
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import logging.handlers
import os
import queue
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

PROCESS_ENV = "WALLET_PROCESS_NAME"
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "wallet_request_id", default=None
)
_transaction_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "wallet_transaction_id", default=None
)


class WalletJsonFormatter(JsonFormatter):
    """One JSON object per record, with the service's field names first."""

    def __init__(self, process: str) -> None:
        # The fields set below are not repeated from the record's attributes.
        reserved = [*RESERVED_ATTRS, "message", "request_id", "transaction_id"]
        super().__init__(json_ensure_ascii=False, reserved_attrs=reserved)
        self.process_name = process

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["ts"] = _rfc3339(record.created)
        log_data["level"] = record.levelname.lower()
        log_data["process"] = self.process_name
        log_data["event"] = record.message
        log_data["logger"] = record.name
        log_data["request_id"] = getattr(record, "request_id", None) or _request_id.get()
        log_data["transaction_id"] = (
            getattr(record, "transaction_id", None) or _transaction_id.get()
        )
        super().add_fields(log_data, record, message_dict)
        log_data.pop("message", None)  # the formatter's default field: it is `event` here


def configure(process: str | None = None, level: int | str = logging.INFO) -> None:
    """Send every logger of this process to stderr as JSON lines (replaces other handlers)."""
    name = os.environ.get(PROCESS_ENV) or process or "wallet"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(WalletJsonFormatter(name))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Warnings (a deprecation, Celery's superuser notice) become records, not raw text,
    # and so does a crash: a one-shot (migrate, seed) that dies says why in JSON.
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def _log_uncaught(kind: type[BaseException], error: BaseException, trace: Any) -> None:
    logging.getLogger("uncaught").critical("uncaught exception", exc_info=(kind, error, trace))


def dict_config(process: str) -> dict[str, Any]:
    """The same set-up as a logging.config dictionary (gunicorn's `logconfig_dict`)."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": WalletJsonFormatter, "process": process}},
        "handlers": {"stderr": handler},
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            # gunicorn's own loggers do not propagate; each gets the JSON handler.
            "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        },
    }


class _ContextQueueHandler(logging.handlers.QueueHandler):
    """Queues records for the writer thread, with what only this thread knows: the
    request and transaction ids of its context, and the message with its arguments."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.request_id = getattr(record, "request_id", None) or _request_id.get()
        record.transaction_id = getattr(record, "transaction_id", None) or _transaction_id.get()
        record.msg, record.args = record.getMessage(), None
        return record


_listeners: list[logging.handlers.QueueListener] = []


def write_in_background() -> None:
    """From now on this process's log lines are formatted and written by one thread per
    handler; the loggers only queue them (the order of lines is kept). For a process
    with many threads that log (the API: gunicorn's `post_worker_init`, after the fork,
    since threads do not survive one). `flush_background()` writes what is queued."""
    if _listeners:
        return
    replaced: dict[logging.Handler, logging.Handler] = {}
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        if not isinstance(logger, logging.Logger):
            continue  # a placeholder: no handlers of its own
        for handler in list(logger.handlers):
            if isinstance(handler, _ContextQueueHandler):
                continue
            if handler not in replaced:
                lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
                replaced[handler] = _ContextQueueHandler(lines)
                listener = logging.handlers.QueueListener(lines, handler)
                listener.start()
                _listeners.append(listener)
            logger.removeHandler(handler)
            logger.addHandler(replaced[handler])
    atexit.register(flush_background)


def flush_background() -> None:
    """Write every queued line and stop the writer threads (at exit)."""
    while _listeners:
        _listeners.pop().stop()


@contextmanager
def request_context(request_id: str | None) -> Iterator[None]:
    """Within the block, this thread's log lines carry the request id."""
    token = _request_id.set(request_id)
    transaction = _transaction_id.set(None)
    try:
        yield
    finally:
        _transaction_id.reset(transaction)
        _request_id.reset(token)


def bind_request_id(request_id: str | None) -> None:
    """This thread's log lines carry the request id (until its request_context ends)."""
    _request_id.set(request_id)


def set_transaction_id(transaction_id: str | None) -> None:
    """The transaction the current request is about, once it is known."""
    _transaction_id.set(transaction_id)


def _rfc3339(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
