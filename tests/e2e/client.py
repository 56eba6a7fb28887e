"""An HTTP client for the running stack, as a game server would use it."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import requests

FINAL = ("completed", "rejected")


class Api:
    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url
        self.key = key
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        """One keep-alive session per thread (requests sessions are not thread-safe)."""
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def headers(self, key: str | None = None, **extra: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {key or self.key}", **extra}
        return headers

    def post(
        self,
        path: str,
        body: Any = None,
        idempotency_key: str | None = None,
        key: str | None = None,
    ) -> requests.Response:
        headers = self.headers(key)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return self.session.post(self.base_url + path, json=body, headers=headers, timeout=30)

    def get(self, path: str, key: str | None = None, **params: Any) -> requests.Response:
        return self.session.get(
            self.base_url + path, headers=self.headers(key), params=params, timeout=60
        )

    def submit(
        self, kind: str, body: dict[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Submit until the service answers 202 or 200 (retrying 503 with the same key)."""
        idempotency_key = idempotency_key or f"e2e-{uuid.uuid4().hex}"
        deadline = time.monotonic() + 60
        while True:
            response = self.post(f"/v1/transactions/{kind}", body, idempotency_key)
            if response.status_code in (200, 202):
                return response.json()
            if response.status_code != 503 or time.monotonic() > deadline:
                raise AssertionError(f"{kind} {body}: {response.status_code} {response.text}")
            time.sleep(float(response.headers.get("Retry-After", "1")) / 4)

    def final(self, tx_id: str, timeout: float = 60) -> dict[str, Any]:
        """Poll until the transaction is completed or rejected."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.get(f"/v1/transactions/{tx_id}")
            if response.status_code == 200 and response.json()["status"] in FINAL:
                return response.json()
            if time.monotonic() > deadline:
                raise AssertionError(f"{tx_id} not final after {timeout}s: {response.text}")
            time.sleep(0.05)

    def balance(self, user: str, asset: str = "GOLD_COINS") -> int:
        wallet = self.get(f"/v1/wallets/{user}").json()
        return next(b["balance"] for b in wallet["balances"] if b["asset"] == asset)

    def reconciliation(self) -> dict[str, Any]:
        response = self.get("/v1/admin/reconciliation")
        assert response.status_code == 200, response.text
        return response.json()
