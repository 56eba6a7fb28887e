"""Which queue a partition's doorbell goes to."""

from __future__ import annotations

PARTITION_QUEUE_PREFIX = "partition."


def queue_name(partition: int) -> str:
    return f"{PARTITION_QUEUE_PREFIX}{partition}"


def partition_of_queue(queue: str) -> int | None:
    if queue.startswith(PARTITION_QUEUE_PREFIX):
        return int(queue[len(PARTITION_QUEUE_PREFIX) :])
    return None


def partition_queues(partitions: int) -> list[str]:
    return [queue_name(p) for p in range(partitions)]
