"""An operator's view of Flower in a real browser (headless Chromium through
Playwright): behind its basic auth, the broker page lists the partition queues and the
tasks page shows a drain task with what it applied as its result. Screenshots go to
the test's tmp folder (printed), for a human to look at."""

from __future__ import annotations

import re

import pytest
import requests

from ledger import partition_of
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
            wanted = {f"partition.{p}" for p in range(8)}
            # Flower learns the queues from the workers' replies; a worker restarted by an
            # earlier test (a SIGKILL) is known again only after it answers.
            for _ in range(60):
                # Ask Flower to inspect the workers again: it keeps what it learned
                # at start, and a worker restarted since is a new process.
                requests.get(
                    f"{stack.flower_url}/api/workers",
                    params={"refresh": "1"},
                    auth=stack.flower_auth,
                    timeout=10,
                )
                page.goto(f"{stack.flower_url}/broker")
                table = page.locator("#queue-table")
                table.wait_for()
                queues = set(table.locator("tbody tr td:first-child").all_inner_texts())
                if wanted <= queues:
                    break
                page.wait_for_timeout(500)
            page.screenshot(path=str(tmp_path / "flower-broker.png"), full_page=True)
            assert wanted <= queues, queues

            page.goto(f"{stack.flower_url}/tasks")
            page.locator("#tasks-table").wait_for()
            page.get_by_role("searchbox").fill("wallet.apply_partition")
            drain = page.locator("#tasks-table tbody tr", has_text="wallet.apply_partition")
            drain.first.wait_for(timeout=15_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(tmp_path / "flower-tasks.png"), full_page=True)
            # The drain that applied our top-up, opened from the list: its result (the
            # task's return value, from its task-succeeded event) says what it applied.
            applied = _drain_that_applied_something(stack, partition_of(user, 8))
            page.get_by_role("searchbox").fill(applied)
            page.get_by_role("link", name=applied).click()
            page.wait_for_url(f"**/task/{applied}")
            page.get_by_text("Result").first.wait_for()
            page.screenshot(path=str(tmp_path / "flower-drain-task.png"), full_page=True)
            text = page.locator("body").inner_text()
            assert "SUCCESS" in text
            assert re.search(r"'commands': [1-9]", text), text
            for key in ("'partition':", "'completed':", "'rejected':"):
                assert key in text, key
        finally:
            browser.close()
    print(f"screenshots: {tmp_path}")


def _drain_that_applied_something(stack, partition: int) -> str:
    """The id of a drain task of `partition` whose result counts applied commands."""
    tasks = requests.get(
        f"{stack.flower_url}/api/tasks",
        params={"taskname": "wallet.apply_partition", "state": "SUCCESS"},
        auth=stack.flower_auth,
        timeout=10,
    ).json()
    for task_id, task in tasks.items():
        result = task.get("result") or ""
        if f"'partition': {partition}," in result and not re.search(r"'commands': 0\b", result):
            return str(task_id)
    raise AssertionError(f"no drain of partition {partition} applied anything: {tasks}")
