"""What the API counts, and /metrics for the whole service (prometheus-client).

Under gunicorn every process writes its samples to PROMETHEUS_MULTIPROC_DIR, the
workers included, and /metrics aggregates them all.
"""

from __future__ import annotations

import json
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

import telemetry  # noqa: F401 - before any metric is created

COMMANDS_ACCEPTED = Counter(
    "wallet_commands_accepted_total",
    "Commands accepted (first 202), by type and ledger",
    ["type", "ledger"],
)


class QueueDepth(Collector):
    """Per partition, at scrape time: doorbells queued in Redis, the backlog in SQL, its
    consumers and whether it is stalled; the broker's health; the last reconciliation.

    When Redis cannot be read, wallet_queue_depth keeps its last value (a series that
    vanishes looks like an empty queue on a graph) and wallet_broker_up says 0.
    Consumers come from a cached census (worker.consumers): a scrape never broadcasts.
    """

    def collect(self):  # type: ignore[no-untyped-def]
        from db import partitioning
        from db.admin_reads import partition_backlogs
        from db.engine import autocommit
        from worker.consumers import census
        from worker.doorbell import redis_client
        from worker.observe import RECONCILIATION_KEY
        from worker.routing import partition_queues, queue_name

        # The count in force is the database's (it changes with `stack repartition`).
        partitions = partitioning.current()
        labels = ["partition"]
        queued = GaugeMetricFamily(
            "wallet_queue_depth", "Messages waiting in a partition queue", labels=labels
        )
        broker_up = GaugeMetricFamily(
            "wallet_broker_up", "1 if the broker (Redis) answered this scrape, else 0"
        )
        verdict = None
        try:
            pipe = redis_client().pipeline(transaction=False)
            for queue in partition_queues(partitions):
                pipe.llen(queue)
            pipe.get(RECONCILIATION_KEY)
            *depths, verdict = pipe.execute()
            _last_depth.update(enumerate(depths))
            broker_up.add_metric([], 1)
        except Exception:
            broker_up.add_metric([], 0)
        for partition, depth in sorted(_last_depth.items()):
            if partition < partitions:
                queued.add_metric([str(partition)], depth)
        yield queued
        yield broker_up

        pending = GaugeMetricFamily(
            "wallet_pending_commands", "Commands accepted and not yet applied", labels=labels
        )
        oldest = GaugeMetricFamily(
            "wallet_oldest_pending_seconds",
            "Age of the partition's oldest pending command (0 when none is pending)",
            labels=labels,
        )
        consumers = GaugeMetricFamily(
            "wallet_partition_consumers",
            "Live workers consuming the partition's queue (absent when unknown)",
            labels=labels,
        )
        stalled = GaugeMetricFamily(
            "wallet_partition_stalled",
            "1 if the partition has pending commands and no consumer (absent when unknown)",
            labels=labels,
        )
        backlogs = []
        try:
            with autocommit() as conn:
                backlogs = partition_backlogs(conn, partitions)
        except Exception:
            pass
        taken = census.consumers()
        for backlog in backlogs:
            label = [str(backlog.partition)]
            pending.add_metric(label, backlog.pending)
            oldest.add_metric(label, backlog.oldest_pending_age_s or 0.0)
            if taken is not None:
                count = taken.consumers.get(queue_name(backlog.partition), 0)
                consumers.add_metric(label, count)
                stalled.add_metric(label, 1 if backlog.pending and not count else 0)
        yield pending
        yield oldest
        yield consumers
        yield stalled
        yield from _reconciliation(verdict)


def _reconciliation(verdict: bytes | None):  # type: ignore[no-untyped-def]
    """The last periodic reconciliation (worker.observe), as beat's task left it."""
    ok = GaugeMetricFamily(
        "wallet_reconciliation_ok", "1 if the last reconciliation found the ledger consistent"
    )
    checked = GaugeMetricFamily(
        "wallet_reconciliation_checked_timestamp_seconds",
        "When the last reconciliation ran (seconds since the epoch)",
    )
    if verdict:
        found = json.loads(verdict)
        ok.add_metric([], 1 if found["ok"] else 0)
        checked.add_metric([], found["checked_at"])
    yield ok
    yield checked


# The last queue depths this process read: kept when Redis cannot be read.
_last_depth: dict[int, int] = {}


def render() -> tuple[bytes, str]:
    """The exposition text of every process of the service, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        # prometheus-client leaves MultiProcessCollector unannotated.
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    text = generate_latest(registry) + generate_latest(_depth_registry)
    return text, CONTENT_TYPE_LATEST


_depth_registry = CollectorRegistry(auto_describe=False)
_depth_registry.register(QueueDepth())
