"""prometheus-client set-up shared by every process (API and workers).

In multiprocess mode each process writes `<type>_<identifier>.db` files into
PROMETHEUS_MULTIPROC_DIR. The identifier is the pid by default; in docker-compose the
api and worker containers share that folder and both number their processes from 1,
so the hostname joins the pid to keep every process's files its own.
"""

from __future__ import annotations

import os
import socket

from prometheus_client import values


def _identifier() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # prometheus-client leaves MultiProcessValue unannotated.
    values.ValueClass = values.MultiProcessValue(process_identifier=_identifier)  # type: ignore[no-untyped-call]
