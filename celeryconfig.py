"""Celery settings. Status lives in PostgreSQL; Redis only carries doorbells.

Why each setting matters is beside it.
"""

import settings
from worker import connections

_settings = settings.load()

# REDIS_URL, or the master of a Sentinel set (REDIS_SENTINELS): see worker.connections.
broker_url = connections.broker_url(_settings)
broker_connection_retry_on_startup = True
broker_transport_options = {
    # Far above any task's run time: an unacknowledged message is redelivered only
    # after this long. A drain stops itself after a few seconds (see worker.tasks).
    "visibility_timeout": 3600,
    "socket_connect_timeout": 5,
    "socket_timeout": 10,
    **connections.broker_transport_options(_settings),
}

# Acknowledge after the task ran, and requeue the message if the worker process dies:
# a drain cut short is rung again (the sweeper would also find its commands).
task_acks_late = True
task_reject_on_worker_lost = True
# One message at a time per worker process: a prefetched doorbell would only wait.
worker_prefetch_multiplier = 1
worker_cancel_long_running_tasks_on_connection_loss = True

task_serializer = "json"
accept_content = ["json"]
task_ignore_result = True
result_backend = None

# Flower needs task events.
worker_send_task_events = True

# Every task names its queue. Beat's housekeeping and callback deliveries go to queues
# of their own, so they can never delay a partition's drain.
task_default_queue = "maintenance"
task_routes = {
    "wallet.sweep": {"queue": "maintenance"},
    "wallet.reconcile": {"queue": "maintenance"},
    "wallet.expire_credits": {"queue": "maintenance"},
}

beat_schedule = {
    # Re-ring partitions with commands pending too long (lost doorbell, flushed Redis,
    # killed worker) and with holds whose time has run out.
    "sweep": {"task": "wallet.sweep", "schedule": 1.0, "options": {"expires": 5}},
    # The reconciliation reads the whole ledger: now and then, for wallet_reconciliation_ok.
    # Expiring credits: one `expiry` command per due lot (worker.expiry).
    "expire-credits": {
        "task": "wallet.expire_credits",
        "schedule": _settings.expiry_sweep_seconds,
        "options": {"expires": 60},
    },
    "reconcile": {
        "task": "wallet.reconcile",
        "schedule": _settings.reconcile_every_seconds,
        "options": {"expires": 60},
    },
}
