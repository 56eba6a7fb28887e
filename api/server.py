"""gunicorn's gthread worker, with the HTTP edge the service promises (gunicorn.conf.py).

Two things gunicorn decides on its own, before or around the application, that the
service needs otherwise:

- Errors gunicorn answers itself (a malformed request line or header, framing it
  refuses, a request line or headers too large: 400, 414, 431) are HTML pages; here
  they are problem+json like every other error, with an X-Request-Id.
- `Expect: 100-continue` is answered the moment the request is parsed, before the
  application has looked at the key or the size: a client with a bad key uploads
  megabytes before it learns 401. Here `100 Continue` is sent only when the
  application starts reading the body, which it does after authentication.

And one cost it adds for nothing: with a logging configuration (ours: logs.dict_config)
gunicorn builds the access log's atoms for every request even when its access logger
is quiet. `QuietAccessLogger` builds them only when GUNICORN_ACCESSLOG asks for them.

And one thing the application needs from it: a way to close the connection after the
answer (api.edge asks when a body it did not read is too large to drain).
"""

from __future__ import annotations

import json
import uuid
from http import HTTPStatus
from typing import Any

from gunicorn import glogging, util
from gunicorn.workers.gthread import ThreadWorker as GunicornThreadWorker

CODES = {
    400: "bad_request",
    403: "forbidden",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "request_header_fields_too_large",
    500: "internal_error",
    501: "not_implemented",
}


class ServerInput:
    """The request body as gunicorn reads it, with the two hooks api.edge uses."""

    def __init__(self, request: Any, sock: Any, expects_continue: bool) -> None:
        self._request = request
        self._body = request.body
        self._sock = sock
        self.continue_pending = expects_continue

    def read(self, size: int = -1) -> bytes:
        if self.continue_pending:
            # The application wants the body: now the client may send it.
            self.continue_pending = False
            self._sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        data: bytes = self._body.read(size)
        return data

    def close_connection(self) -> None:
        """Close the connection after this request's answer (and say so in it)."""
        self._request.must_close = True

    def __getattr__(self, name: str) -> Any:
        # gunicorn's own uses of the body (draining it, `failed`) reach the real one.
        return getattr(self._body, name)


class ThreadWorker(GunicornThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker: problem+json errors, 100 Continue on demand."""

    def init_process(self) -> None:
        # gunicorn writes every error page it makes itself through util.write_error.
        util.write_error = write_problem
        super().init_process()

    def handle_request(self, req: Any, conn: Any) -> Any:
        expects_continue = bool(getattr(req, "_expected_100_continue", False))
        req._expected_100_continue = False  # gunicorn would send it before the app runs
        if req.body is not None:
            req.body = ServerInput(req, conn.sock, expects_continue)
        return super().handle_request(req, conn)


def write_problem(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's error page, as problem+json; the connection closes after it."""
    try:
        title = HTTPStatus(status_int).phrase
    except ValueError:
        title = reason
    body = json.dumps(
        {
            "type": f"/problems/{CODES.get(status_int, 'bad_request')}",
            "title": title,
            "status": status_int,
            "detail": mesg or title,
            "code": CODES.get(status_int, "bad_request"),
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status_int} {title}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/problem+json\r\n"
        f"Content-Length: {len(body) + 1}\r\n"
        f"X-Request-Id: {uuid.uuid4().hex}\r\n"
        "\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body + b"\n")


class QuietAccessLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger, whose access log is on only when `accesslog` is set: the
    application logs each request itself (api.observability)."""

    def _compute_access_log_enabled(self) -> bool:
        return bool(self.cfg.accesslog)
