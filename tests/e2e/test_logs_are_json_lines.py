"""Every process logs JSON lines, and one request id follows a command from the API's
line for its request to the line of the drain batch that applied it."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from tests.support import unique

FIELDS = {"ts", "level", "process", "event", "request_id", "transaction_id"}


def log_records(log: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The stack log's lines as (parsed JSON records, lines outside any process).

    The supervisor prefixes each child's line with "name | "; its own lines are JSON on
    stderr ("stack | " when they come from its loop); the other lines with no prefix
    are its start-up banner for humans (stdout). A last line still being written is
    left out.
    """
    records, bare = [], []
    text = log.read_text(errors="replace")
    for line in text.splitlines()[: -1 if not text.endswith("\n") else None]:
        if line.startswith("{"):
            record = json.loads(line)
            assert record["process"] == "stack" and set(record) >= FIELDS, record
            records.append(record)
            continue
        name, bar, rest = line.partition(" | ")
        if not bar or " " in name.strip():
            bare.append(line)
            continue
        record = json.loads(rest)  # fails the test on any line that is not JSON
        assert set(record) >= FIELDS, record
        assert record["process"] == name.strip(), line
        records.append(record)
    return records, bare


def test_every_process_logs_json_and_a_request_id_follows_its_command(stack, api):
    request_id = f"e2e-{uuid.uuid4().hex}"
    response = api.session.post(
        f"{api.base_url}/v1/transactions/topup",
        json={"user_id": unique(), "asset": "GOLD_COINS", "amount": 3},
        headers=api.headers(**{"Idempotency-Key": unique(), "X-Request-Id": request_id}),
        timeout=30,
    )
    assert response.status_code == 202 and response.headers["X-Request-Id"] == request_id
    tx_id = response.json()["id"]
    api.final(tx_id)

    deadline = time.monotonic() + 15
    while True:
        records, bare = log_records(stack.log)
        request_lines = [
            r for r in records if r["process"] == "api" and r["request_id"] == request_id
        ]
        drain_lines = [
            r
            for r in records
            if r["process"].startswith("partitions-")
            and r["event"] == "batch applied"
            and request_id in r["request_ids"]
        ]
        if request_lines and drain_lines:
            break
        assert time.monotonic() < deadline, (request_lines, drain_lines)
        time.sleep(0.3)

    (line,) = request_lines
    assert line["event"] == "request" and line["status"] == 202
    assert line["route"] == "/v1/transactions/topup" and line["transaction_id"] == tx_id
    (batch,) = drain_lines
    assert batch["transaction_ids"][batch["request_ids"].index(request_id)] == tx_id
    assert batch["commands"] == batch["completed"] + batch["rejected"] >= 1
    assert {"partition", "duration_ms"} <= set(batch)

    processes = {r["process"] for r in records}
    # (The supervisor's own lines come on events: a restart, a stop, an embedded server.)
    expected = {"api", "callbacks", "beat", "flower", "migrate", "seed"}
    assert expected <= processes, expected - processes
    assert {p for p in processes if p.startswith("partitions-")} == {
        f"partitions-{i}" for i in range(4)
    }
    # The only lines outside a process are the supervisor's banner for humans.
    banner = [line for line in bare if line.strip() and not line.startswith("  ")]
    assert all(set(line) <= {"="} for line in banner), banner
