"""`python -m bench --soak` (`make soak`): half load for a long while, memory at both ends.

A stack is started (or driven, with --url) the way `make bench` does; the players are
funded, the single-command rate is measured for 10 s (unless --rate is given), and then
commands are sent open-loop at half that rate for --soak-minutes (10 by default). Every
minute one line gives the RSS of each process group; at the end: RSS at start and end of
each group and its change, the commands accepted and applied, and the reconciliation.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import psutil

from bench import loadgen
from bench.scenarios import BENCH_DATA, USERS, Bench, Target, _role

GROUPS = ("api", "workers", "postgres", "redis")


def rss_by_group(target: Target | None = None) -> dict[str, int]:
    """MiB of resident memory of each process group of the stack (RSS; `<group>_pss`
    too: PostgreSQL's RSS counts its shared buffers in every backend that touched them,
    PSS shares them out). For a stack the benchmark started, only its own processes and
    servers count, not those of another stack on the machine (a test run's)."""
    totals = dict.fromkeys(GROUPS, 0)
    pss = dict.fromkeys(GROUPS, 0)
    for process in _processes(target):
        role = _role(process)
        if role not in totals:
            continue
        try:
            memory = process.memory_full_info()
        except psutil.Error:
            continue
        totals[role] += memory.rss
        pss[role] += getattr(memory, "pss", memory.rss)
    found = {k: round(v / 2**20) for k, v in totals.items()}
    found.update({f"{k}_pss": round(v / 2**20) for k, v in pss.items()})
    return found


def _processes(target: Target | None) -> list[psutil.Process]:
    if target is None or target.stack_pid is None:
        return list(psutil.process_iter(["name", "cmdline"]))
    from stack import embedded

    roots = [target.stack_pid]
    for server in (embedded.running_postgres(BENCH_DATA), embedded.running_redis(BENCH_DATA)):
        if server is not None:
            roots.append(server.pid)
    found = []
    for pid in roots:
        try:
            root = psutil.Process(pid)
            found += [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
    for process in found:  # _role reads these, as process_iter's attrs would give them
        try:
            process.info = {"name": process.name(), "cmdline": process.cmdline()}
        except psutil.Error:
            process.info = {}
    return found


def soak(bench: Bench, minutes: float, rate: float | None) -> dict[str, Any]:
    say = bench._say
    say(f"funding {USERS} players")
    bench._fund([f"bench-{i}" for i in range(USERS)], 10**12)
    bench._warm_up()
    if rate is None:
        single = bench._single("spread (to find the rate)", bench._spend_spread)
        rate = max(1.0, single["end_to_end"] / 2)
    seq = bench._max_seq()
    start = rss_by_group(bench.target)
    say(f"soak at {rate:.0f}/s for {minutes:g} min; RSS MiB at start {start}")
    run = uuid.uuid4().hex[:8]
    accepted, statuses, offset = 0, {}, 0
    deadline = time.monotonic() + minutes * 60
    peak = dict(start)
    while (left := deadline - time.monotonic()) > 1:
        chunk = min(60.0, left)
        first = offset  # keys continue across chunks: every command is a new one
        result = loadgen.open_loop(
            bench.target.host,
            bench.target.port,
            lambda n, first=first: bench._spend_spread(run, first + n),  # type: ignore[misc]
            rate,
            chunk,
        )
        offset += int(rate * chunk)
        accepted += len(result.accepted)
        for status, count in result.statuses.items():
            statuses[str(status)] = statuses.get(str(status), 0) + count
        now = rss_by_group(bench.target)
        peak = {k: max(peak[k], now[k]) for k in now}
        say(f"{accepted} accepted, RSS MiB {now}")
    bench._wait_final(seq)
    end = rss_by_group(bench.target)
    applied = _applied(bench, seq)
    reconciliation = bench.api.get(f"{bench.target.base_url}/v1/admin/reconciliation", timeout=600)
    reconciliation.raise_for_status()
    report = reconciliation.json()
    return {
        "rate": rate,
        "minutes": minutes,
        "statuses": statuses,
        "accepted": accepted,
        "applied": applied,
        "rss_start_mib": start,
        "rss_end_mib": end,
        "rss_peak_mib": peak,
        "reconciliation_ok": bool(report.get("ok")),
        "reconciliation": report,
    }


def _applied(bench: Bench, seq: int) -> dict[str, int]:
    import psycopg2

    with psycopg2.connect(bench.target.database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT status, count(*) FROM transactions WHERE client_id = %s AND seq > %s "
            "GROUP BY status",
            (bench.client_id, seq),
        )
        return {status: int(count) for status, count in cur}


def render(r: dict[str, Any]) -> str:
    lines = [f"soak: {r['minutes']:g} min at {r['rate']:.0f} commands/s (open loop)"]
    lines.append(f"{'RSS (MiB)':<12} {'start':>7} {'end':>7} {'peak':>7} {'change':>7}   PSS")
    for group in (*GROUPS, "api+workers"):
        if group == "api+workers":
            start = r["rss_start_mib"]["api"] + r["rss_start_mib"]["workers"]
            end = r["rss_end_mib"]["api"] + r["rss_end_mib"]["workers"]
            peak = r["rss_peak_mib"]["api"] + r["rss_peak_mib"]["workers"]
        else:
            start, end = r["rss_start_mib"][group], r["rss_end_mib"][group]
            peak = r["rss_peak_mib"][group]
        change = f"{(end - start) / start:+.0%}" if start else ""
        pss = ""
        if group != "api+workers" and f"{group}_pss" in r["rss_end_mib"]:
            pss = f"{r['rss_start_mib'][f'{group}_pss']} -> {r['rss_end_mib'][f'{group}_pss']}"
        lines.append(f"{group:<12} {start:>7} {end:>7} {peak:>7} {change:>7}   {pss}")
    applied = r["applied"]
    lines.append(
        f"commands: {r['accepted']} accepted (answers {r['statuses']}), "
        f"{sum(applied.values())} final: {applied}"
    )
    report = r["reconciliation"]
    lines.append(
        f"reconciliation: {'ok' if r['reconciliation_ok'] else 'NOT OK'} "
        f"({sum(len(a.get('mismatches', [])) for a in report.get('assets', []))} mismatches, "
        f"{len(report.get('unbalanced_transactions', []))} unbalanced transactions)"
    )
    return "\n".join(lines)
