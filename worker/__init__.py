"""Celery workers: the partition drains, callbacks, and the periodic sweeper."""
