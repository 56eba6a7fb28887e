"""A real HTTP server on 127.0.0.1 that receives callbacks, for tests.

Its answers are scripted: a list of statuses (or ("redirect", url)) used in order, the
last one repeated. Every request it receives is kept, with headers and raw body.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    answers: list[Any] = field(default_factory=lambda: [200])
    port: int = 0
    address: str = "127.0.0.1"  # or "::1": an IPv6 receiver
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def host(self) -> str:
        address = f"[{self.address}]" if ":" in self.address else self.address
        return f"{address}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}/hooks/wallet"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.received.append(Received(self.path, dict(self.headers), body))
                    index = min(len(receiver.received), len(receiver.answers)) - 1
                    answer = receiver.answers[index]
                    receiver._arrived.notify_all()
                if isinstance(answer, tuple):
                    self.send_response(302)
                    self.send_header("Location", answer[1])
                else:
                    self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server_class = _IPv6Server if ":" in self.address else ThreadingHTTPServer
        self._server = server_class((self.address, self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        with self._lock:
            self._arrived.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def valid_signature(secret: str, request: Received) -> bool:
    """What a receiver does: recompute v1=HMAC-SHA256(secret, "{timestamp}.{body}")."""
    timestamp = request.headers["Wallet-Timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256)
    return hmac.compare_digest(f"v1={expected.hexdigest()}", request.headers["Wallet-Signature"])
