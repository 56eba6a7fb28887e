"""Real HA backends on loopback, for tests that kill their leaders: a pg_auto_failover
formation (a monitor and two PostgreSQL nodes with synchronous replication) and a
Redis Sentinel set (a master, replicas, three sentinels).

Built from Debian's binaries (postgresql-15-auto-failover, redis-server,
redis-sentinel). Every process is started in a session of its own and registered in a
`Processes`, which stops them all (SIGTERM, then SIGKILL to what is left of each
process tree), so a test that fails still leaves nothing running. PostgreSQL refuses
to run as root, so its processes run as the `postgres` system user, with their data in
a temporary folder that user owns.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg2
import redis

from tests.tools import require

LOCALHOST = "127.0.0.1"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "postgres"
# Failure detection in seconds, not pg_auto_failover's default ~30 s: health checks
# every second, one retry, a node unhealthy 2 s after its last report.
MONITOR_SETTINGS = {
    "pgautofailover.health_check_period": "1000",
    "pgautofailover.health_check_timeout": "1000",
    "pgautofailover.health_check_max_retries": "1",
    "pgautofailover.health_check_retry_delay": "500",
    "pgautofailover.node_considered_unhealthy_timeout": "2000",
    "pgautofailover.startup_grace_period": "2000",
    # How long the monitor waits for an unreachable primary to demote itself before it
    # promotes the standby (default 30 s). It must stay above the keeper's
    # network_partition_timeout below, after which a primary that reaches neither the
    # monitor nor its standby demotes itself: so there is never a moment with two.
    "pgautofailover.primary_demote_timeout": "3000",
}
KEEPER_SETTINGS = {
    "timeout.network_partition_timeout": "2",
    # A standby being promoted waits this long for its WAL receiver to stop (default 5).
    "timeout.prepare_promotion_walreceiver": "1",
}
# Every server of these tests: loopback only, small. fsync stays on (a ledger).
NODE_SETTINGS = {
    "listen_addresses": f"'{LOCALHOST}'",
    "shared_buffers": "'64MB'",
    "max_connections": "200",
}


def free_ports(count: int) -> list[int]:
    """`count` distinct ports the kernel picked, free at the time of the call."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((LOCALHOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """The first true value of `condition()` (errors count as false); AssertionError
    naming `what` once `timeout` has passed."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as error:  # not up yet
            last = error
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {what} (last error: {last!r})"
    )


@dataclass
class Service:
    """A started process (the leader of its own session) and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL to the process and every process under it, at once: a crashed host."""
        tree = _tree(self.process.pid)
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(tree, timeout=10)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM to its session, as a service manager would; then SIGKILL what is left."""
        tree = _tree(self.process.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(tree, timeout=timeout)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=10)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)

    @property
    def running(self) -> bool:
        return self.process.poll() is None


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


class Processes:
    """Every process a test started, stopped again by `stop_all` (newest first)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.services: list[Service] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        user: str | None = None,
        cwd: Path | None = None,
    ) -> Service:
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                user=user,
                start_new_session=True,
            )
        service = Service(name, process, log)
        self.services.append(service)
        return service

    def stop_all(self) -> list[str]:
        """Stop everything; the names of services that were still running when asked."""
        running = [s.name for s in self.services if s.running]
        for service in reversed(self.services):
            service.stop()
        return running

    def leftovers(self) -> list[int]:
        """Pids of any process started here (or under one) that is still alive."""
        return [
            proc.pid
            for service in self.services
            for proc in _tree(service.process.pid)
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
        ]


