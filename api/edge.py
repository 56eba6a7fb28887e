"""The HTTP edge: what holds for every request before any view runs, and for every answer.

A WSGI middleware around the Flask application (`create_app` installs it), so that it
also covers requests no view is found for:

- every response carries `X-Request-Id` (the client's own if it is sane, else a new one);
- control characters in the path, the query or a header value are refused with a 400
  before anything can carry them to PostgreSQL (which refuses NUL in text: a 500);
- the body is read through one reader (`read_body`) that enforces the 1 MiB limit
  however the body is framed, never truncates, and turns broken framing into a 400;
- a response sent before the body was read leaves the connection usable or closes it:
  a small rest is drained by gunicorn, a large or unknown one closes the connection.

Errors here are rendered as problem+json like every other error (api.errors).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes

from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from api.errors import ApiError, problem_body

MAX_BODY_BYTES = 1024 * 1024
# gunicorn drains at most this much of a body the application left unread before it
# gives the connection up (gunicorn.http.parser._DRAIN_MAX_BYTES); past it, the answer
# must say `Connection: close` itself.
SERVER_DRAINS_BYTES = 64 * 1024
REQUEST_ID_HEADER = "X-Request-Id"
ENVIRON_REQUEST_ID = "wallet.request_id"
ENVIRON_BODY = "wallet.body"
# A client's own request id is echoed only if it is short and plain: it ends up in logs.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
# In header values a horizontal tab is legal (RFC 9110 5.5); every other control is not.
HEADER_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class ServerInput(Protocol):
    """What the server's `wsgi.input` may offer beyond `read` (api.server's worker)."""

    def read(self, size: int = -1) -> bytes: ...


class RequestBody:
    """`wsgi.input` as the application sees it: counted, and never past the limit.

    Reading more than `limit` bytes raises 413 (a body is never cut short and then
    processed); a framing error of the server's reader (a bad chunk size, a missing
    terminator) raises 400. Either way the connection is closed after the answer.
    """

    def __init__(self, environ: dict[str, Any], limit: int = MAX_BODY_BYTES) -> None:
        self._source: ServerInput = environ["wsgi.input"]
        self._limit = limit
        self.length = _content_length(environ)
        self.chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        self.consumed = 0
        self.finished = not self.chunked and not self.length
        self.failed = False

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that is left, within the limit, if negative)."""
        if self.finished:
            return b""
        want = self._limit + 1 - self.consumed if size is None or size < 0 else size
        # Never ask for more than one byte past the limit: that byte is the proof.
        want = max(0, min(want, self._limit + 1 - self.consumed))
        if want == 0:
            self._too_large()
        try:
            data = self._source.read(want)
        except Exception as error:  # the server's chunked or length reader failed
            self.failed = True
            raise BadRequest(f"The request body is malformed: {error}") from None
        self.consumed += len(data)
        if self.consumed > self._limit:
            self._too_large()
        if not data or (self.length is not None and self.consumed >= self.length):
            self.finished = True
        return data

    def read_all(self) -> bytes:
        """The whole body, or 413 if it is over the limit."""
        if self.length is not None and self.length > self._limit:
            self._too_large()
        parts = []
        while not self.finished:
            parts.append(self.read(64 * 1024))
        return b"".join(parts)

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)

    def __iter__(self) -> Any:
        return iter(lambda: self.read(64 * 1024), b"")

    @property
    def keeps_connection_usable(self) -> bool:
        """Whether the connection can serve another request after the answer: the body
        was read to its end, or what is left is small enough for the server to drain."""
        if self.failed:
            return False
        if self.finished:
            return True
        if self.chunked or self.length is None:
            return False
        if getattr(self._source, "continue_pending", False):
            return False  # the client waits for 100 Continue: it will not send the rest
        return self.length - self.consumed <= SERVER_DRAINS_BYTES

    def _too_large(self) -> None:
        self.failed = True
        raise RequestEntityTooLarge()


