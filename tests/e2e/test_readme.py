"""The README's curl examples run as written against the running stack."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- examples:"


def examples() -> list[str]:
    text = README.read_text()
    after = text[text.index(MARKER) :]
    return re.findall(r"```sh\n(.*?)```", after, flags=re.S)


def test_there_are_examples_for_every_endpoint_family():
    script = "\n".join(examples())
    for path in (
        "/v1/transactions/topup",
        "/v1/wallets/",
        "/statement?",
        "?at=",
        "/freeze",
        "/v1/assets",
        "/v1/admin/clients",
        "/v1/admin/reconciliation",
        "/v1/admin/ledgers",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ):
        assert path in script, path


def test_every_readme_example_succeeds(stack, api):
    env = {**os.environ, "WALLET": stack.api.base_url, "KEY": stack.api.key}
    for block in examples():
        result = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + block],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, (
            f"{block}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )


def test_the_receiver_example_verifies_our_signatures_and_dedupes():
    import time

    from worker.callbacks import sign

    (snippet,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    namespace: dict = {}
    exec(snippet, namespace)  # the README's own code, as a receiver would paste it
    body = b'{"event":"transaction.completed","data":{}}'
    timestamp = str(int(time.time()))
    headers = {
        "Wallet-Timestamp": timestamp,
        "Wallet-Signature": sign("whsec_x", timestamp, body.decode()),
        "Wallet-Event-Id": "e-1",
    }
    assert namespace["verify"]("whsec_x", headers, body)
    assert not namespace["verify"]("whsec_y", headers, body)
    assert not namespace["verify"]("whsec_x", headers, body + b" ")
    stale = {**headers, "Wallet-Timestamp": str(int(time.time()) - 3600)}
    stale["Wallet-Signature"] = sign("whsec_x", stale["Wallet-Timestamp"], body.decode())
    assert not namespace["verify"]("whsec_x", stale, body)
    seen: set[str] = set()
    assert namespace["handle"]("whsec_x", headers, body, seen) == 200
    assert namespace["handle"]("whsec_x", headers, body, seen) == 200 and seen == {"e-1"}
