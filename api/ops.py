"""Operations endpoints, no auth: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response
from sqlalchemy import text

from api import metrics
from api.errors import ApiError
from db.engine import connect
from worker.doorbell import redis_client

blp = Blueprint("ops", __name__)


@blp.get("/healthz")
def healthz() -> Any:
    """The process is up."""
    return {"status": "ok"}


@blp.get("/readyz")
def readyz() -> Any:
    """The database and the broker answer; 503 otherwise."""
    checks = {"database": _check_database(), "broker": _check_broker()}
    if all(v == "ok" for v in checks.values()):
        return {"status": "ok", **checks}
    down = ", ".join(k for k, v in checks.items() if v != "ok")
    error = ApiError(
        503, "unavailable", f"Not ready: {down} unreachable.", headers={"Retry-After": "1"}
    )
    problem = {**error.problem(), "checks": checks}
    return Response(_json(problem), 503, mimetype="application/problem+json", headers=error.headers)


@blp.get("/metrics")
def prometheus() -> Any:
    body, content_type = metrics.render()
    return Response(body, 200, content_type=content_type)


def _check_database() -> str:
    try:
        with connect() as conn:
            conn.execute(text("SELECT 1"))
        return "ok"
    except Exception as error:  # every failure means "not ready"
        return f"error: {type(error).__name__}"


def _check_broker() -> str:
    try:
        redis_client().ping()
        return "ok"
    except Exception as error:
        return f"error: {type(error).__name__}"


def _json(body: dict[str, Any]) -> str:
    """A JSON body ended by a newline, as jsonify writes them."""
    import json

    return json.dumps(body) + "\n"
