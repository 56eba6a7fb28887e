"""The benchmark's own machinery is correct: counts, statuses, ids, the table.

No timing is asserted here: a benchmark measures, a test checks.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bench import loadgen
from bench.table import render, render_many


@pytest.fixture
def server():
    seen: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the service speaks

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(body)
            status = 422 if b"bad" in body else 202
            answer = json.dumps({"id": str(uuid.uuid4()), "status": "pending"}).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1], seen
    httpd.shutdown()


def request(port: int, n: int) -> bytes:
    body = b'{"n": %d, "kind": "%s"}' % (n, b"bad" if n % 10 == 0 else b"good")
    return loadgen.encode_post(f"127.0.0.1:{port}", "/v1/transactions/spend", "k", body, f"key-{n}")


def test_closed_loop_counts_every_answer_and_parses_ids(server):
    port, seen = server
    result = loadgen.closed_loop("127.0.0.1", port, lambda n: request(port, n), 4, 0.5)
    total = sum(result.statuses.values())
    assert total == len(seen) > 0
    assert result.count(202) == len(result.accepted)
    assert result.count(422) == sum(1 for body in seen if b"bad" in body)
    assert all(len(ids) == 1 and uuid.UUID(ids[0]) for _, ids in result.accepted)
    assert result.finished > result.started and result.cpu_seconds >= 0


def test_open_loop_sends_the_scheduled_number_of_requests(server):
    port, seen = server
    result = loadgen.open_loop("127.0.0.1", port, lambda n: request(port, n), rate=200, seconds=0.5)
    assert sum(result.statuses.values()) == len(seen) == 100
    sent = sorted(when for when, _ in result.accepted)
    assert sent[-1] - sent[0] == pytest.approx(0.5, abs=0.1)  # scheduled, not as fast as possible


def test_open_loop_times_each_answer_from_its_scheduled_send(server):
    port, _ = server
    result = loadgen.open_loop("127.0.0.1", port, lambda n: request(port, n), rate=200, seconds=0.5)
    assert len(result.answered) == len(result.accepted) == result.count(202) > 0
    assert all(0 < seconds < 5 for seconds in result.answered)


def results_with(end_to_end: float = 900.0, p50: float = 8.0) -> dict[str, Any]:
    row = {"intake": 1000.0, "end_to_end": end_to_end, "loadgen_cpu": 0.05, "accepted": 9000}
    return {
        "single": row,
        "batch": {**row, "intake": 6000.0, "end_to_end": 5800.0},
        "latency": {"rate": 450, "p50_ms": p50, "p99_ms": 50.0},
        "hot_wallet": {**row, "end_to_end": 600.0},
        "hot_treasury": {**row, "end_to_end": 880.0},
        "big_single": {**row, "end_to_end": 850.0},
        "big_batch": {**row, "end_to_end": 5000.0},
        "raw_sql": {"one_per_txn": 4000.0, "hundred_per_txn": 10000.0},
        "sync_flask": {"rate": 1200.0},
        "memory": {"total_rss": 500, "total_pss": 400, "api_rss": 200, "workers_rss": 300},
        "resources": {"api": 8.0, "postgres": 6.0},
        "sync_latency": {"rate": 450, "p50_ms": 4.0, "p99_ms": 100.0},
    }


def test_the_table_shows_every_row_and_ratio():
    table = render(results_with())
    assert "0.23x" in table  # 900 end to end / 4,000 raw SQL
    assert "0.75x" in table  # 900 / 1,200 sync Flask
    assert "67% of spread" in table and "98% of spread" in table
    assert "94% of empty" in table
    assert "8.0 / 50.0" in table
    # CPU per command: seconds of the single run over its 9,000 commands.
    assert "api 0.89, postgres 0.67" in table and "total 1.56" in table
    # Latency against the synchronous design's at the same rate: 8 / 4 and 50 / 100.
    assert "2.00x / 0.50x" in table and "4.0 / 100" in table


def test_repeated_runs_give_each_figure_as_a_median_with_its_spread():
    runs = [results_with(800.0, 9.0), results_with(1000.0, 7.0), results_with(900.0, 8.0)]
    table = render_many(runs)
    single = next(line for line in table.splitlines() if line.startswith("single, end to end"))
    assert "| 900 " in single and "800-1,000 (+/-11%)" in single
    assert "0.23x" in single and "0.75x" in single  # the median of the runs' own ratios
    latency = next(line for line in table.splitlines() if line.startswith("latency at"))
    assert "8.0 / 50.0" in latency and "7.0-9.0" in latency
    assert render_many(runs[:1]) == render(runs[0])


def test_the_soak_report_gives_each_group_at_both_ends_and_the_reconciliation():
    from bench import soak

    start = {"api": 200, "workers": 300, "postgres": 1000, "redis": 20}
    end = {"api": 220, "workers": 300, "postgres": 1100, "redis": 20}
    text = soak.render(
        {
            "minutes": 10,
            "rate": 150.0,
            "statuses": {"202": 90000},
            "accepted": 90000,
            "applied": {"completed": 89990, "rejected": 10},
            "rss_start_mib": {**start, "postgres_pss": 400},
            "rss_end_mib": {**end, "postgres_pss": 410},
            "rss_peak_mib": end,
            "reconciliation_ok": True,
            "reconciliation": {"ok": True, "assets": [{"mismatches": []}]},
        }
    )
    assert "10 min at 150 commands/s" in text
    assert any(
        line.split()[:6] == ["api", "200", "220", "220", "+10%"][:6] for line in text.splitlines()
    )
    assert "api+workers      500     520     520     +4%" in text
    assert "400 -> 410" in text
    assert "90000 accepted" in text and "90000 final" in text
    assert "reconciliation: ok (0 mismatches, 0 unbalanced transactions)" in text


def test_cpu_of_a_process_that_exited_is_not_subtracted_from_the_rest():
    from bench.scenarios import Sampler, Target

    sampler = Sampler(Target())
    # A PostgreSQL backend seen at the start (100 s of CPU) that has exited since.
    sampler.cpu_start = {2**31 - 7: ("postgres", 100.0)}
    assert all(seconds >= 0 for seconds in sampler.cpu_split().values())
