"""A small, cheap HTTP/1.1 load generator on asyncio streams.

Requests are pre-encoded bytes sent over keep-alive connections; a response is read as
a status line, headers and a Content-Length body, with nothing parsed but the status
and, when asked, the transaction ids. That keeps the generator's own CPU far below the
service's on the same two cores (the benchmark prints it).

Two shapes of load:
- closed loop: N connections, each sending its next request as soon as the previous
  answer arrives (throughput);
- open loop: requests scheduled at a fixed rate, each timed from its *scheduled*
  send, so a slow service cannot hide its queueing (latency without coordinated
  omission).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

ID = re.compile(rb'"id":\s*"([0-9a-f-]{36})"')

RequestFactory = Callable[[int], bytes]


@dataclass
class Result:
    """What one run sent and got back."""

    started: float  # wall clock (time.time) of the first send
    finished: float
    statuses: dict[int, int] = field(default_factory=dict)
    # (scheduled or actual send time, transaction ids in the answer) for 200/202 answers
    accepted: list[tuple[float, list[str]]] = field(default_factory=list)
    # Seconds from (scheduled) send to the answer, for each 200/202 answer: the latency
    # of a service whose answer is the outcome (the synchronous reference).
    answered: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0  # the generator's own CPU for the run

    @property
    def seconds(self) -> float:
        return self.finished - self.started

    def count(self, status: int) -> int:
        return self.statuses.get(status, 0)


def encode_post(host: str, path: str, key: str, body: bytes, idempotency_key: str | None) -> bytes:
    headers = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        f"Authorization: Bearer {key}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if idempotency_key is not None:
        headers.append(f"Idempotency-Key: {idempotency_key}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


def closed_loop(
    host: str, port: int, make: RequestFactory, connections: int, seconds: float, ids: bool = True
) -> Result:
    return asyncio.run(_closed(host, port, make, connections, seconds, ids))


def open_loop(
    host: str, port: int, make: RequestFactory, rate: float, seconds: float, connections: int = 64
) -> Result:
    return asyncio.run(_open(host, port, make, rate, seconds, connections))


async def _closed(
    host: str, port: int, make: RequestFactory, connections: int, seconds: float, ids: bool
) -> Result:
    counter = itertools.count()
    cpu = time.process_time()
    result = Result(started=time.time(), finished=0.0)
    deadline = time.monotonic() + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.monotonic() < deadline:
                sent = time.time()
                writer.write(make(next(counter)))
                status, body = await _response(reader)
                _record(result, status, body, sent, ids)
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    result.finished = time.time()
    result.cpu_seconds = time.process_time() - cpu
    return result


async def _open(
    host: str, port: int, make: RequestFactory, rate: float, seconds: float, connections: int
) -> Result:
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    cpu = time.process_time()
    result = Result(started=time.time(), finished=0.0)

    async def schedule() -> None:
        start = time.time()
        for n in range(int(rate * seconds)):
            due = start + n / rate
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait((n, due))
        for _ in range(connections):
            queue.put_nowait(None)

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (item := await queue.get()) is not None:
                n, due = item
                writer.write(make(n))
                status, body = await _response(reader)
                _record(result, status, body, due, True)
        finally:
            writer.close()

    await asyncio.gather(schedule(), *(client() for _ in range(connections)))
    result.finished = time.time()
    result.cpu_seconds = time.process_time() - cpu
    return result


def _record(result: Result, status: int, body: bytes, sent: float, ids: bool) -> None:
    result.statuses[status] = result.statuses.get(status, 0) + 1
    if status in (200, 202):
        found = [m.decode() for m in ID.findall(body)] if ids else []
        result.accepted.append((sent, found))
        result.answered.append(time.time() - sent)


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
            break
    body = await reader.readexactly(length) if length else b""
    return status, body