def run_as() -> str | None:
    """The user PostgreSQL runs as: `postgres` when we are root (it refuses root),
    else ourselves (None: no switch)."""
    return PG_USER if os.geteuid() == 0 else None


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def owned_temp_dir(prefix: str, user: str | None) -> Path:
    """A fresh folder under the system's temp folder, owned by `user` (pytest's own
    temporary folders sit under root's, which other users cannot enter)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if user is not None:
        account = pwd.getpwnam(user)
        os.chown(path, account.pw_uid, account.pw_gid)
    path.chmod(0o755)
    return path


# --- pg_auto_failover -------------------------------------------------------------------


@dataclass
class PgNode:
    name: str
    port: int
    pgdata: Path
    service: Service | None = None


@dataclass
class PgAutoFailover:
    """A monitor and two nodes, the first the primary, with synchronous replication (the
    default with one standby: `ANY 1 (...)`). `url()` is the multi-host DATABASE_URL."""

    root: Path
    processes: Processes
    monitor_port: int = 0
    nodes: list[PgNode] = field(default_factory=list)
    monitor: Service | None = None

    @classmethod
    def require_tools(cls) -> None:
        require("pg_autoctl", "postgresql-15-auto-failover")
        if not (PG_BIN / "postgres").exists():
            require(str(PG_BIN / "postgres"), "postgresql-15")
        if run_as() is not None:
            try:
                pwd.getpwnam(PG_USER)
            except KeyError:
                require("a postgres system user", "postgresql-common")

    def start(self, dbname: str, timeout: float = 60) -> None:
        self.monitor_port, *ports = free_ports(3)
        monitor_data = self._initdb("monitor", MONITOR_SETTINGS)
        create = ["--hostname", LOCALHOST, "--auth", "trust", "--no-ssl"]
        self._autoctl(
            "monitor",
            "create",
            "monitor",
            "--pgdata",
            str(monitor_data),
            "--pgport",
            str(self.monitor_port),
            *create,
        )
        # pg_autoctl starts the monitor with listen_addresses from its own configuration
        # (`*`, and no option to change it at creation): loopback only from here on.
        self._autoctl(
            "monitor",
            "config",
            "set",
            "--pgdata",
            str(monitor_data),
            "postgresql.listen_addresses",
            LOCALHOST,
        )
        self.monitor = self.processes.start(
            "pg-monitor",
            ["pg_autoctl", "run", "--pgdata", str(monitor_data)],
            **self._as_pg("monitor"),
        )
        wait_for(self._monitor_up, timeout / 2, "the pg_auto_failover monitor", interval=0.25)
        for n, port in enumerate(ports, start=1):
            node = PgNode(f"node{n}", port, self.root / f"node{n}")
            if n == 1:  # the standby is a base backup of the primary, settings included
                self._initdb(node.name, NODE_SETTINGS)
            self._autoctl(node.name, *self._node_argv(node))
            for option, value in KEEPER_SETTINGS.items():
                self._autoctl(
                    node.name, "config", "set", "--pgdata", str(node.pgdata), option, value
                )
            node.service = self.processes.start(
                f"pg-{node.name}",
                ["pg_autoctl", "run", "--pgdata", str(node.pgdata)],
                **self._as_pg(node.name),
            )
            self.nodes.append(node)
            # One at a time: the first registered becomes the primary.
            wait_for(
                lambda node=node: (
                    self.state(node.name)
                    in (("single", "single"), ("secondary", "secondary"), ("primary", "primary"))
                ),
                timeout,
                f"{node.name} to join",
                interval=0.25,
            )
        wait_for(self._replicating, timeout, "synchronous replication", interval=0.25)
        with contextlib.closing(psycopg2.connect(self.node_url(self.nodes[0], "postgres"))) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{dbname}"')

    def url(self, dbname: str) -> str:
        """DATABASE_URL in libpq's multi-host form: whichever node takes writes."""
        hosts = ",".join(f"{LOCALHOST}:{node.port}" for node in self.nodes)
        return f"postgresql://{PG_USER}@{hosts}/{dbname}?target_session_attrs=read-write"

    def node_url(self, node: PgNode, dbname: str) -> str:
        return f"postgresql://{PG_USER}@{LOCALHOST}:{node.port}/{dbname}?connect_timeout=2"

    def states(self) -> dict[str, tuple[str, str]]:
        """Node name -> (reported state, goal state), as the monitor sees them."""
        with contextlib.closing(psycopg2.connect(self._monitor_url())) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT nodename, reportedstate, goalstate FROM pgautofailover.node")
                return {name: (str(reported), str(goal)) for name, reported, goal in cur.fetchall()}

    def state(self, name: str) -> tuple[str, str] | None:
        return self.states().get(name)

    def primary(self) -> PgNode:
        states = self.states()
        for node in self.nodes:
            if states.get(node.name, ("", ""))[0] in ("primary", "wait_primary", "single"):
                return node
        raise LookupError(f"no primary: {states}")

    def writable(self, node: PgNode) -> bool:
        """Whether the node itself answers as a primary (not in recovery)."""
        url = self.node_url(node, "postgres")
        with contextlib.closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
            cur.execute("SELECT NOT pg_is_in_recovery()")
            return bool(cur.fetchone()[0])

    def kill(self, node: PgNode) -> None:
        """SIGKILL the node's keeper and its PostgreSQL together: the host died."""
        assert node.service is not None
        node.service.kill()

    def logs(self) -> str:
        parts = [self.monitor.tail()] if self.monitor else []
        parts += [n.service.tail() for n in self.nodes if n.service]
        return "\n---\n".join(parts)

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    # -- internals

    def _env(self, name: str) -> dict[str, str]:
        home = self.root / f"{name}.home"
        home.mkdir(exist_ok=True)
        _chown(home)
        return {
            "PATH": f"{PG_BIN}:/usr/bin:/bin",
            "HOME": str(home),
            # pg_autoctl keeps its configuration and state under XDG folders: one set
            # per node, so that nothing is shared with another node or another test.
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "share"),
            "XDG_RUNTIME_DIR": str(home / "run"),
            "PGHOST": LOCALHOST,
            "LANG": "C.UTF-8",
        }

    def _as_pg(self, name: str) -> dict[str, Any]:
        return {"env": self._env(name), "user": run_as(), "cwd": self.root}

    def _initdb(self, name: str, settings: dict[str, str]) -> Path:
        """A data folder made by initdb (trust on loopback), with our settings in
        postgresql.auto.conf, which PostgreSQL reads last: pg_autoctl writes its own
        file with listen_addresses = '*' and memory sized for the whole machine."""
        pgdata = self.root / name
        subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(pgdata), "-A", "trust", "-U", PG_USER, "-E", "UTF8"],
            check=True,
            capture_output=True,
            timeout=60,
            **self._as_pg(name),
        )
        settings = {**NODE_SETTINGS, **settings}
        with (pgdata / "postgresql.auto.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        return pgdata

    def _autoctl(self, name: str, *args: str) -> None:
        """A pg_autoctl command that runs to completion (create, config set)."""
        done = subprocess.run(
            ["pg_autoctl", *args], capture_output=True, text=True, timeout=120, **self._as_pg(name)
        )
        if done.returncode != 0:
            raise RuntimeError(f"pg_autoctl {' '.join(args)} failed:\n{done.stderr[-3000:]}")

    def _node_argv(self, node: PgNode) -> list[str]:
        monitor = f"postgres://autoctl_node@{LOCALHOST}:{self.monitor_port}/pg_auto_failover?sslmode=disable"
        return [
            "create",
            "postgres",
            "--pgdata",
            str(node.pgdata),
            "--pgport",
            str(node.port),
            "--listen",
            LOCALHOST,
            "--hostname",
            LOCALHOST,
            "--name",
            node.name,
            "--username",
            PG_USER,
            "--dbname",
            "postgres",
            "--auth",
            "trust",
            "--no-ssl",
            "--monitor",
            monitor,
        ]

    def _monitor_url(self) -> str:
        return f"postgresql://{PG_USER}@{LOCALHOST}:{self.monitor_port}/pg_auto_failover?connect_timeout=2"

    def _monitor_up(self) -> bool:
        with (
            contextlib.closing(psycopg2.connect(self._monitor_url())) as conn,
            conn.cursor() as cur,
        ):
            cur.execute("SELECT count(*) FROM pgautofailover.formation")
            return bool(cur.fetchone()[0])

    def _replicating(self) -> bool:
        states = self.states()
        primary = self.nodes[0]
        if states.get(primary.name) != ("primary", "primary"):
            return False
        if states.get(self.nodes[1].name) != ("secondary", "secondary"):
            return False
        url = self.node_url(primary, "postgres")
        with contextlib.closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')"
            )
            return bool(cur.fetchone()[0])


