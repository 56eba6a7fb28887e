"""The benchmark's scenarios, as DESIGN.md defines them.

- intake rate: 202 answers per second under N concurrent clients;
- end-to-end rate: commands accepted and applied per second, from the first submit to
  the moment the last one is final (read from PostgreSQL: max(completed_at));
- latency: submit to final status, p50 and p99, at half the end-to-end rate;
- hot wallet: every command to one user; hot treasury: top-ups to many users.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg2
import requests

from bench import loadgen
from stack import launch

ROOT = Path(__file__).resolve().parents[1]
USERS = 10_000
SINGLE_CLIENTS = 32
BATCH_CLIENTS = 8
BATCH_SIZE = 100
# The controls' row: an asset with a 24 h spend limit no spend reaches and 30-day
# credits, so every spend pays for the spend window and the lots, and none is refused.
RULED_ASSET = "BENCH_RULED"
RULED_SETTINGS = {"spend_limit_24h": 2**53 - 1, "credit_lifetime": 30 * 24 * 3600}


@dataclass
class Target:
    """A running stack: where its API is, its database, its admin key."""

    base_url: str = ""
    database_url: str = ""
    admin_key: str = ""
    stack_pid: int | None = None  # the `python -m stack run` we started, if any

    @property
    def host(self) -> str:
        return self.base_url.split("://")[1].split(":")[0]

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1].split("/")[0])

    @classmethod
    def from_args(cls, args: Any) -> Target:
        if args.url:
            if not (args.database_url and args.admin_key):
                raise SystemExit("--url needs --database-url and --admin-key")
            return cls(args.url.rstrip("/"), args.database_url, args.admin_key)
        return cls()


BENCH_DATA = ROOT / ".data" / "bench"


def stop_bench_servers() -> None:
    """Stop the embedded servers that bench_stack runs under .data/bench: the reference
    rows use them after the stack has stopped, and nothing else does."""
    from stack import embedded

    for server in (embedded.running_postgres(BENCH_DATA), embedded.running_redis(BENCH_DATA)):
        if server is not None:
            server.stop()


@contextmanager
def bench_stack(target: Target) -> Iterator[Target]:
    """The given stack, or one started like `make run` on servers of its own."""
    if target.base_url:
        yield target
        return
    from stack import embedded

    data = BENCH_DATA
    postgres = embedded.start_postgres(data)
    redis_server = embedded.start_redis(data)
    database = postgres.url("wallet_bench")
    embedded.drop_database(database)
    embedded.ensure_database(database)
    port, flower_port = launch.any_free_port(), launch.any_free_port()
    target = Target(f"http://127.0.0.1:{port}", database, "wk_admin_bench_" + uuid.uuid4().hex)
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "REDIS_URL": redis_server.url(0),
        "WALLET_ADMIN_KEY": target.admin_key,
        "FLOWER_BASIC_AUTH": "bench:" + uuid.uuid4().hex,
        "PORT": str(port),
        "FLOWER_PORT": str(flower_port),
        "WALLET_DATA_DIR": str(data / "stack"),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = data / "stack.log"
    process = launch.start(env, log)
    target.stack_pid = process.pid
    try:
        launch.wait_ready(
            process,
            lambda: requests.get(f"{target.base_url}/readyz", timeout=5).status_code == 200,
            log,
            timeout=180,
            interval=0.5,
        )
    except launch.StackNotReady as error:
        launch.stop(process)
        raise SystemExit(f"{error}\n(the whole log: {log})") from None
    try:
        yield target
    finally:
        launch.stop(process)


@dataclass
class Bench:
    target: Target
    seconds: float
    results: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"Bearer {self.target.admin_key}"
        self.client_id, self.key = self._client()
        self.hostport = f"{self.target.host}:{self.target.port}"

    # -- the service ------------------------------------------------------------------

    def prepare(self) -> None:
        """Fund the players (and the hot one, and the ruled asset's), then warm up."""
        self._say(f"funding {USERS} players and one hot player")
        self._fund([f"bench-{i}" for i in range(USERS)] + ["bench-hot"], 10**12)
        self._ruled_asset()
        self._fund([f"bench-{i}" for i in range(USERS)], 10**12, RULED_ASSET)
        self._warm_up()

    def run_service_rows(self, big: bool) -> None:
        self.prepare()
        with Sampler(self.target) as sampler:
            self.results["single"] = self._single("spread", self._spend_spread)
            self.results["resources"] = sampler.cpu_split()
            self.results["ruled"] = self._single(
                "spread, 24 h limit + expiring credits", self._spend_ruled
            )
            self.results["batch"] = self._batch("spread")
            half = max(1.0, self.results["single"]["end_to_end"] / 2)
            self.results["latency"] = self._latency(half)
            self.results["hot_wallet"] = self._single("hot wallet", self._spend_hot)
            self.results["hot_treasury"] = self._single("hot treasury", self._topup_spread)
        self.results["memory"] = sampler.peaks()
        if big:
            from bench.dataset import load_big_dataset

            self._say("loading 1,000,000 wallets and 10,000,000 ledger entries")
            self.results["big_load"] = load_big_dataset(self.target.database_url)
            self.results["big_single"] = self._single("spread, big db", self._spend_spread)
            self.results["big_batch"] = self._batch("spread, big db")

    def _warm_up(self) -> None:
        """An unmeasured run first, then vacuum and a checkpoint: the first seconds after
        funding 10,000 players would otherwise measure autovacuum and the checkpointer."""
        seconds = min(10.0, self.seconds / 3)
        self._say(f"warming up for {seconds:.0f} s (not measured)")
        run, seq = uuid.uuid4().hex[:8], self._max_seq()
        loadgen.closed_loop(
            self.target.host,
            self.target.port,
            lambda n: self._spend_spread(run, n),
            SINGLE_CLIENTS,
            seconds,
            ids=False,
        )
        self._wait_final(seq)
        self._maintenance("VACUUM ANALYZE transactions, accounts, ledger_entries")
        self._checkpoint()

    def _checkpoint(self) -> None:
        """Each row starts with the WAL checkpointed, so none pays for the one before."""
        with contextlib.suppress(psycopg2.Error):  # not a superuser: checkpoints as they come
            self._maintenance("CHECKPOINT")

    def _maintenance(self, statement: str) -> None:
        conn = psycopg2.connect(self.target.database_url)
        try:
            conn.autocommit = True  # VACUUM refuses to run in a transaction block
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def _single(self, name: str, make: Callable[[str, int], bytes]) -> dict[str, Any]:
        self._checkpoint()
        self._say(f"single commands, {SINGLE_CLIENTS} clients, {self.seconds:.0f} s: {name}")
        run = uuid.uuid4().hex[:8]
        seq = self._max_seq()
        result = loadgen.closed_loop(
            self.target.host,
            self.target.port,
            lambda n: make(run, n),
            SINGLE_CLIENTS,
            self.seconds,
            ids=False,
        )
        return self._rates(result, seq, accepted=len(result.accepted))

    def _batch(self, name: str) -> dict[str, Any]:
        self._checkpoint()
        self._say(f"batches of {BATCH_SIZE}, {BATCH_CLIENTS} clients, {self.seconds:.0f} s: {name}")
        run = uuid.uuid4().hex[:8]
        seq = self._max_seq()

        def make(n: int) -> bytes:
            commands = [
                {
                    "type": "spend",
                    "idempotency_key": f"{run}-{n}-{i}",
                    "user_id": f"bench-{(n * BATCH_SIZE + i) % USERS}",
                    "asset": "GOLD_COINS",
                    "amount": 1,
                }
                for i in range(BATCH_SIZE)
            ]
            body = json.dumps({"commands": commands}).encode()
            return loadgen.encode_post(
                self.hostport, "/v1/transactions/batch", self.key, body, None
            )

        result = loadgen.closed_loop(
            self.target.host, self.target.port, make, BATCH_CLIENTS, self.seconds, ids=True
        )
        accepted = sum(len(ids) for _, ids in result.accepted)
        return self._rates(result, seq, accepted=accepted)

    def _latency(self, rate: float) -> dict[str, Any]:
        self._checkpoint()  # like every row: it does not pay for the batch row's WAL
        seconds = max(10.0, self.seconds * 2 / 3)
        self._say(f"latency at {rate:.0f}/s (half the end-to-end rate), {seconds:.0f} s")
        run = uuid.uuid4().hex[:8]
        result = loadgen.open_loop(
            self.target.host, self.target.port, lambda n: self._spend_spread(run, n), rate, seconds
        )
        ids = {tx_id: sent for sent, found in result.accepted for tx_id in found}
        self._wait_final(self._max_seq_before(ids))
        with psycopg2.connect(self.target.database_url) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT id::text, extract(epoch FROM created_at), "
                "extract(epoch FROM completed_at) FROM transactions "
                "WHERE id = ANY(%s::uuid[])",
                (list(ids),),
            )
            rows = [(ids[tx_id], float(created), float(done)) for tx_id, created, done in cur]
        latencies = sorted((done - sent) * 1000 for sent, _, done in rows)
        # Where the time goes: submit to the intake transaction's start (created_at is
        # its now()), then from there to the drain transaction's (completed_at).
        to_intake = sorted((created - sent) * 1000 for sent, created, _ in rows)
        to_apply = sorted((done - created) * 1000 for _, created, done in rows)
        return {
            "rate": rate,
            "commands": len(latencies),
            "p50_ms": _percentile(latencies, 50),
            "p99_ms": _percentile(latencies, 99),
            "intake_p50_ms": _percentile(to_intake, 50),
            "intake_p99_ms": _percentile(to_intake, 99),
            "apply_p50_ms": _percentile(to_apply, 50),
            "apply_p99_ms": _percentile(to_apply, 99),
            "max_ms": latencies[-1] if latencies else None,
            "loadgen_cpu": result.cpu_seconds / result.seconds,
        }

    # -- requests -----------------------------------------------------------------------

    def _spend_spread(self, run: str, n: int) -> bytes:
        return self._post("spend", f"bench-{n % USERS}", run, n)

    def _spend_ruled(self, run: str, n: int) -> bytes:
        return self._post("spend", f"bench-{n % USERS}", run, n, RULED_ASSET)

    def _spend_hot(self, run: str, n: int) -> bytes:
        return self._post("spend", "bench-hot", run, n)

    def _topup_spread(self, run: str, n: int) -> bytes:
        return self._post("topup", f"bench-{n % USERS}", run, n)

    def _post(self, kind: str, user: str, run: str, n: int, asset: str = "GOLD_COINS") -> bytes:
        body = b'{"user_id":"%s","asset":"%s","amount":1}' % (user.encode(), asset.encode())
        return loadgen.encode_post(
            self.hostport, f"/v1/transactions/{kind}", self.key, body, f"{run}-{n}"
        )

    # -- measuring ----------------------------------------------------------------------

    def _rates(self, result: loadgen.Result, seq: int, accepted: int) -> dict[str, Any]:
        last_final = self._wait_final(seq)
        return {
            "accepted": accepted,
            "refused": sum(n for status, n in result.statuses.items() if status not in (200, 202)),
            "statuses": {str(k): v for k, v in result.statuses.items()},
            "seconds": result.seconds,
            "intake": accepted / result.seconds,
            "end_to_end": accepted / (last_final - result.started),
            "drain_lag_s": last_final - result.finished,
            "loadgen_cpu": result.cpu_seconds / result.seconds,
        }

    def _wait_final(self, seq: int) -> float:
        """Wait until this client's commands after `seq` are all final; the last
        completed_at (the database's clock, the same machine's as ours)."""
        with psycopg2.connect(self.target.database_url) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                while True:
                    cur.execute(
                        "SELECT count(*) FILTER (WHERE status = 'pending'), "
                        "extract(epoch FROM max(completed_at)) FROM transactions "
                        "WHERE client_id = %s AND seq > %s",
                        (self.client_id, seq),
                    )
                    pending, last = cur.fetchone()
                    if not pending:
                        return float(last or time.time())
                    time.sleep(0.05)

    def _max_seq(self) -> int:
        with psycopg2.connect(self.target.database_url) as conn, conn.cursor() as cur:
            cur.execute("SELECT coalesce(max(seq), 0) FROM transactions")
            return int(cur.fetchone()[0])

    def _max_seq_before(self, ids: dict[str, float]) -> int:
        with psycopg2.connect(self.target.database_url) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT coalesce(min(seq), 1) - 1 FROM transactions WHERE id = ANY(%s::uuid[])",
                (list(ids),),
            )
            return int(cur.fetchone()[0])

    def _client(self) -> tuple[str, str]:
        response = self.api.post(
            f"{self.target.base_url}/v1/admin/clients",
            json={"name": "bench", "scopes": ["submit", "read"]},
        )
        response.raise_for_status()
        return response.json()["id"], response.json()["api_key"]

    def _ruled_asset(self) -> None:
        """The controls' asset (kept if a reused stack has it: its rules are set again)."""
        url = f"{self.target.base_url}/v1/assets"
        response = self.api.post(url, json={"code": RULED_ASSET, "name": "Bench, ruled"})
        if response.status_code != 409:
            response.raise_for_status()
        self.api.patch(f"{url}/{RULED_ASSET}", json=RULED_SETTINGS).raise_for_status()

    def _fund(self, users: list[str], amount: int, asset: str = "GOLD_COINS") -> None:
        seq = self._max_seq()
        headers = {"Authorization": f"Bearer {self.key}"}
        for start in range(0, len(users), 1000):
            commands = [
                {
                    "type": "topup",
                    "idempotency_key": f"fund-{u}" + ("" if asset == "GOLD_COINS" else asset),
                    "user_id": u,
                    "asset": asset,
                    "amount": amount,
                }
                for u in users[start : start + 1000]
            ]
            body: dict[str, Any] = {"commands": commands}
            response = requests.post(
                f"{self.target.base_url}/v1/transactions/batch",
                json=body,
                headers=headers,
                timeout=60,
            )
            response.raise_for_status()
        self._wait_final(seq)

    # -- the references -----------------------------------------------------------------

    def run_reference_rows(self) -> None:
        from bench import reference

        seconds = max(10.0, self.seconds * 2 / 3)
        url = self.target.database_url
        self._say(f"raw SQL ceiling (pgbench, 8 clients, {seconds:.0f} s each)")
        self.results["raw_sql"] = reference.pgbench_ceiling(url, seconds)
        self._say(
            f"synchronous Flask, the seeds' design ({SINGLE_CLIENTS} clients, {seconds:.0f} s)"
        )
        port = launch.any_free_port()
        reference.setup_reference_schema(url)
        try:
            with reference.sync_reference_server(url, port):
                result = loadgen.closed_loop(
                    "127.0.0.1", port, self._sync_request(port), SINGLE_CLIENTS, seconds, ids=False
                )
                self.results["sync_flask"] = {
                    "ok": result.count(200),
                    "rate": result.count(200) / result.seconds,
                    "statuses": {str(k): v for k, v in result.statuses.items()},
                    "loadgen_cpu": result.cpu_seconds / result.seconds,
                }
                if "latency" in self.results:  # at the service's own latency rate
                    self.results["sync_latency"] = self._sync_latency(
                        port, self.results["latency"]["rate"], seconds
                    )
        finally:
            reference.drop_reference_schema(url)

    def _sync_latency(self, port: int, rate: float, seconds: float) -> dict[str, Any]:
        """The synchronous design's latency at the service's latency rate: its answer is
        the outcome, so submit to answer, timed from the scheduled send like the
        service's."""
        self._say(f"synchronous Flask latency at {rate:.0f}/s, {seconds:.0f} s")
        result = loadgen.open_loop("127.0.0.1", port, self._sync_request(port), rate, seconds)
        latencies = sorted(answer * 1000 for answer in result.answered)
        return {
            "rate": rate,
            "ok": result.count(200),
            "statuses": {str(k): v for k, v in result.statuses.items()},
            "p50_ms": _percentile(latencies, 50),
            "p99_ms": _percentile(latencies, 99),
        }

    def _sync_request(self, port: int) -> Callable[[int], bytes]:
        def make(n: int) -> bytes:
            body = b'{"user_id":"%d","amount":1}' % (n % 10_000)
            return (
                b"POST /spend HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % (port, len(body))
            ) + body

        return make

    def _say(self, message: str) -> None:
        print(f"bench | {message}", file=sys.stderr, flush=True)


