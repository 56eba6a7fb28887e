"""Asset rules changed while drains apply commands: no deadlock, no poisoned batch, and
the books still reconcile (lots, when kept, always sum to the available balance)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

from api import create_app
from ledger import partition_of
from tests.integration.conftest import ADMIN, post
from tests.integration.helpers import Drainers, drain_all, statuses
from tests.support import unique


def test_toggling_a_lifetime_and_a_limit_while_spending_breaks_nothing(rings):
    client = create_app({"TESTING": True}).test_client()
    asset = "C_" + uuid.uuid4().hex[:12].upper()
    body = {"code": asset, "name": asset, "credit_lifetime": 3600}
    assert post(client, "/v1/assets", body, None).status_code == 201
    users = [unique() for _ in range(20)]
    for user in users:
        topup = {"user_id": user, "asset": asset, "amount": 10_000}
        assert post(client, "/v1/transactions/topup", topup, unique("k")).status_code == 202
    drain_all()

    ids: list[str] = []
    stop = threading.Event()

    def spender() -> None:
        own = create_app({"TESTING": True}).test_client()
        n = 0
        while not stop.is_set() and n < 150:
            user = users[n % len(users)]
            kind = "hold" if n % 7 == 0 else "spend"
            command = {"user_id": user, "asset": asset, "amount": 1}
            if kind == "hold":
                command["expires_in"] = 1
            response = post(own, f"/v1/transactions/{kind}", command, unique("k"))
            assert response.status_code == 202
            ids.append(response.get_json()["id"])
            n += 1

    settings = [
        {"credit_lifetime": None},
        {"credit_lifetime": 3600, "spend_limit_24h": 10**9},
        {"spend_limit_24h": None},
        {"credit_lifetime": None, "max_balance": 10**9},
        {"credit_lifetime": 60},
    ]
    partitions = {partition_of(u, 8) for u in users}
    with Drainers(partitions):
        threads = [threading.Thread(target=spender) for _ in range(3)]
        for thread in threads:
            thread.start()
        for n in range(25):
            change = settings[n % len(settings)]
            response = client.patch(f"/v1/assets/{asset}", json=change, headers=ADMIN)
            assert response.status_code == 200, response.get_json()
        for thread in threads:
            thread.join()
        stop.set()
    drain_all()
    outcome = statuses(ids)
    assert sum(outcome.values()) == len(ids) == 450
    assert set(outcome) <= {("completed", None)}, outcome
    assert Counter(code for _, code in outcome.elements())[None] == 450
