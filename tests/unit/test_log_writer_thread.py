"""The API's log lines are written by a thread of their own (logs.write_in_background):
each line still carries the request id of the thread that logged it, in order."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

import logs


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """The root logger writing JSON lines into a buffer, as logs.configure sets it up."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.WalletJsonFormatter("api"))
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    for old in saved:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        logs.flush_background()
        for current in list(root.handlers):
            root.removeHandler(current)
        for old in saved:
            root.addHandler(old)
        root.setLevel(level)


def test_lines_written_by_the_writer_thread_keep_their_request_ids_and_order(stream):
    logs.write_in_background()
    log = logging.getLogger("api.requests")
    writers: set[int] = set()
    original = logs.WalletJsonFormatter.add_fields

    def spy(self, log_data, record, message_dict):  # type: ignore[no-untyped-def]
        writers.add(threading.get_ident())
        original(self, log_data, record, message_dict)

    logs.WalletJsonFormatter.add_fields = spy  # type: ignore[method-assign]
    try:

        def request(n: int) -> None:
            with logs.request_context(f"req-{n}"):
                logs.set_transaction_id(f"tx-{n}")
                for i in range(20):
                    log.info("request %s line %s", n, i, extra={"n": n, "i": i})

        threads = [threading.Thread(target=request, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        logs.flush_background()
    finally:
        logs.WalletJsonFormatter.add_fields = original  # type: ignore[method-assign]

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 8 * 20
    for line in lines:
        assert line["request_id"] == f"req-{line['n']}"
        assert line["transaction_id"] == f"tx-{line['n']}"
        assert line["event"] == f"request {line['n']} line {line['i']}"
    for n in range(8):  # one thread's lines stay in the order it logged them
        assert [line["i"] for line in lines if line["n"] == n] == list(range(20))
    # Formatted off the request threads: by the one writer thread.
    assert len(writers) == 1 and threading.get_ident() not in writers
