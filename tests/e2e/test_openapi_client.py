"""A client generated from /openapi.json (openapi-python-client) works against the stack.

If the document lied about a body, a status or a type, the generated client would not
build the request, or would not parse the answer into its models.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from types import ModuleType
from typing import Any

import pytest

from tests.e2e.conftest import Stack
from tests.support import unique

PACKAGE = "wallet_client"


@pytest.fixture(scope="module")
def generated(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The client package generated from the running service's document, imported."""
    try:
        import openapi_python_client  # noqa: F401
    except ImportError as error:
        pytest.skip(f"openapi-python-client is not installed ({error}): no generated client")
    root = tmp_path_factory.mktemp("generated")
    document = root / "openapi.json"
    response = stack.api.get("/openapi.json")
    assert response.status_code == 200, response.text
    document.write_bytes(response.content)
    config = root / "config.yaml"
    config.write_text("post_hooks: []\n")  # no ruff run over the generated code
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(document),
            "--meta",
            "none",
            "--output-path",
            str(root / PACKAGE),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # A warning means part of the document could not be turned into code.
    assert "Warning" not in output, output
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_generated_client_tops_up_spends_long_polls_and_types_a_rejection(
    stack: Stack, generated: ModuleType
) -> None:
    models = _module("models")
    topup_op = _module("api.transactions.post_v1_transactions_topup")
    spend_op = _module("api.transactions.post_v1_transactions_spend")
    read_op = _module("api.transactions.get_v1_transactions_tx_id")
    wallet_op = _module("api.wallets.get_v1_wallets_user_id")
    # Long polls hold the request up to `wait` seconds: a timeout above it.
    client = generated.AuthenticatedClient(
        base_url=stack.api.base_url, token=stack.api.key, timeout=30.0
    )
    user = unique()

    def submit(operation: Any, body: Any) -> Any:
        response = operation.sync_detailed(
            client=client, body=body, idempotency_key=f"oapc-{uuid.uuid4().hex}"
        )
        assert response.status_code == 202, response.content
        assert isinstance(response.parsed, models.Transaction), response.parsed
        assert response.headers["Location"] == f"/v1/transactions/{response.parsed.id}"
        return response.parsed

    def long_poll(tx_id: str) -> Any:
        response = read_op.sync_detailed(tx_id=uuid.UUID(tx_id), client=client, wait=5.0)
        assert response.status_code == 200, response.content
        assert isinstance(response.parsed, models.Transaction), response.parsed
        return response.parsed

    topup = submit(topup_op, models.TopUp(user_id=user, asset="GOLD_COINS", amount=100))
    assert long_poll(topup.id).status == "completed"

    spend = submit(spend_op, models.Spend(user_id=user, asset="GOLD_COINS", amount=30))
    spent = long_poll(spend.id)
    assert spent.status == "completed"
    assert spent.error is None
    assert spent.balance_after == 70

    too_much = submit(spend_op, models.Spend(user_id=user, asset="GOLD_COINS", amount=71))
    rejected = long_poll(too_much.id)
    assert rejected.status == "rejected"
    assert isinstance(rejected.error, models.Rejection), rejected.error
    assert rejected.error.code == "insufficient_funds"
    assert rejected.entries == []

    wallet = wallet_op.sync(user_id=user, client=client)
    assert isinstance(wallet, models.Wallet), wallet
    assert [(b.asset, b.balance, b.available) for b in wallet.balances] == [("GOLD_COINS", 70, 70)]


def test_generated_client_reads_a_refusal_as_a_problem(stack: Stack, generated: ModuleType) -> None:
    models = _module("models")
    topup_op = _module("api.transactions.post_v1_transactions_topup")
    client = generated.AuthenticatedClient(base_url=stack.api.base_url, token=stack.api.key)
    response = topup_op.sync_detailed(
        client=client,
        body=models.TopUp(user_id=unique(), asset="NO_SUCH_ASSET", amount=1),
        idempotency_key=f"oapc-{uuid.uuid4().hex}",
    )
    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.parsed
    assert isinstance(problem, models.Problem), problem
    assert (problem.status, problem.code) == (422, "unknown_asset")
