"""A TCP proxy that a test can cut: the stack's database link, made breakable.

While cut, every open connection is closed and new ones are closed as soon as they are
accepted: to the service, exactly a database that went away.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            self.up = False
            sockets, self._open = self._open, set()
        for sock in sockets:
            _close(sock)

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self._closed = True
        self.cut()
        _close(self.listener)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                _close(sock)
            with self._lock:
                self._open -= {source, sink}


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class ProxyProcess:
    """The proxy in a process of its own, so that a test's client threads never starve
    the stack's database link. Controlled over a local socket: cut, restore."""

    def __init__(self, target_host: str, target_port: int) -> None:
        import subprocess
        import sys

        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.tcp_proxy", target_host, str(target_port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port, self._control = (int(x) for x in self.process.stdout.readline().split())

    def cut(self) -> None:
        self._send("cut")

    def restore(self) -> None:
        self._send("restore")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def _send(self, command: str) -> None:
        with socket.create_connection(("127.0.0.1", self._control), timeout=10) as conn:
            conn.sendall(command.encode() + b"\n")
            assert conn.makefile().readline().strip() == "ok"


def main(target_host: str, target_port: str) -> None:
    proxy = TcpProxy(target_host, int(target_port))
    control = socket.create_server(("127.0.0.1", 0))
    print(proxy.port, control.getsockname()[1], flush=True)
    while True:
        conn, _ = control.accept()
        with conn, conn.makefile("rw") as stream:
            command = stream.readline().strip()
            {"cut": proxy.cut, "restore": proxy.restore}[command]()
            stream.write("ok\n")


if __name__ == "__main__":
    import sys

    main(*sys.argv[1:3])
