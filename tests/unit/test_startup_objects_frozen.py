"""The API's gunicorn workers and the Celery workers take their startup objects out of
the garbage collector's full walks once they are up (resources.freeze_startup_objects):
a full collection over the app's ~90,000 objects stalls every thread of the process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_gunicorn_worker_freezes_what_it_loaded():
    out = _run(
        "import gc, runpy\n"
        "conf = runpy.run_path('gunicorn.conf.py')\n"
        "before = gc.get_freeze_count()\n"
        "conf['post_worker_init'](None)\n"
        "print(before, gc.get_freeze_count())\n"
    )
    before, after = map(int, out.split())
    assert before == 0 and after > 10_000


def test_a_celery_worker_freezes_what_it_built_once_ready():
    out = _run(
        "import gc\n"
        "from worker.app import worker_ready\n"
        "worker_ready.send(sender=None)\n"
        "print(gc.get_freeze_count())\n"
    )
    assert int(out) > 10_000
