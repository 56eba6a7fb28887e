"""An operator's view of Flower in a real browser (headless Chromium through
Playwright): behind its basic auth, the broker page lists the partition queues and the
tasks page shows a drain task with what it applied as its result. Screenshots go to
the test's tmp folder (printed), for a human to look at."""

from __future__ import annotations

import re

import pytest
import requests

from tests.support import unique
from tests.tools import require

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def test_flower_shows_the_partition_queues_and_a_drain_with_its_result(stack, api, tmp_path):
    chromium = require("chromium", "chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    user = unique()
    tx = api.submit("topup", {"user_id": user, "asset": "GOLD_COINS", "amount": 5})
    api.final(tx["id"])
    user_name, password = stack.flower_auth
    assert requests.get(f"{stack.flower_url}/broker", timeout=10).status_code == 401
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                http_credentials={"username": user_name, "password": password},
                viewport={"width": 1400, "height": 900},
            )
            page = context.new_page()
            page.goto(f"{stack.flower_url}/broker")
            table = page.locator("#queue-table")
            table.wait_for()
            queues = set(table.locator("tbody tr td:first-child").all_inner_texts())
            page.screenshot(path=str(tmp_path / "flower-broker.png"), full_page=True)
            assert {f"partition.{p}" for p in range(8)} <= queues, queues

            page.goto(f"{stack.flower_url}/tasks")
            page.locator("#tasks-table").wait_for()
            page.get_by_role("searchbox").fill("wallet.apply_partition")
            drain = page.locator("#tasks-table tbody tr", has_text="wallet.apply_partition")
            drain.first.wait_for(timeout=15_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(tmp_path / "flower-tasks.png"), full_page=True)
            row = drain.first.inner_text()
            assert "SUCCESS" in row, row
            # The result Flower shows is the drain's report: what it applied.
            assert re.search(r"'commands': [1-9]", row), row
            assert "'completed':" in row and "'rejected':" in row and "'partition':" in row
        finally:
            browser.close()
    print(f"screenshots: {tmp_path}")
