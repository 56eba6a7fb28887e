"""Where Redis is, for every part of the service: one plain server (REDIS_URL) or the
master a Sentinel set names (REDIS_SENTINELS, REDIS_SENTINEL_MASTER).

`connect_redis` makes every Redis client of the service (doorbells, long polls,
notifications, readiness); `broker_url` and `broker_transport_options` point Celery's
broker (kombu) at the same place.

Through Sentinel a client asks the sentinels for the master's address whenever it opens
a connection, so after a failover the next connection goes to the new master. A command
that meets the failover window (the old master gone, the new one not yet elected) fails
after a few quick retries rather than waiting it out: every caller copes (a missed ring
is swept up from PostgreSQL, a long poll falls back to polling the database).
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

import settings

# Fail fast: a client on an accepted command's 202 path must not hang on a dead host.
CONNECT_TIMEOUT = 1.0
# A few retries over about a second: enough to ride out a dropped connection or a
# master address that just changed, not a whole failover (seconds), which callers
# survive by design. redis-py's own default (10 retries, up to 1 s apart) would hold
# a 202 for several seconds on every ring during a failover.
RETRIES = 3


def _retry() -> Retry:
    return Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), RETRIES)


def connect_redis(**options: Any) -> redis.Redis:
    """A new Redis client for this service's Redis (or Sentinel master).

    `options` are redis-py's (socket_timeout, max_connections, health_check_interval).
    """
    config = settings.load()
    options = {"socket_connect_timeout": CONNECT_TIMEOUT, "retry": _retry(), **options}
    if not config.redis_sentinels:
        return redis.Redis.from_url(config.redis_url, **options)
    assert config.redis_sentinel_master is not None  # settings.load() insists on it
    # redis-py leaves Sentinel's constructor and master_for() unannotated.
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(config.redis_sentinels),
        # The sentinels themselves: asked on every new connection, so they must answer
        # quickly or be skipped for the next one.
        sentinel_kwargs={
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "socket_timeout": CONNECT_TIMEOUT,
            "retry": Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), 0),
        },
    )
    master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        config.redis_sentinel_master, **options
    )
    return master


def broker_url(config: settings.Settings) -> str:
    """Celery's broker URL: REDIS_URL, or kombu's `sentinel://h1:p1;sentinel://h2:p2`."""
    if not config.redis_sentinels:
        return config.redis_url
    return ";".join(f"sentinel://{_host(host)}:{port}" for host, port in config.redis_sentinels)


def broker_transport_options(config: settings.Settings) -> dict[str, Any]:
    """What kombu needs beyond the URL to find the master through the sentinels."""
    if not config.redis_sentinels:
        return {}
    return {
        "master_name": config.redis_sentinel_master,
        "sentinel_kwargs": {
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "socket_timeout": CONNECT_TIMEOUT,
        },
    }


def describe(config: settings.Settings) -> str:
    """Where Redis is, for people (the banner, which masks a password in the URL)."""
    if not config.redis_sentinels:
        return config.redis_url
    sentinels = ",".join(f"{_host(h)}:{p}" for h, p in config.redis_sentinels)
    return f"master {config.redis_sentinel_master!r} of sentinels {sentinels}"


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
