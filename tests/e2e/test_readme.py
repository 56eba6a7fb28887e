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
        "/v1/assets",
        "/v1/admin/clients",
        "/v1/admin/reconciliation",
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