def read_body(environ: dict[str, Any]) -> bytes:
    """The request body, read once through the edge's reader."""
    body = environ.get(ENVIRON_BODY)
    if body is None:  # not behind HttpEdge (a bare WSGI call): read it the same way
        body = environ[ENVIRON_BODY] = RequestBody(environ)
    cached: bytes | None = environ.get("wallet.body_bytes")
    if cached is None:
        cached = environ["wallet.body_bytes"] = body.read_all()
    return cached


class HttpEdge:
    """The middleware: request ids, control characters, the body reader, honest keep-alive."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request_id = _request_id(environ.get("HTTP_X_REQUEST_ID"))
        environ[ENVIRON_REQUEST_ID] = request_id
        body = environ[ENVIRON_BODY] = RequestBody(environ)
        server_input = environ["wsgi.input"]
        environ["wsgi.input"] = body

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [(k, v) for k, v in headers if k.lower() != "x-request-id"]
            headers.append((REQUEST_ID_HEADER, request_id))
            if not body.keeps_connection_usable:
                _close_after_answer(server_input, headers)
            return start_response(status, headers, exc_info)

        refusal = _refusal(environ)
        if refusal is not None:
            return _problem(refusal, start)
        if body.length is not None and body.length > MAX_BODY_BYTES:
            # Answered before a byte of it is read (or a 100 Continue is sent).
            return _problem(payload_too_large(), start)
        return self.app(environ, start)


def payload_too_large() -> ApiError:
    return ApiError(413, "payload_too_large", "The request body is larger than 1 MiB.")


def _close_after_answer(server_input: Any, headers: list[tuple[str, str]]) -> None:
    """Ask the server to close the connection after this answer, and say so."""
    close = getattr(server_input, "close_connection", None)
    if close is not None:
        close()
    if not any(k.lower() == "connection" for k, _ in headers):
        headers.append(("Connection", "close"))


def _refusal(environ: dict[str, Any]) -> ApiError | None:
    """A 400 for control characters a client put where no control character belongs."""
    path = environ.get("PATH_INFO", "")
    raw_path = path.encode("latin-1", "replace")
    if CONTROL.search(raw_path) or CONTROL.search(unquote_to_bytes(raw_path)):
        return _bad_request("The path contains a control character.")
    query = environ.get("QUERY_STRING", "")
    if query:
        decoded = unquote_to_bytes(query.replace("+", " "))
        if CONTROL.search(query.encode("latin-1", "replace")) or CONTROL.search(decoded):
            return _bad_request("The query string contains a control character.")
    for key, value in environ.items():
        if key.startswith("HTTP_") and isinstance(value, str) and HEADER_CONTROL.search(value):
            name = key[5:].replace("_", "-").title()
            return _bad_request(f"The {name} header contains a control character.")
    return None


def _bad_request(detail: str) -> ApiError:
    return ApiError(400, "bad_request", detail)


def _problem(error: ApiError, start: StartResponse) -> list[bytes]:
    body = problem_body(error)
    headers = [
        ("Content-Type", "application/problem+json"),
        ("Content-Length", str(len(body))),
        *error.headers.items(),
    ]
    start(f"{error.status} {_reason(error.status)}", headers)
    return [body]


def _reason(status: int) -> str:
    from http import HTTPStatus

    return HTTPStatus(status).phrase


def _request_id(offered: str | None) -> str:
    """The client's id if it is sane, else 32 random hex digits (the form of a uuid4's
    hex). A request id correlates log lines and is no secret: it comes from `random`,
    not from os.urandom, whose system call releases the GIL on every request (the
    `random` module is reseeded in each forked gunicorn worker)."""
    if offered and SANE_REQUEST_ID.fullmatch(offered):
        return offered
    return f"{random.getrandbits(128):032x}"


def _content_length(environ: dict[str, Any]) -> int | None:
    value = environ.get("CONTENT_LENGTH")
    if value in (None, ""):
        return None
    try:
        length = int(value)
    except ValueError:
        return None
    return length if length >= 0 else None
