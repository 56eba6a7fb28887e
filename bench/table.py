"""The benchmark's one table, with every figure also as a ratio to the references."""

from __future__ import annotations

from typing import Any

from bench.scenarios import SINGLE_CLIENTS


def render(r: dict[str, Any]) -> str:
    raw_one = (r.get("raw_sql") or {}).get("one_per_txn")
    raw_hundred = (r.get("raw_sql") or {}).get("hundred_per_txn")
    sync = (r.get("sync_flask") or {}).get("rate")
    spread = r["single"]["end_to_end"]
    rows: list[tuple[str, str, str, str]] = []

    def rate(label: str, value: float | None, vs_raw: float | None = raw_one) -> None:
        rows.append((label, _n(value), _ratio(value, vs_raw), _ratio(value, sync)))

    single, batch = r["single"], r["batch"]
    rate(f"single, intake (202/s, {SINGLE_CLIENTS} clients)", single["intake"])
    rate("single, end to end (commands/s)", single["end_to_end"])
    if "ruled" in r:
        ruled = r["ruled"]["end_to_end"]
        rows.append(
            (
                "  same, 24 h limit + expiring credits",
                _n(ruled),
                f"{ruled / spread:.0%} of plain spend",
                "",
            )
        )
    rate("batch of 100, intake (commands/s)", batch["intake"], raw_hundred)
    rate("batch of 100, end to end (commands/s)", batch["end_to_end"], raw_hundred)
    latency = r["latency"]
    rows.append(
        (
            f"latency at {latency['rate']:.0f}/s: p50 / p99 (ms)",
            f"{_n(latency['p50_ms'])} / {_n(latency['p99_ms'])}",
            "",
            "",
        )
    )
    if "intake_p50_ms" in latency:
        rows.append(
            (
                "  submit to intake / intake to applied, p50",
                f"{_n(latency['intake_p50_ms'])} / {_n(latency['apply_p50_ms'])}",
                f"p99: {_n(latency['intake_p99_ms'])} / {_n(latency['apply_p99_ms'])}",
                "",
            )
        )
    hot_wallet, hot_treasury = r["hot_wallet"]["end_to_end"], r["hot_treasury"]["end_to_end"]
    rows.append(
        ("hot wallet, end to end", _n(hot_wallet), f"{hot_wallet / spread:.0%} of spread", "")
    )
    rows.append(
        ("hot treasury, end to end", _n(hot_treasury), f"{hot_treasury / spread:.0%} of spread", "")
    )
    if "big_single" in r:
        big_single, big_batch = r["big_single"]["end_to_end"], r["big_batch"]["end_to_end"]
        rows.append(
            (
                "1M wallets/10M entries: single e2e",
                _n(big_single),
                f"{big_single / spread:.0%} of empty",
                "",
            )
        )
        rows.append(
            (
                "1M wallets/10M entries: batch e2e",
                _n(big_batch),
                f"{big_batch / batch['end_to_end']:.0%} of empty",
                "",
            )
        )
    if raw_one:
        rows.append(
            (
                "raw SQL, 1 command/txn (pgbench, 8 clients)",
                _n(raw_one),
                "1.00x",
                _ratio(raw_one, sync),
            )
        )
        rows.append(
            ("raw SQL, 100 commands/txn", _n(raw_hundred), _ratio(raw_hundred, raw_one), "")
        )
    if sync:
        rows.append(
            ("sync Flask, seeds' design (32 clients)", _n(sync), _ratio(sync, raw_one), "1.00x")
        )
    memory = r.get("memory", {})
    rows.append(
        (
            "peak memory, API + workers (MiB)",
            f"RSS {memory.get('total_rss')} / PSS {memory.get('total_pss')}",
            f"API {memory.get('api_rss')}, workers {memory.get('workers_rss')} (RSS)",
            "",
        )
    )
    rows.append(
        (
            "load generator CPU (share of one core)",
            f"{single['loadgen_cpu']:.0%}",
            "single-command run",
            "",
        )
    )
    cpu = r.get("resources", {})
    if cpu:
        split = ", ".join(f"{k} {v:.0f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]))
        rows.append(("CPU seconds during the single run", split, "", ""))

    header = ("", "value", "vs raw SQL", "vs sync Flask")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    line = "-+-".join("-" * w for w in widths)
    out = [_row(header, widths), line]
    out += [_row(row, widths) for row in rows]
    return "\n".join(out)


def _row(cells: tuple[str, ...], widths: list[int]) -> str:
    return " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()


def _n(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _ratio(value: float | None, reference: float | None) -> str:
    if not value or not reference:
        return ""
    return f"{value / reference:.2f}x"
