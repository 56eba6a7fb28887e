"""The 24-hour spend limit under real concurrency: HTTP requests from threads while
threads drain, against the real database."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from api import create_app
from ledger import partition_of
from tests.integration.conftest import ADMIN, post
from tests.integration.helpers import Drainers, drain_all, statuses
from tests.support import unique


def test_1000_concurrent_spends_of_1_under_a_limit_of_100_complete_exactly_100_times(rings):
    app = create_app({"TESTING": True})
    local = threading.local()

    def client():  # a test client per thread, as a server's worker threads would have
        if not hasattr(local, "client"):
            local.client = app.test_client()
        return local.client

    asset = "C_" + uuid.uuid4().hex[:12].upper()
    created = post(
        client(), "/v1/assets", {"code": asset, "name": asset, "spend_limit_24h": 100}, None
    )
    assert created.status_code == 201
    user = unique()
    topup = post(
        client(),
        "/v1/transactions/topup",
        {"user_id": user, "asset": asset, "amount": 1000},
        unique("k"),
    )
    assert topup.status_code == 202
    drain_all()

    def spend(_: int) -> str:
        response = post(
            client(),
            "/v1/transactions/spend",
            {"user_id": user, "asset": asset, "amount": 1},
            unique("k"),
        )
        assert response.status_code == 202, response.get_json()
        return str(response.get_json()["id"])

    with Drainers({partition_of(user, 8)}), ThreadPoolExecutor(max_workers=32) as pool:
        spends = list(pool.map(spend, range(1000)))
    assert statuses(spends) == Counter(
        {("completed", None): 100, ("rejected", "spend_limit_exceeded"): 900}
    )
    wallet = client().get(f"/v1/wallets/{user}", headers=ADMIN).get_json()
    assert next(b for b in wallet["balances"] if b["asset"] == asset)["balance"] == 900
