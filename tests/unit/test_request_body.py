"""The one request-body reader: the limit holds whatever the framing, nothing is cut."""

from __future__ import annotations

import io

import pytest
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from api.edge import MAX_BODY_BYTES, RequestBody


class Trickle(io.RawIOBase):
    """A server's chunked reader: hands out at most `step` bytes a read, then EOF."""

    def __init__(self, data: bytes, step: int = 1000, fail_after: int | None = None) -> None:
        self._data = data
        self._step = step
        self._fail_after = fail_after
        self.read_so_far = 0

    def read(self, size: int = -1) -> bytes:
        if self._fail_after is not None and self.read_so_far >= self._fail_after:
            raise ValueError("Invalid chunk size: b'zz'")
        size = self._step if size is None or size < 0 else min(size, self._step)
        chunk = self._data[self.read_so_far : self.read_so_far + size]
        self.read_so_far += len(chunk)
        return chunk


def environ(source, length: int | None = None, chunked: bool = False) -> dict:
    env = {"wsgi.input": source}
    if length is not None:
        env["CONTENT_LENGTH"] = str(length)
    if chunked:
        env["HTTP_TRANSFER_ENCODING"] = "chunked"
    return env


@pytest.mark.parametrize("size", [0, 1, MAX_BODY_BYTES - 1, MAX_BODY_BYTES])
def test_a_chunked_body_up_to_the_limit_is_read_whole(size):
    data = b"a" * size
    assert RequestBody(environ(Trickle(data, 7919), chunked=True)).read_all() == data


@pytest.mark.parametrize("extra", [1, 1000, 5 * MAX_BODY_BYTES])
def test_a_chunked_body_over_the_limit_is_413_never_a_shorter_body(extra):
    body = RequestBody(environ(Trickle(b"a" * (MAX_BODY_BYTES + extra), 65536), chunked=True))
    with pytest.raises(RequestEntityTooLarge):
        body.read_all()
    assert not body.keeps_connection_usable


def test_a_content_length_over_the_limit_is_413_before_reading():
    source = Trickle(b"a" * 10)
    with pytest.raises(RequestEntityTooLarge):
        RequestBody(environ(source, length=MAX_BODY_BYTES + 1)).read_all()
    assert source.read_so_far == 0


def test_a_framing_error_of_the_server_is_400_and_closes():
    body = RequestBody(environ(Trickle(b"a" * 5000, 1000, fail_after=2000), chunked=True))
    with pytest.raises(BadRequest):
        body.read_all()
    assert not body.keeps_connection_usable


def test_an_unread_body_keeps_the_connection_only_if_the_server_can_drain_it():
    small = RequestBody(environ(Trickle(b"a" * 100), length=100))
    assert small.keeps_connection_usable
    large = RequestBody(environ(Trickle(b"a" * 200_000), length=200_000))
    assert not large.keeps_connection_usable
    unread_chunked = RequestBody(environ(Trickle(b"a" * 10), chunked=True))
    assert not unread_chunked.keeps_connection_usable
    read = RequestBody(environ(Trickle(b"a" * 200_000), length=200_000))
    read.read_all()
    assert read.keeps_connection_usable


def test_a_client_waiting_for_100_continue_gets_the_connection_closed():
    source = Trickle(b"a" * 10)
    source.continue_pending = True  # type: ignore[attr-defined]
    assert not RequestBody(environ(source, length=10)).keeps_connection_usable
