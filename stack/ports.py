"""TCP port helpers shared by the embedded servers and the stack's pre-flight checks."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

LOCALHOST = "127.0.0.1"


def port_is_free(port: int, host: str = LOCALHOST) -> bool:
    """True if a server could listen on `host:port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR too, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(preferred: int, host: str = LOCALHOST) -> int:
    """`preferred` if nothing listens on it, else a port the kernel picks."""
    if port_is_free(preferred, host):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def accepts_connections(port: int, host: str = LOCALHOST, timeout: float = 0.5) -> bool:
    """True if something accepts a TCP connection on `host:port`."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
) -> None:
    """Poll `condition()` until it is true; raise TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
