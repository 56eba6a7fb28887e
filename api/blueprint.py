"""The flask-smorest Blueprint every resource uses: one parser, one security scheme."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint as SmorestBlueprint

from api.parsing import parser

BEARER = [{"bearerAuth": []}]
ERROR_RESPONSES = {
    "400": {"$ref": "#/components/responses/Problem"},
    "401": {"$ref": "#/components/responses/Problem"},
    "403": {"$ref": "#/components/responses/Problem"},
    "404": {"$ref": "#/components/responses/Problem"},
    "413": {"$ref": "#/components/responses/Problem"},
    "422": {"$ref": "#/components/responses/Problem"},
    "503": {"$ref": "#/components/responses/Problem"},
}


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = parser

    def secured(self, **doc: Any) -> Any:
        """Document a view as needing a bearer key, with the problem+json errors."""
        return self.doc(security=BEARER, responses=ERROR_RESPONSES, **doc)
