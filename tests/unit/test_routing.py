"""Partition routing is stable: across processes, restarts and hash seeds."""

import os
import subprocess
import sys
import zlib

from ledger import partition_of
from worker.routing import partition_of_queue, partition_queues, queue_name


def test_partition_is_crc32_of_the_user_id_modulo_the_partition_count():
    for user in ["alice", "bob", "player:42", "x@y.z"]:
        assert partition_of(user, 8) == zlib.crc32(user.encode()) % 8
    assert {partition_of(f"user-{i}", 8) for i in range(1000)} == set(range(8))


def test_partition_does_not_depend_on_the_process_hash_seed():
    code = "from ledger import partition_of; print([partition_of(f'u{i}', 8) for i in range(50)])"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1


def test_queue_names_round_trip():
    assert queue_name(3) == "partition.3"
    assert partition_of_queue("partition.3") == 3
    assert partition_of_queue("callbacks") is None
    assert partition_queues(2) == ["partition.0", "partition.1"]
