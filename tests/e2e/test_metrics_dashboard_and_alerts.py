"""/metrics after some load passes promtool, holds what operators alert on, and names
every metric the shipped dashboard and alert rules use; the rules pass promtool."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_outcomes import game_client, topup_with_callback
from tests.receiver import Receiver
from tests.support import unique
from tests.tools import require

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC_NAME = re.compile(r"\b(wallet_[a-z0-9_]+)")


def load(api) -> None:
    """Completed and rejected commands, a callback, a 404, a 422: every family has samples."""
    receiver = Receiver()
    try:
        client = game_client(api, [receiver.host])
        topup_with_callback(api, client, receiver.url)
        assert receiver.wait_for(1, timeout=30)
    finally:
        receiver.stop()
    user = unique()
    done = api.submit("topup", {"user_id": user, "asset": "GOLD_COINS", "amount": 5})
    refused = api.submit("spend", {"user_id": user, "asset": "GOLD_COINS", "amount": 50})
    api.final(done["id"])
    assert api.final(refused["id"])["error"]["code"] == "insufficient_funds"
    assert api.get("/v1/transactions/00000000-0000-0000-0000-000000000000").status_code == 404
    assert api.post("/v1/transactions/topup", {"user_id": user}, unique()).status_code == 422


def scrape(stack) -> str:
    deadline = time.monotonic() + 30
    while True:
        # Beat's first reconciliation comes a few seconds after start, and consumers
        # (hence stalls) are known once the workers have answered an inspection.
        body = stack.api.get("/metrics").text
        ready = "\nwallet_reconciliation_ok " in body and "\nwallet_partition_stalled{" in body
        if ready or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


def exported_names(body: str) -> set[str]:
    return {s.name for f in text_string_to_metric_families(body) for s in f.samples}


def test_metrics_pass_promtool_and_hold_what_operators_alert_on(stack, api):
    promtool = require("promtool", "prometheus")
    load(api)
    body = scrape(stack)
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    names = exported_names(body)
    for name in (
        "wallet_oldest_pending_seconds",
        "wallet_partition_stalled",
        "wallet_partition_consumers",
        "wallet_broker_up",
        "wallet_queue_depth",
        "wallet_reconciliation_ok",
        "wallet_http_request_duration_seconds_bucket",
        "wallet_callback_deliveries_total",
    ):
        assert name in names, name
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(body)
        for s in f.samples
    }
    # Routes are URL rules, never raw paths; rejections carry their code.
    routes = {dict(k[1]).get("route") for k in samples if k[0] == "wallet_http_requests_total"}
    assert "/v1/transactions/<uuid:tx_id>" in routes
    assert not any(r and "00000000" in r for r in routes), routes
    rejected = [
        dict(k[1]) for k in samples if k[0] == "wallet_commands_rejected_total" and samples[k]
    ]
    assert {"type": "spend", "code": "insufficient_funds", "ledger": "default"} in rejected
    assert ("wallet_broker_up", ()) in samples and samples[("wallet_broker_up", ())] == 1
    assert samples[("wallet_reconciliation_ok", ())] == 1
    # Flower runs outside the shared metrics folder: none of its series leak in.
    assert not any(name.startswith("flower_") for name in names)


def test_the_alert_rules_pass_promtool_and_their_unit_tests():
    promtool = require("promtool", "prometheus")
    rules = DEPLOY / "prometheus"
    for command in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run([promtool, *command], cwd=rules, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_dashboard_panel_and_alert_names_metrics_the_service_exports(stack, api):
    load(api)
    names = exported_names(scrape(stack))
    dashboard = json.loads((DEPLOY / "grafana" / "wallet.json").read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert expressions and all(p["targets"] for p in dashboard["panels"])
    rules = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    for expression in [*expressions, rules]:
        used = set(METRIC_NAME.findall(expression))
        assert used, expression
        assert used <= names, (expression, used - names)
