"""The flask-smorest Blueprint every resource uses: one parser, one security scheme."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint as SmorestBlueprint

from api.openapi import problem_ref
from api.parsing import parser

BEARER = [{"bearerAuth": []}]
# What any request can be answered, whatever the operation: a malformed request (bad
# JSON, control characters, bad framing), no key, a key without the scope, a body over
# 1 MiB, a request line or headers too large (gunicorn), a dependency down.
# 404 too: the bootstrap key naming a ledger that does not exist (ledger_not_found).
COMMON_ERRORS = (400, 401, 403, 404, 413, 414, 431, 503)


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = parser

    def secured(self, *errors: int, **doc: Any) -> Any:
        """Document a view as needing a bearer key, with the problem+json errors it can
        return: the common ones and `errors` (e.g. 404, 409, 422)."""
        statuses = sorted({*COMMON_ERRORS, *errors})
        responses = {str(status): problem_ref(status) for status in statuses}
        return self.doc(security=BEARER, responses=responses, **doc)
