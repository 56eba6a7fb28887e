"""The partition count of a new database when WALLET_PARTITIONS is not set: one per core
this process may run on, from 2 to 8 (settings.default_partitions)."""

from __future__ import annotations

import pytest

import settings


@pytest.fixture(autouse=True)
def _fresh_settings():
    settings.load.cache_clear()
    yield
    settings.load.cache_clear()


@pytest.mark.parametrize(("cores", "partitions"), [(1, 2), (2, 2), (4, 4), (6, 6), (64, 8)])
def test_one_partition_per_core_from_two_to_eight(monkeypatch, cores, partitions):
    monkeypatch.setattr(settings.os, "sched_getaffinity", lambda pid: set(range(cores)))
    monkeypatch.delenv("WALLET_PARTITIONS", raising=False)
    assert settings.load().partitions == partitions
    monkeypatch.setenv("WALLET_PARTITIONS", "")  # compose passes an unset variable as ""
    settings.load.cache_clear()
    assert settings.load().partitions == partitions


def test_the_variable_wins(monkeypatch):
    monkeypatch.setattr(settings.os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setenv("WALLET_PARTITIONS", "8")
    assert settings.load().partitions == 8
    assert settings.load().max_partitions == 64


def test_without_affinity_the_cpu_count(monkeypatch):
    monkeypatch.delattr(settings.os, "sched_getaffinity")
    monkeypatch.setattr(settings.os, "cpu_count", lambda: 3)
    assert settings.default_partitions() == 3
    monkeypatch.setattr(settings.os, "cpu_count", lambda: None)
    assert settings.default_partitions() == 2
