"""Property-based fuzz of every documented operation, live against the stack (schemathesis).

Each operation gets its documented examples and a few generated requests (admin key):
no answer may be a 5xx, and each must have a documented status, content type and body
schema. WALLET_FUZZ_EXAMPLES raises the number of generated requests per operation.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Stack

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis is not installed: the API fuzz cannot run"
)
from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# About 60-90 s in all on a 2-core machine with the default; more finds more.
EXAMPLES = int(os.environ.get("WALLET_FUZZ_EXAMPLES", "100"))
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]
# Requests sent, per operation, for the figures printed at the end.
SENT: Counter[str] = Counter()
STATUSES: Counter[int] = Counter()


def _document() -> dict[str, Any]:
    """The document the service serves, built by the same app factory (at collection,
    before the stack runs: one test per operation). The requests go to the live stack."""
    from api import create_app

    with create_app().test_client() as client:
        return client.get("/openapi.json").get_json()  # type: ignore[no-any-return]


schema = schemathesis.openapi.from_dict(
    _document(),
    config=schemathesis.Config.from_dict(
        {
            "request-timeout": 60,
            # Documented examples, then generated requests. The coverage phase (every
            # boundary of every field) alone would take minutes per operation.
            "phases": {
                "examples": {"enabled": True},
                "fuzzing": {"enabled": True},
                "coverage": {"enabled": False},
                "stateful": {"enabled": False},
            },
            "generation": {"max-examples": EXAMPLES, "mode": "all", "allow-x00": True},
        }
    ),
)


@pytest.fixture(scope="module")
def figures(request: pytest.FixtureRequest) -> Iterator[None]:
    """Prints the run's figures once every operation was fuzzed."""
    started = time.monotonic()
    yield
    elapsed = time.monotonic() - started
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(
                f"\nAPI fuzz: {len(SENT)} operations, {sum(SENT.values())} requests, "
                f"{elapsed:.1f} s (WALLET_FUZZ_EXAMPLES={EXAMPLES}); "
                f"statuses {dict(sorted(STATUSES.items()))}"
            )


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    # No shrinking: each step would be another live request; the failing one is shown.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=list(HealthCheck),
    derandomize=False,
)
def test_every_operation_answers_as_documented(case: Any, stack: Stack, figures: None) -> None:
    SENT[case.operation.label] += 1
    response = case.call_and_validate(
        base_url=stack.api.base_url,
        headers={"Authorization": f"Bearer {stack.api.key}"},
        checks=CHECKS,
    )
    STATUSES[response.status_code] += 1
