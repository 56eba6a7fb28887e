"""gunicorn settings for the API (`gunicorn -c gunicorn.conf.py 'api:create_app()'`).

gevent workers: a long poll (`?wait=30`) is a parked greenlet, not a blocked thread,
so hundreds of waiters cost almost nothing and never starve other requests.
psycopg2 is made cooperative with psycogreen so a query yields to other greenlets.
"""

import os

bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gevent"
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "1000"))
timeout = 60
graceful_timeout = 10
keepalive = 30
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# Each worker builds its own app, engine and Redis clients after the fork.
preload_app = False
# gunicorn's control socket defaults to one path per user: two stacks on one machine
# (make run beside the e2e tests) would fight over it, and nothing here uses it.
control_socket_disable = True


def post_worker_init(worker):
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        import socket

        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(f"{socket.gethostname()}-{worker.pid}")
