"""The Celery application (`celery -A worker.app ...`)."""

from celery import Celery

app = Celery("wallet")
app.config_from_object("celeryconfig")
# Registers the tasks and the worker signal handlers.
app.conf.imports = ("worker.tasks",)
