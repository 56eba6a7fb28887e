"""One log line and two metrics per HTTP request, and the request id for everything else.

`install(app)` wraps the WSGI application outside the HTTP edge (api/edge.py), so that
the answers the edge gives itself (a 413, a control character's 400) are counted and
logged too. A Flask hook names the route by its URL rule (`/v1/transactions/<uuid:tx_id>`,
never the raw path: one series per endpoint, not per transaction) and puts the request
id into this thread's log context. The cost per request: a clock read, two label
lookups in prometheus-client and one JSON log line.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, has_request_context, request
from prometheus_client import Counter, Histogram
from werkzeug.wsgi import ClosingIterator

import logs
import telemetry  # noqa: F401 - before any metric is created
from api.edge import ENVIRON_REQUEST_ID

log = logging.getLogger("api.requests")

ENVIRON_ROUTE = "wallet.route"
ENVIRON_TRANSACTION = "wallet.transaction_id"
# A request no URL rule matched (a 404, or an answer of the edge before routing).
UNMATCHED = "unmatched"
LOCATION = re.compile(r"/v1/transactions/([0-9a-f-]{36})$")
# View arguments that name a transaction.
TRANSACTION_ARGS = ("tx_id", "hold_id", "transaction_id")

HTTP_REQUESTS = Counter(
    "wallet_http_requests_total",
    "HTTP requests answered, by route (the URL rule), method and status",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "wallet_http_request_duration_seconds",
    "From the request reaching the application to its answer, by route and method",
    ["route", "method"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def install(app: Flask) -> None:
    """Observe every request of `app` (call after the edge is installed)."""
    app.before_request(_name_the_request)
    app.wsgi_app = RequestObserver(app.wsgi_app)  # type: ignore[method-assign]


def request_id() -> str | None:
    """The X-Request-Id of the request being served, if any."""
    if not has_request_context():
        return None
    value: str | None = request.environ.get(ENVIRON_REQUEST_ID)
    return value


class RequestObserver:
    """WSGI middleware: times the request and, once its answer is sent, logs and counts it."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        answer: dict[str, Any] = {}

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer["status"] = status.split(" ", 1)[0]
            answer["location"] = next((v for k, v in headers if k.lower() == "location"), None)
            return start_response(status, headers, exc_info)

        with logs.request_context(None):
            body = self.app(environ, start)
        return ClosingIterator(body, lambda: _observed(environ, answer, started))


def _name_the_request() -> None:
    """Before the view: the route's name and the request id, for the log and metrics."""
    environ = request.environ
    environ[ENVIRON_ROUTE] = request.url_rule.rule if request.url_rule else UNMATCHED
    for name in TRANSACTION_ARGS:
        if request.view_args and name in request.view_args:
            environ[ENVIRON_TRANSACTION] = str(request.view_args[name])
            logs.set_transaction_id(environ[ENVIRON_TRANSACTION])
            break
    # The observer's context is reset after the view returns; this sets its value.
    logs.bind_request_id(environ.get(ENVIRON_REQUEST_ID))


def _observed(environ: dict[str, Any], answer: dict[str, Any], started: float) -> None:
    elapsed = time.perf_counter() - started
    route = environ.get(ENVIRON_ROUTE, UNMATCHED)
    method = environ.get("REQUEST_METHOD", "GET")
    status = answer.get("status", "500")
    HTTP_REQUESTS.labels(route, method, status).inc()
    HTTP_LATENCY.labels(route, method).observe(elapsed)
    transaction_id = environ.get(ENVIRON_TRANSACTION)
    if transaction_id is None and answer.get("location"):
        found = LOCATION.search(answer["location"])
        transaction_id = found.group(1) if found else None
    log.info(
        "request",
        extra={
            "request_id": environ.get(ENVIRON_REQUEST_ID),
            "transaction_id": transaction_id,
            "method": method,
            "route": route,
            "path": environ.get("PATH_INFO", ""),
            "status": int(status),
            "duration_ms": round(elapsed * 1000, 2),
        },
    )
