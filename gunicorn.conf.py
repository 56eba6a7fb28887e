"""gunicorn settings for the API (`gunicorn -c gunicorn.conf.py 'api:create_app()'`).

gthread workers: each request runs on a thread of the worker's pool, and idle
keep-alive connections wait in the worker's poller, not on a thread. A long poll
(`?wait=30`) is a thread blocked in a Redis read, which releases the GIL, so hundreds
of waiters cost memory for their stacks and no CPU; 256 threads per worker leave room
for 200 waiters and the traffic around them. gevent was measured too, and accepted
about a third as many commands per second on the same machine (see the README).
"""

import os

import logs
import resources
import settings

_settings = settings.load()

# GUNICORN_BIND, GUNICORN_ACCESSLOG and GUNICORN_LOGLEVEL are gunicorn's own knobs, read
# here only; the rest is the service's configuration (settings.py).
bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{_settings.port}")
workers = _settings.web_concurrency
# gthread, with problem+json for the errors gunicorn answers itself and 100 Continue
# sent only when the application reads the body (api/server.py).
worker_class = "api.server.ThreadWorker"
threads = _settings.gunicorn_threads
worker_connections = _settings.gunicorn_worker_connections
timeout = 60
graceful_timeout = 10
keepalive = 30
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# JSON lines on stderr, like every process (logs.py). The application logs one line per
# request itself (api/observability.py, with the request id and the route); gunicorn's
# access log, which would repeat it, stays quiet unless GUNICORN_ACCESSLOG asks for it.
logconfig_dict = logs.dict_config("api")
# Without GUNICORN_ACCESSLOG, gunicorn's access line is not even built (api/server.py).
logger_class = "api.server.QuietAccessLogger"
if not accesslog:
    logconfig_dict["loggers"]["gunicorn.access"]["level"] = "WARNING"
# Each worker builds its own app, engine and Redis clients after the fork.
preload_app = False
# gunicorn's control socket defaults to one path per user: two stacks on one machine
# (make run beside the e2e tests) would fight over it, and nothing here uses it.
control_socket_disable = True


def post_worker_init(worker):
    # Request threads queue their log lines; one thread writes them (logs.py).
    logs.write_in_background()
    # The app is loaded: its objects leave the garbage collector's full walks.
    resources.freeze_startup_objects()


def worker_exit(server, worker):
    logs.flush_background()


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        import socket

        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(f"{socket.gethostname()}-{worker.pid}")
