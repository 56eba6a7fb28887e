"""`python -m bench.api_cpu`: the API's CPU per single command, and what each piece costs.

The throughput rows of `make bench` are noisy on a shared machine; CPU time per request
is not (much). This drives the real application (`api:create_app()`, its middleware,
views, group commit and doorbell) in-process, without an HTTP server, from 32 threads
like the benchmark's 32 clients, against embedded PostgreSQL and Redis of its own under
.data/api-cpu, and prints the process's CPU time per request (every thread: the request
threads and the group committers), once as it is and once without each piece:

- `access-log`: the JSON line per request (api/observability.py, python-json-logger);
- `metrics`: the request counter and latency histogram (prometheus multiprocess mode);
- `observer`: the whole request observer (log, metrics, the route hook);
- `edge`: the HTTP edge middleware (api/edge.py);
- `intake-lock`: the shared intake advisory lock in the INSERT (db/intake.py);
- `doorbell`: ringing Redis after each commit.

Each "without" run patches the piece out in this process only, to measure it; nothing
here changes the service. The HTTP server's own cost is outside this measurement;
`--server gunicorn` (or `granian`, where it is installed) measures the whole API process
over loopback instead: the server as the stack runs it (2 workers), the benchmark's
loadgen with 32 connections for 10 s, CPU of the server's processes per answer.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".data" / "api-cpu"
PIECES = ("access-log", "metrics", "observer", "edge", "intake-lock", "doorbell")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api_cpu", description=__doc__)
    parser.add_argument("--requests", type=int, default=4000, help="measured requests per run")
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant (median kept)")
    parser.add_argument("--without", default=",".join(PIECES), help="pieces, comma-separated")
    parser.add_argument("--profile", help="write a cProfile of the request threads here")
    parser.add_argument("--server", help="gunicorn or granian: measure over HTTP instead")
    parser.add_argument("--seconds", type=float, default=10.0, help="load per --server run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        return _child(args)
    return _parent(args)


def _parent(args: argparse.Namespace) -> int:
    from stack import embedded

    postgres = embedded.start_postgres(DATA)
    redis_server = embedded.start_redis(DATA)
    try:
        database = postgres.url("wallet_api_cpu")
        embedded.drop_database(database)
        embedded.ensure_database(database)
        env = {
            **os.environ,
            "DATABASE_URL": database,
            "REDIS_URL": redis_server.url(0),
            "WALLET_ADMIN_KEY": "wk_admin_cpu_" + uuid.uuid4().hex,
        }
        for argv in (["-m", "alembic", "upgrade", "head"], ["-m", "db.seed"]):
            subprocess.run(
                [sys.executable, *argv], cwd=ROOT, env=env, check=True, capture_output=True
            )
        if args.server:
            for server in args.server.split(","):
                runs = [_over_http(server, env, args.seconds) for _ in range(args.repeat)]
                cpus = sorted(cpu for cpu, _ in runs)
                rate = statistics.median(rate for _, rate in runs)
                print(
                    f"{server}: {statistics.median(cpus):.0f} us CPU per request, {rate:.0f} "
                    f"req/s (runs: {', '.join(f'{cpu:.0f}' for cpu in cpus)})",
                    flush=True,
                )
            return 0
        variants = ["", *[p for p in args.without.split(",") if p]]
        if args.profile:  # one profiled run; its CPU figure includes cProfile's overhead
            variants, args.repeat = [""], 1
        results: dict[str, list[tuple[float, float]]] = {}
        for _ in range(args.repeat):
            for variant in variants:  # interleaved: drift hits every variant alike
                results.setdefault(variant, []).append(_run_child(args, env, variant))
                print(".", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        base = statistics.median(cpu for cpu, _ in results[""])
        print(f"API CPU per single command, {args.threads} threads, {args.requests} requests")
        print(f"{'variant':<24} {'us/request':>10} {'saves':>6} {'req/s':>6}   CPU of each run")
        for variant in variants:
            cpus = sorted(cpu for cpu, _ in results[variant])
            median = statistics.median(cpus)
            rate = statistics.median(rate for _, rate in results[variant])
            name = f"without {variant}" if variant else "as it is"
            saves = "" if not variant else f"{base - median:.0f}"
            runs = ", ".join(f"{cpu:.0f}" for cpu in cpus)
            print(f"{name:<24} {median:10.0f} {saves:>6} {rate:6.0f}   {runs}")
    finally:
        postgres.stop()
        redis_server.stop()
    return 0


def _over_http(server: str, env: dict[str, str], seconds: float) -> tuple[float, float]:
    """CPU microseconds of the server's processes per 202, and the rate."""
    import psutil
    import requests

    from bench import loadgen
    from stack import launch

    port = launch.any_free_port()
    with tempfile.TemporaryDirectory() as metrics_dir:
        child_env = {
            **env,
            "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "GUNICORN_LOGLEVEL": "warning",
        }
        if server == "gunicorn":
            argv = [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py"]
            argv += ["api:create_app()"]
        elif server == "granian":
            argv = [sys.executable, "-m", "granian", "--interface", "wsgi", "--workers", "2"]
            argv += ["--blocking-threads", "64", "--host", "127.0.0.1", "--port", str(port)]
            argv += ["--log-level", "warning", "--factory", "bench.api_cpu:granian_app"]
        else:
            raise SystemExit(f"unknown server {server!r}")
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"{server} did not start")
                time.sleep(0.3)
            admin = {"Authorization": f"Bearer {env['WALLET_ADMIN_KEY']}"}
            key = requests.post(
                f"{base}/v1/admin/clients",
                json={"name": "cpu", "scopes": ["submit"]},
                headers=admin,
            ).json()["api_key"]
            run = uuid.uuid4().hex[:8]
            hostport = f"127.0.0.1:{port}"

            def make(n: int) -> bytes:
                body = b'{"user_id":"cpu-%d","asset":"GOLD_COINS","amount":1}' % (n % 10_000)
                path = "/v1/transactions/spend"
                return loadgen.encode_post(hostport, path, key, body, f"{run}-{n}")

            loadgen.closed_loop("127.0.0.1", port, make, 32, 2.0, ids=False)  # warm up
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]

            def cpu() -> float:
                return sum(sum(p.cpu_times()[:2]) for p in tree if p.is_running())

            before = cpu()
            run = uuid.uuid4().hex[:8]
            result = loadgen.closed_loop("127.0.0.1", port, make, 32, seconds, ids=False)
            spent = cpu() - before
            answered = result.count(202)
            return spent / max(1, answered) * 1e6, answered / result.seconds
        finally:
            proc.terminate()
            proc.wait(30)


