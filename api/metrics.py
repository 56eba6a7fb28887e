"""What the API counts, and /metrics for the whole service (prometheus-client).

Under gunicorn every process writes its samples to PROMETHEUS_MULTIPROC_DIR, the
workers included, and /metrics aggregates them all.
"""

from __future__ import annotations

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
    "wallet_commands_accepted_total", "Commands accepted (first 202), by type", ["type"]
)


class QueueDepth(Collector):
    """Per partition, at scrape time: doorbells queued in Redis, commands pending in SQL."""

    def collect(self):  # type: ignore[no-untyped-def]
        from sqlalchemy import text

        import settings
        from db.engine import connect
        from worker.doorbell import redis_client
        from worker.routing import partition_queues

        queued = GaugeMetricFamily(
            "wallet_queue_depth", "Messages waiting in a partition queue", labels=["partition"]
        )
        pending = GaugeMetricFamily(
            "wallet_pending_commands", "Commands accepted and not yet applied", labels=["partition"]
        )
        partitions = settings.load().partitions
        try:
            pipe = redis_client().pipeline(transaction=False)
            for queue in partition_queues(partitions):
                pipe.llen(queue)
            for partition, depth in enumerate(pipe.execute()):
                queued.add_metric([str(partition)], depth)
        except Exception:
            pass
        try:
            with connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT partition, count(*) AS n FROM transactions "
                        "WHERE status = 'pending' AND partition >= 0 GROUP BY partition"
                    )
                ).all()
            counts = {r.partition: r.n for r in rows}
            for partition in range(partitions):
                pending.add_metric([str(partition)], counts.get(partition, 0))
        except Exception:
            pass
        yield queued
        yield pending


def render() -> tuple[bytes, str]:
    """The exposition text of every process of the service, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    text = generate_latest(registry) + generate_latest(_depth_registry)
    return text, CONTENT_TYPE_LATEST


_depth_registry = CollectorRegistry(auto_describe=False)
_depth_registry.register(QueueDepth())
