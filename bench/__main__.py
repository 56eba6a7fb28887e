"""`python -m bench` (`make bench`): measure the service and print one table.

It starts a stack the way `make run` does (embedded PostgreSQL and Redis under
.data/bench, a fresh database) unless --url points at a running one, drives it over
HTTP with bench/loadgen.py, reads outcomes from PostgreSQL, and measures the reference
rows (raw SQL with pgbench, a synchronous Flask service) on the same machine in the
same run. It measures and prints; it does not pass or fail.

--repeat N runs it all N times (a fresh stack and database each time) and prints the
median of each figure and its spread. --soak runs bench/soak.py instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench import soak
from bench.scenarios import Bench, Target, bench_stack, stop_bench_servers
from bench.table import render_many

RESULTS = Path(os.environ.get("WALLET_DATA_DIR", ".data")) / "bench-results.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=30, help="load per throughput row")
    parser.add_argument("--short", action="store_true", help="10 s rows, for a quick look")
    parser.add_argument("--url", help="drive this running stack instead of starting one")
    parser.add_argument("--database-url", help="its DATABASE_URL (with --url)")
    parser.add_argument("--admin-key", help="its WALLET_ADMIN_KEY (with --url)")
    parser.add_argument("--skip-big", action="store_true", help="skip the 1M-wallet rows")
    parser.add_argument("--skip-reference", action="store_true", help="skip pgbench, sync Flask")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run everything N times; medians and spread"
    )
    parser.add_argument("--soak", action="store_true", help="half load for --soak-minutes")
    parser.add_argument("--soak-minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, help="the soak's rate (default: half the single)")
    parser.add_argument(
        "--latency-at",
        metavar="RATE[,RATE...]",
        help="only the latency row, at these offered rates (commands/s), one stack",
    )
    args = parser.parse_args(argv)
    if args.soak:
        return _soak(args)
    if args.latency_at:
        return _latency_at([float(r) for r in args.latency_at.split(",")], args)
    seconds = 10.0 if args.short else args.seconds

    started = time.time()
    runs = []
    for run in range(max(1, args.repeat)):
        if args.repeat > 1:
            print(f"bench | run {run + 1} of {args.repeat}", file=sys.stderr, flush=True)
        try:
            with bench_stack(Target.from_args(args)) as target:
                bench = Bench(target, seconds)
                bench.run_service_rows(big=not args.skip_big)
            if not args.skip_reference:
                bench.run_reference_rows()
        finally:
            if not args.url:
                stop_bench_servers()  # make bench leaves nothing running behind it
        runs.append(bench.results)
    results: dict[str, object] = dict(runs[-1]) if len(runs) == 1 else {"runs": runs}
    results["elapsed_seconds"] = round(time.time() - started)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(render_many(runs), flush=True)
    print(f"\n(raw figures: {RESULTS})", file=sys.stderr)
    return 0


def _latency_at(rates: list[float], args: argparse.Namespace) -> int:
    """The latency row at each offered rate, on one stack: submit to applied, and its
    split at the intake transaction (created_at), for each command of the row."""
    rows = []
    try:
        with bench_stack(Target.from_args(args)) as target:
            bench = Bench(target, 10.0 if args.short else args.seconds)
            bench.prepare()
            rows.extend(bench._latency(rate) for rate in rates)
    finally:
        if not args.url:
            stop_bench_servers()
    print("rate/s  commands  p50 ms  p99 ms  intake p50 / p99  applied p50 / p99")
    for r in rows:
        print(
            f"{r['rate']:>6.0f}  {r['commands']:>8}  {r['p50_ms']:>6.1f}  {r['p99_ms']:>6.1f}"
            f"  {r['intake_p50_ms']:>6.1f} / {r['intake_p99_ms']:<6.1f}"
            f"  {r['apply_p50_ms']:>6.1f} / {r['apply_p99_ms']:.1f}"
        )
    return 0


def _soak(args: argparse.Namespace) -> int:
    try:
        with bench_stack(Target.from_args(args)) as target:
            result = soak.soak(Bench(target, 10.0), args.soak_minutes, args.rate)
    finally:
        if not args.url:
            stop_bench_servers()
    path = RESULTS.with_name("soak-results.json")
    path.write_text(json.dumps(result, indent=2))
    print(soak.render(result), flush=True)
    print(f"\n(raw figures: {path})", file=sys.stderr)
    return 0 if result["reconciliation_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