def _chown(path: Path) -> None:
    if run_as() is None:
        return
    account = pwd.getpwnam(PG_USER)
    os.chown(path, account.pw_uid, account.pw_gid)


# --- Redis Sentinel ---------------------------------------------------------------------


@dataclass
class RedisNode:
    name: str
    port: int
    service: Service | None = None

    def client(self, **options: Any) -> redis.Redis:
        return redis.Redis(
            LOCALHOST, self.port, socket_timeout=2, socket_connect_timeout=1, **options
        )


def start_redis(processes: Processes, root: Path, name: str, port: int, *extra: str) -> RedisNode:
    """A redis-server on loopback with nothing persisted (Redis only rings doorbells)."""
    server = require("redis-server", "redis-server")
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    node = RedisNode(name, port)
    argv = [server, "--port", str(port), "--bind", LOCALHOST, "--save", "", "--appendonly", "no"]
    node.service = processes.start(name, [*argv, "--dir", str(folder), *extra])
    wait_for(lambda: node.client().ping(), 15, f"{name} to answer")
    return node


@dataclass
class RedisSentinelSet:
    """A master, `replicas` replicas and three sentinels (quorum 2) that fail over after
    `down_after_ms` without an answer from the master."""

    root: Path
    processes: Processes
    master_name: str = "wallet"
    down_after_ms: int = 1000
    replicas: int = 2
    servers: list[RedisNode] = field(default_factory=list)
    sentinels: list[RedisNode] = field(default_factory=list)

    @classmethod
    def require_tools(cls) -> None:
        require("redis-server", "redis-server")
        require("redis-sentinel", "redis-sentinel")

    def start(self, timeout: float = 30) -> None:
        ports = free_ports(1 + self.replicas + 3)
        master = start_redis(self.processes, self.root, "redis-master", ports[0])
        self.servers.append(master)
        for n, port in enumerate(ports[1 : 1 + self.replicas], start=1):
            self.servers.append(
                start_redis(
                    self.processes,
                    self.root,
                    f"redis-replica{n}",
                    port,
                    "--replicaof",
                    LOCALHOST,
                    str(master.port),
                )
            )
        sentinel = require("redis-sentinel", "redis-sentinel")
        for n, port in enumerate(ports[1 + self.replicas :], start=1):
            conf = self.root / f"sentinel{n}.conf"  # Sentinel rewrites its file: one each
            conf.write_text(
                f"port {port}\nbind {LOCALHOST}\ndaemonize no\ndir {self.root}\n"
                f"sentinel monitor {self.master_name} {LOCALHOST} {master.port} 2\n"
                f"sentinel down-after-milliseconds {self.master_name} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.master_name} 10000\n"
                f"sentinel parallel-syncs {self.master_name} {self.replicas}\n"
            )
            node = RedisNode(f"sentinel{n}", port)
            node.service = self.processes.start(node.name, [sentinel, str(conf)])
            self.sentinels.append(node)
        wait_for(self._settled, timeout, "the sentinels to see the replicas and each other", 0.25)

    @property
    def addresses(self) -> str:
        """REDIS_SENTINELS."""
        return ",".join(f"{LOCALHOST}:{s.port}" for s in self.sentinels)

    def master(self) -> RedisNode:
        port = self.master_address()[1]
        return next(s for s in self.servers if s.port == port)

    def master_address(self) -> tuple[str, int]:
        """Where the sentinels (the first that answers) say the master is."""
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.RedisError):
                host, port = sentinel.client().sentinel_get_master_addr_by_name(self.master_name)
                return host.decode() if isinstance(host, bytes) else str(host), int(port)
        raise LookupError("no sentinel answers")

    def agreed_master(self) -> int | None:
        """The master's port if every live sentinel names the same one."""
        ports = set()
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.RedisError):
                ports.add(
                    int(sentinel.client().sentinel_get_master_addr_by_name(self.master_name)[1])
                )
        return ports.pop() if len(ports) == 1 else None

    def _settled(self) -> bool:
        for sentinel in self.sentinels:
            info = sentinel.client().sentinel_master(self.master_name)
            if int(info["num-slaves"]) < self.replicas or int(info["num-other-sentinels"]) < 2:
                return False
        return True

    def logs(self) -> str:
        return "\n---\n".join(
            s.service.tail(1500) for s in self.servers + self.sentinels if s.service
        )


@contextlib.contextmanager
def processes_in(root: Path) -> Iterator[Processes]:
    """A registry of processes whose logs go to `root`; everything stopped on the way out,
    and an AssertionError if anything still runs after that."""
    processes = Processes(root)
    try:
        yield processes
    finally:
        processes.stop_all()
        leftovers = processes.leftovers()
        assert not leftovers, f"processes still running after the test: {leftovers}"
