"""`python -m stack <command>`: the service's processes, started the way a user starts them.

  run            everything: embedded PostgreSQL and Redis unless DATABASE_URL / REDIS_URL
                 (or REDIS_SENTINELS) are set, generated secrets unless set, migrations
                 and seed, then the API, the partition workers, the callbacks worker,
                 beat and Flower, supervised until Ctrl-C (servers this command started
                 are stopped again)
  workers        only the partition workers and the callbacks worker, supervised
  migrate        migrations and seed only
  repartition N  change the partition count of the running system to N (1 to
                 WALLET_MAX_PARTITIONS): pending commands move with their wallets,
                 nothing is lost or reordered, no process needs a restart
  services       start the embedded servers (for the URLs that are unset), print
                 DATABASE_URL=... and REDIS_URL=..., and leave them running
  stop-services  stop the embedded servers of the data folder

Environment: DATABASE_URL (one host or libpq's host1:port1,host2:port2), REDIS_URL or
REDIS_SENTINELS + REDIS_SENTINEL_MASTER, WALLET_ADMIN_KEY, FLOWER_BASIC_AUTH,
WALLET_PARTITIONS (the count of a new database; unset: one per core, 2 to 8),
WALLET_MAX_PARTITIONS (64: the queues every partition worker consumes),
WALLET_WORKER_PROCESSES (2), HOSTNAME (the
host part of the workers' Celery node names; Celery's %h when unset), PORT (8000),
FLOWER_PORT (5555), WALLET_DATA_DIR (.data), PROMETHEUS_MULTIPROC_DIR (<data>/metrics).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import settings
from db import urls
from stack import commands
from stack.ports import accepts_connections, port_is_free
from stack.secrets import ensure_secrets
from stack.supervisor import Program, json_line, run_once, supervise

if TYPE_CHECKING:  # the embedded servers are a development dependency, imported on use
    from stack.embedded import EmbeddedServer


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=[*COMMANDS, "repartition"])
    parser.add_argument("count", nargs="?", type=int, help="repartition: the new count")
    args = parser.parse_args(argv)
    if (args.command == "repartition") != (args.count is not None):
        parser.error("repartition takes the new partition count, and only it takes one")
    # Until the supervisor takes the signals over, SIGTERM unwinds like Ctrl-C, so that
    # the embedded servers started so far are stopped again.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.command == "repartition":
            return repartition(args.count)
        return COMMANDS[args.command]()
    except KeyboardInterrupt:
        return 130


def run() -> int:
    """The whole stack, supervised until SIGINT or SIGTERM."""
    config = settings.load()
    busy = [port for port in (config.port, config.flower_port) if not port_is_free(port, "0.0.0.0")]
    if busy:
        _say(f"port {busy[0]} is already in use (another `make run`?); set PORT / FLOWER_PORT")
        return 1
    with _stack() as stack:
        _reset_metrics(stack.metrics_dir)
        code = _migrate(stack)
        if code:
            return code
        programs = [
            commands.api(),
            *_worker_commands(stack.settings),
            commands.beat(stack.data_dir / "celerybeat-schedule"),
            commands.flower(stack.settings.flower_port, stack.data_dir),
        ]
        return supervise(
            _programs(programs, stack),
            ready_check=partial(accepts_connections, stack.settings.port),
            on_ready=partial(print, _banner(stack), flush=True),
        )


def workers() -> int:
    """The partition workers and the callbacks worker (docker-compose's `worker`)."""
    with _stack() as stack:
        return supervise(_programs(_worker_commands(stack.settings), stack))


def migrate() -> int:
    """Migrations and seed (docker-compose's `migrate`, run before the API starts)."""
    with _stack() as stack:
        return _migrate(stack)


def repartition(count: int) -> int:
    """Change the partition count on the live system (db.partitioning), then ring every
    partition so that the commands that moved are drained at once."""
    with _stack():
        from db import partitioning
        from worker import doorbell

        try:
            done = partitioning.repartition(count)
        except ValueError as error:
            _say(str(error))
            return 2
        rung = doorbell.ring_many(range(max(done.old, done.new)), force=True)
        print(
            f"partitions: {done.old} -> {done.new}; {done.moved} of {done.pending} pending "
            f"commands and active holds moved in {done.seconds:.2f} s"
            + ("" if rung else "; doorbells not rung (Redis unreachable): the sweeper will"),
            flush=True,
        )
        return 0


def services() -> int:
    """Start the embedded servers (for the URLs that are unset) and leave them running."""
    urls = {
        name: os.environ.get(name) or start(settings.DATA_DIR)[1]
        for name, start in _EMBEDDED.items()
        if os.environ.get(name) or not _configured(name)
    }
    for name, url in urls.items():
        print(f"{name}={url}", flush=True)
    return 0


def stop_services() -> int:
    """Stop the embedded servers running from the data folder."""
    from stack import embedded

    for server in (embedded.running_postgres(), embedded.running_redis()):
        if server is not None:
            server.stop()
            _say(f"stopped {server.name} (pid {server.pid}, port {server.port})")
    return 0


COMMANDS: dict[str, Callable[[], int]] = {
    "run": run,
    "workers": workers,
    "migrate": migrate,
    "services": services,
    "stop-services": stop_services,
}


@dataclass(frozen=True)
class Stack:
    """What every process of the stack is started with."""

    settings: settings.Settings
    data_dir: Path
    metrics_dir: Path
    env: dict[str, str]


@contextmanager
def _stack() -> Iterator[Stack]:
    """The environment for the children, with embedded servers for unset URLs.

    Servers started here are stopped on the way out; ones found running (a previous
    `make run`, `make services`) are reused and left running.
    """
    data_dir = settings.DATA_DIR.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    started: list[EmbeddedServer] = []
    try:
        for name, start in _EMBEDDED.items():
            if not _configured(name):
                server, os.environ[name] = start(data_dir)
                started += [server] if server.started else []
        # Into our own environment, which the children inherit: settings.load() then
        # reads the same values here as in every child, and the defaults are made explicit.
        os.environ.update(ensure_secrets(data_dir))
        os.environ.update(_process_environment(data_dir))
        # settings.load() caches what it first read, and run() reads it before the
        # embedded URLs and the secrets above were set: read the environment afresh, or
        # the banner shows the default ports and empty secrets.
        settings.load.cache_clear()
        config = settings.load()
        os.environ.update(
            WALLET_PARTITIONS=str(config.partitions),
            PORT=str(config.port),
            FLOWER_PORT=str(config.flower_port),
        )
        metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        metrics_dir.mkdir(parents=True, exist_ok=True)
        yield Stack(config, data_dir, metrics_dir, dict(os.environ))
    finally:
        for server in reversed(started):
            _say(f"stopping embedded {server.name} (pid {server.pid})")
            server.stop()


def _process_environment(data_dir: Path) -> dict[str, str]:
    inherited = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    pythonpath = dict.fromkeys(filter(None, [str(settings.ROOT), *inherited]))
    return {
        "PROMETHEUS_MULTIPROC_DIR": os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        or str(data_dir / "metrics"),
        "WALLET_DATA_DIR": str(data_dir),
        "PYTHONPATH": os.pathsep.join(pythonpath),
        "PYTHONUNBUFFERED": "1",  # children's lines reach the prefixed output at once
    }


def _embedded_postgres(data_dir: Path) -> tuple[EmbeddedServer, str]:
    from stack import embedded

    server = embedded.start_postgres(data_dir)
    url = server.url("wallet")
    embedded.ensure_database(url)
    _say(f"PostgreSQL {'started' if server.started else 'already running'}: {url}")
    return server, url


def _embedded_redis(data_dir: Path) -> tuple[EmbeddedServer, str]:
    from stack import embedded

    server = embedded.start_redis(data_dir)
    url = server.url(0)
    _say(f"Redis {'started' if server.started else 'already running'}: {url}")
    return server, url


_EMBEDDED: dict[str, Callable[[Path], tuple[EmbeddedServer, str]]] = {
    "DATABASE_URL": _embedded_postgres,
    "REDIS_URL": _embedded_redis,
}


def _configured(name: str) -> bool:
    """Whether the environment says where this server is (so none is embedded): Redis
    may be given as a Sentinel set instead of REDIS_URL."""
    if name == "REDIS_URL" and os.environ.get("REDIS_SENTINELS"):
        return True
    return bool(os.environ.get(name))


def _worker_commands(config: settings.Settings) -> list[commands.Command]:
    processes = int(os.environ.get("WALLET_WORKER_PROCESSES") or 0) or None
    # Node names must differ between hosts: HOSTNAME is set in every container, and a
    # test sets it to run two "hosts" on one machine.
    host = os.environ.get("HOSTNAME") or "%h"
    return [
        *commands.partition_workers(config.max_partitions, processes, host),
        commands.callbacks_worker(host),
    ]


def _programs(cmds: Sequence[commands.Command], stack: Stack) -> list[Program]:
    return [
        Program(
            cmd.name, commands.resolve(cmd.argv), env=_environment(cmd, stack), cwd=settings.ROOT
        )
        for cmd in cmds
    ]


def _environment(cmd: commands.Command, stack: Stack) -> dict[str, str]:
    if cmd.name == "flower":
        return commands.without_shared_metrics(stack.env)
    return stack.env


def _migrate(stack: Stack) -> int:
    for program in _programs(commands.migrations(), stack):
        code = run_once(program)
        if code:
            _say(f"{program.name} failed (exit code {code})")
            return code
    return 0


def _reset_metrics(metrics_dir: Path) -> None:
    # prometheus-client's multiprocess files of processes that no longer exist would
    # otherwise be summed into /metrics forever.
    for stale in metrics_dir.glob("*.db"):
        stale.unlink(missing_ok=True)


def _banner(stack: Stack) -> str:
    from worker import connections

    config = stack.settings
    user, _, password = (config.flower_basic_auth or "").partition(":")
    api = f"http://127.0.0.1:{config.port}"
    rows = [
        ("API", api),
        ("API docs", f"{api}/docs"),
        ("Flower", f"http://127.0.0.1:{config.flower_port}  (user {user}, password {password})"),
        ("Admin key", config.admin_key or ""),
        ("Data", str(stack.data_dir)),
        ("PostgreSQL", _without_password(config.database_url)),
        ("Redis", _without_password(connections.describe(config))),
    ]
    rule = "=" * 78
    body = "\n".join(f"  {label:<11} {value}" for label, value in rows)
    return f"\n{rule}\n  The wallet service is running. Ctrl-C stops it.\n\n{body}\n{rule}\n"


def _without_password(url: str) -> str:
    return urls.without_password(url)  # the one masking, for several hosts too


def _say(message: str) -> None:
    print(json_line(message), file=sys.stderr, flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
