"""The benchmark's one table, with every figure also as a ratio to the references."""

from __future__ import annotations

import re
import statistics
from typing import Any

from bench.scenarios import SINGLE_CLIENTS

HEADER = ("", "value", "vs raw SQL", "vs sync Flask")


def render(r: dict[str, Any]) -> str:
    return _table(HEADER, _rows(r))


def _rows(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The table's rows of one run: label, value, vs raw SQL, vs sync Flask."""
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
    sync_latency = r.get("sync_latency") or {}
    rows.append(
        (
            f"latency at {latency['rate']:.0f}/s: p50 / p99 (ms)",
            f"{_n(latency['p50_ms'])} / {_n(latency['p99_ms'])}",
            "",
            # The service's latency over the synchronous design's, at the same rate.
            (
                f"{_ratio(latency['p50_ms'], sync_latency['p50_ms'])} / "
                f"{_ratio(latency['p99_ms'], sync_latency['p99_ms'])}"
                if sync_latency.get("p50_ms") and sync_latency.get("p99_ms")
                else ""
            ),
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
    if sync_latency.get("p50_ms") is not None:
        rows.append(
            (
                f"sync Flask latency at {sync_latency['rate']:.0f}/s: p50 / p99",
                f"{_n(sync_latency['p50_ms'])} / {_n(sync_latency['p99_ms'])}",
                "",
                "1.00x / 1.00x",
            )
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
        ranked = sorted(cpu.items())  # one order in every run: --repeat takes medians
        split = ", ".join(f"{k} {v:.0f}" for k, v in ranked)
        rows.append(("CPU seconds during the single run", split, "", ""))
        accepted = single.get("accepted")
        if accepted:
            # Steadier than the rates on a shared machine: what one command costs.
            per = ", ".join(f"{k} {v * 1000 / accepted:.2f}" for k, v in ranked)
            total = sum(cpu.values()) * 1000 / accepted
            rows.append(("CPU ms per single command", per, f"total {total:.2f}", ""))

    return rows


def render_many(runs: list[dict[str, Any]]) -> str:
    """The table of several runs (`--repeat N`): each figure is the median of the runs'
    (a ratio too: the median of the ratios each run measured within itself), and a last
    column gives the spread of the row's first figure, lowest to highest."""
    if len(runs) == 1:
        return render(runs[0])
    tables = [_rows(r) for r in runs]
    if len({len(t) for t in tables}) != 1:
        raise ValueError("the runs measured different rows")
    rows: list[tuple[str, ...]] = []
    for cells_of_runs in zip(*tables, strict=True):
        cells = tuple(_median_cell([c[i] for c in cells_of_runs]) for i in range(4))
        rows.append((*cells, _spread([c[1] for c in cells_of_runs])))
    header = ("", f"median of {len(runs)}", "vs raw SQL", "vs sync Flask", "spread (min-max)")
    return _table(header, rows)


NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")


def _numbers(cell: str) -> list[float]:
    return [float(n.replace(",", "")) for n in NUMBER.findall(cell)]


def _median_cell(cells: list[str]) -> str:
    """The cell with each of its figures replaced by that figure's median over the runs."""
    figures = [_numbers(cell) for cell in cells]
    if len({len(f) for f in figures}) != 1 or not figures[0]:
        return cells[0]
    medians = iter([statistics.median(column) for column in zip(*figures, strict=True)])
    template = cells[0]
    decimals = [len(n.split(".")[1]) if "." in n else 0 for n in NUMBER.findall(template)]
    places = iter(decimals)

    def median(_: re.Match[str]) -> str:
        value, digits = next(medians), next(places)
        return f"{value:,.{digits}f}" if digits else f"{value:,.0f}"

    return NUMBER.sub(median, template)


def _spread(cells: list[str]) -> str:
    """The lowest and highest of the runs' first figure, and half that range as a share
    of the median."""
    firsts = [f[0] for f in (_numbers(cell) for cell in cells) if f]
    if len(firsts) != len(cells) or not firsts:
        return ""
    low, high, mid = min(firsts), max(firsts), statistics.median(firsts)
    share = f" (+/-{(high - low) / 2 / mid:.0%})" if mid else ""
    return f"{_n(low)}-{_n(high)}{share}"


def _table(
    header: tuple[str, ...], rows: list[tuple[str, ...]] | list[tuple[str, str, str, str]]
) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
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