def granian_app() -> Any:
    """The API as granian would serve it, with the service's logging (gunicorn.conf.py's)."""
    import logs
    from api import create_app

    logs.configure("api")
    logs.write_in_background()
    return create_app()


def _run_child(args: argparse.Namespace, env: dict[str, str], variant: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as metrics_dir:
        child_env = {**env, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
        argv = [sys.executable, "-m", "bench.api_cpu", "--child", variant]
        argv += ["--requests", str(args.requests), "--threads", str(args.threads)]
        if args.profile:
            argv += ["--profile", str(Path(args.profile).resolve())]
        out = subprocess.run(
            argv, cwd=ROOT, env=child_env, check=True, capture_output=True, text=True
        ).stdout
    cpu, rate = out.strip().splitlines()[-1].split()
    return float(cpu), float(rate)


def _child(args: argparse.Namespace) -> int:
    """One measurement in a fresh process: CPU microseconds per request on stdout."""
    import logs

    # The service's JSON lines, written where they cost a write but nothing else.
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the process's whole life
    logs.configure("api")
    logs.write_in_background()  # as gunicorn.conf.py's post_worker_init does
    _patch_out(args.child)
    from api import create_app

    app = create_app()
    admin = {"Authorization": f"Bearer {os.environ['WALLET_ADMIN_KEY']}"}
    created = app.test_client().post(
        "/v1/admin/clients", json={"name": "cpu", "scopes": ["submit"]}, headers=admin
    )
    key = created.get_json()["api_key"]
    wsgi = app.wsgi_app
    run = uuid.uuid4().hex[:8]
    counter = iter(range(10**9))
    lock = threading.Lock()

    def one() -> None:
        with lock:
            n = next(counter)
        body = b'{"user_id":"cpu-%d","asset":"GOLD_COINS","amount":1}' % (n % 10_000)
        environ = _environ(key, body, f"{run}-{n}")
        status: list[str] = []
        chunks = wsgi(environ, lambda s, h, e=None: status.append(s))
        for _ in chunks:
            pass
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        if not status or not status[0].startswith("202"):
            raise SystemExit(f"unexpected answer {status}")

    profiles: list[Any] = []

    def loop(count: int, profile: bool) -> None:
        profiler = None
        if profile:  # cProfile sees its own thread only: one per request thread
            import cProfile

            profiler = cProfile.Profile(time.thread_time)  # CPU, not waits
            profiler.enable()
        for _ in range(count):
            one()
        if profiler is not None:
            profiler.disable()
            with lock:
                profiles.append(profiler)

    def drive(count: int, profile: bool = False) -> None:
        per_thread = count // args.threads
        threads = [
            threading.Thread(target=loop, args=(per_thread, profile)) for _ in range(args.threads)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    drive(max(args.threads * 10, args.requests // 4))  # warm: caches, pools, committers
    committers = _profile_committers() if args.profile else {}
    cpu, wall = time.process_time(), time.perf_counter()
    drive(args.requests, profile=bool(args.profile))
    spent, elapsed = time.process_time() - cpu, time.perf_counter() - wall
    if profiles:
        _dump(profiles, args.profile)
        _dump(list(committers.values()), args.profile + ".committers")
    done = args.requests // args.threads * args.threads
    print(f"{spent / done * 1e6:.1f} {done / elapsed:.1f}")
    return 0


def _profile_committers() -> dict[int, Any]:
    """A cProfile per group-commit thread, on from now on (the handler of this
    process's api.intake.GROUP_COMMIT batcher)."""
    import cProfile

    from api import intake

    found: dict[int, Any] = {}
    group = intake.GROUP_COMMIT.get()
    original = group._handle

    def profiled(items: Any) -> Any:
        profiler = found.setdefault(threading.get_ident(), cProfile.Profile(time.thread_time))
        profiler.enable()
        try:
            return original(items)
        finally:
            profiler.disable()

    group._handle = profiled
    return found


def _dump(profiles: list[Any], path: str) -> None:
    import pstats

    if not profiles:
        return
    stats = pstats.Stats(profiles[0])
    for profiler in profiles[1:]:
        stats.add(profiler)
    stats.dump_stats(path)


def _environ(key: str, body: bytes, idempotency_key: str) -> dict[str, Any]:
    """What gunicorn hands the application for the benchmark's request."""
    return {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/v1/transactions/spend",
        "RAW_URI": "/v1/transactions/spend",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_AUTHORIZATION": f"Bearer {key}",
        "HTTP_IDEMPOTENCY_KEY": idempotency_key,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


class _Nothing:
    """A metric that records nothing."""

    def labels(self, *_: Any) -> _Nothing:
        return self

    def inc(self, *_: Any) -> None:
        pass

    def observe(self, *_: Any) -> None:
        pass


def _patch_out(piece: str) -> None:
    """Take one piece out of this process (to measure what it costs)."""
    if piece == "access-log":
        logging.getLogger("api.requests").disabled = True
    elif piece == "metrics":
        from api import observability

        observability.HTTP_REQUESTS = observability.HTTP_LATENCY = _Nothing()  # type: ignore[assignment]
    elif piece == "observer":
        from api import observability

        observability.install = lambda app: None
    elif piece == "edge":
        import api

        api.HttpEdge = lambda app: app  # type: ignore[assignment,misc]
    elif piece == "intake-lock":
        from sqlalchemy import text

        from db import intake

        statement = str(intake.INSERT.text)
        intake.INSERT = text(statement.split(";", 1)[1])
    elif piece == "doorbell":
        from worker import doorbell

        doorbell.ring_many = lambda partitions, force=False: None  # type: ignore[assignment]
    elif piece:
        raise SystemExit(f"unknown piece {piece!r}; known: {', '.join(PIECES)}")


if __name__ == "__main__":
    sys.exit(main())
