"""What the workers count, for /metrics (prometheus-client, multiprocess mode)."""

from prometheus_client import Counter, Histogram

import telemetry  # noqa: F401 - before any metric is created

# By ledger too: an operator asks "is this title's traffic applying?" (ledgers are few).
COMMANDS_APPLIED = Counter(
    "wallet_commands_applied_total",
    "Commands that completed, by type and ledger",
    ["type", "ledger"],
)
COMMANDS_REJECTED = Counter(
    "wallet_commands_rejected_total",
    "Commands that were rejected, by type, rejection code and ledger",
    ["type", "code", "ledger"],
)
APPLY_LATENCY = Histogram(
    "wallet_apply_latency_seconds",
    "From acceptance (the 202) to a final status",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SIZE = Histogram(
    "wallet_drain_batch_commands",
    "Commands applied per drain transaction",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
)
HOLDS_EXPIRED = Counter("wallet_holds_expired_total", "Holds released because their time ran out")
CALLBACKS_DELIVERED = Counter("wallet_callbacks_delivered_total", "Callbacks a receiver accepted")
CALLBACK_FAILURES = Counter(
    "wallet_callback_failures_total", "Callback attempts that failed (any non-2xx or error)"
)
CALLBACK_DELIVERIES = Counter(
    "wallet_callback_deliveries_total",
    "Callback attempts by outcome: delivered, retry (failed, tried again), failed (final)",
    ["outcome"],
)
DOORBELL_FAILURES = Counter(
    "wallet_doorbell_failures_total",
    "Rings that could not reach Redis (their commands wait for the sweeper)",
)
