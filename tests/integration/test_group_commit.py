"""Intake's group commit: many requests share one INSERT and one commit, and a failure
fails only the requests it belongs to."""

from __future__ import annotations

import threading
import time

import pytest

import resources
from api import batcher, intake
from api.errors import ApiError
from db.engine import is_unavailable
from ledger import CommandType
from tests.integration.helpers import (
    bootstrap,
)


def _group(monkeypatch, **options):
    """The intake's group commit, with these options, as this process's."""
    group = batcher.Batcher(intake._group_commit, fails_all=is_unavailable, **options)
    monkeypatch.setattr(intake, "GROUP_COMMIT", resources.Resource("test.group", lambda: group))
    return group


def test_a_stuck_group_commit_answers_503_instead_of_hanging(monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(intake, "_record", lambda items, ordered=True: release.wait() and [])
    _group(monkeypatch, workers=1, max_batch=10, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ApiError) as refused:
        intake.submit(bootstrap(), intake.Submission(CommandType.TOPUP, "k", {}))
    assert refused.value.status == 503
    assert time.monotonic() - started < 2
    release.set()


def test_a_committer_that_fails_answers_everyone_and_keeps_running(monkeypatch):
    calls = []

    def broken_then_fine(items, ordered=True):
        calls.append(len(items))
        if len(calls) == 1:
            raise KeyError("not an infrastructure error, not per item")
        return [intake.Accepted({"id": "x"}, created=True) for _ in items]

    monkeypatch.setattr(intake, "_record", broken_then_fine)
    _group(monkeypatch, workers=1, max_batch=10, timeout=5)
    with pytest.raises(KeyError):
        intake.submit(bootstrap(), intake.Submission(CommandType.TOPUP, "a", {}))
    second = intake.submit(bootstrap(), intake.Submission(CommandType.TOPUP, "b", {}))
    assert isinstance(second, intake.Accepted)


def test_one_bad_command_in_a_group_fails_alone_by_halves(monkeypatch):
    statements = []

    def record(items, ordered=True):
        statements.append(len(items))
        if any(sub.idempotency_key == "bad" for _, sub in items):
            raise ValueError("this one breaks the shared statement")
        return [intake.Accepted({"id": sub.idempotency_key}, created=True) for _, sub in items]

    monkeypatch.setattr(intake, "_record", record)
    group = _group(monkeypatch, workers=1, max_batch=64, timeout=5)
    batch = [
        (bootstrap(), intake.Submission(CommandType.TOPUP, k, {}))
        for k in [*map(str, range(63)), "bad"]
    ]
    outcomes = group._split(batch)
    assert [isinstance(o, ValueError) for o in outcomes] == [False] * 63 + [True]
    assert len(statements) <= 2 * 7 + 1  # halving: about 2 log2(64), not 64