class Sampler:
    """Samples the API's and workers' memory, and every component's CPU, in the background."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.stop = threading.Event()
        self.peak: dict[str, float] = {
            "api_rss": 0,
            "workers_rss": 0,
            "total_rss": 0,
            "total_pss": 0,
        }
        self.cpu_start: dict[int, tuple[str, float]] = {}

    def __enter__(self) -> Sampler:
        self.cpu_start = self._cpu()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def cpu_split(self) -> dict[str, float]:
        """CPU seconds per component since the sampler started (a snapshot), process by
        process: one that exited meanwhile (a PostgreSQL backend of a closed
        connection) is left out rather than subtracted from the rest."""
        totals: dict[str, float] = {}
        for pid, (role, seconds) in self._cpu().items():
            before = self.cpu_start.get(pid)
            used = seconds - (before[1] if before is not None and before[0] == role else 0.0)
            totals[role] = totals.get(role, 0.0) + used
        return {k: round(v, 1) for k, v in totals.items()}

    def peaks(self) -> dict[str, float]:
        return {k: round(v / 2**20) for k, v in self.peak.items()}

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            api = workers = pss = 0
            for role, process in _service_processes(self.target):
                try:
                    info = process.memory_full_info()
                except psutil.Error:
                    continue
                if role == "api":
                    api += info.rss
                else:
                    workers += info.rss
                pss += getattr(info, "pss", info.rss)
            for key, value in (
                ("api_rss", api),
                ("workers_rss", workers),
                ("total_rss", api + workers),
                ("total_pss", pss),
            ):
                self.peak[key] = max(self.peak[key], value)

    def _cpu(self) -> dict[int, tuple[str, float]]:
        found: dict[int, tuple[str, float]] = {}
        for process in psutil.process_iter(["name", "cmdline", "cpu_times"]):
            role = _role(process)
            if role is None:
                continue
            times = process.info["cpu_times"]
            if times is not None:
                found[process.pid] = (role, times.user + times.system)
        return found


def _service_processes(target: Target) -> list[tuple[str, psutil.Process]]:
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        role = _role(process)
        if role in ("api", "workers"):
            found.append((role, process))
    return found


def _role(process: psutil.Process) -> str | None:
    cmdline = " ".join(process.info.get("cmdline") or [])
    if "gunicorn" in cmdline and "api:create_app" in cmdline:
        return "api"
    if "celery" in cmdline and " worker " in f" {cmdline} ":
        return "workers"
    if (process.info.get("name") or "").startswith("postgres"):
        return "postgres"
    if "redis-server" in cmdline:
        return "redis"
    return None


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]
