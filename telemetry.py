"""prometheus-client set-up shared by every process (API and workers).

In multiprocess mode each process writes `<type>_<identifier>.db` files into
PROMETHEUS_MULTIPROC_DIR. The identifier is the pid by default; in docker-compose the
api and worker containers share that folder and both number their processes from 1,
so the hostname joins the pid to keep every process's files its own.

prometheus-client asks for the identifier on every sample it records, while it holds
its one lock for the whole process. `socket.gethostname()` is a system call that
releases the GIL: with 32 request threads, the thread holding that lock then waited
for the GIL behind the others, and every request's metrics waited behind it (5 ms per
increment, measured by `python -m bench.api_cpu --profile`). The hostname is read once
per process; the pid is read each time (a fork changes it, and that is what
prometheus-client checks for).
"""

from __future__ import annotations

import os
import socket

from prometheus_client import values

_HOSTNAME = socket.gethostname()


def _identifier() -> str:
    return f"{_HOSTNAME}-{os.getpid()}"


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # prometheus-client leaves MultiProcessValue unannotated.
    values.ValueClass = values.MultiProcessValue(process_identifier=_identifier)  # type: ignore[no-untyped-call]
