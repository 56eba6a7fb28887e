"""The flask-smorest Blueprint every resource uses: one parser, one security scheme."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import Schema

from api.openapi import problem_ref
from api.parsing import parser

F = TypeVar("F", bound=Callable[..., Any])
# OpenAPI fragments (parameters, headers, examples): JSON as the document holds it.
Json = Mapping[str, Any]

BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
# What any request can be answered, whatever the operation: a malformed request (bad
# JSON, control characters, bad framing), no key, a key without the scope, a body over
# 1 MiB, a request line or headers too large (gunicorn), a dependency down.
# 404 too: the bootstrap key naming a ledger that does not exist (ledger_not_found).
COMMON_ERRORS = (400, 401, 403, 404, 413, 414, 431, 503)


# flask-smorest has no type hints, so its Blueprint is Any to mypy.
class Blueprint(SmorestBlueprint):  # type: ignore[misc]
    ARGUMENTS_PARSER = parser

    if TYPE_CHECKING:
        # flask-smorest's decorators, typed: each registers or documents the view and
        # leaves it callable as it was. Declarations only, nothing changes at run time.
        def route(
            self,
            rule: str,
            *,
            parameters: Sequence[Json | str] | None = None,
            tags: Sequence[str] | None = None,
            **options: Any,
        ) -> Callable[[F], F]: ...

        def arguments(
            self,
            schema: Schema | type[Schema],
            *,
            location: str = "json",
            content_type: str | None = None,
            required: bool = True,
            description: str | None = None,
            example: object = None,
            examples: Json | None = None,
            **kwargs: Any,
        ) -> Callable[[F], F]: ...

        def response(
            self,
            status_code: int | str,
            schema: Schema | type[Schema] | None = None,
            *,
            content_type: str | None = None,
            description: str | None = None,
            example: object = None,
            examples: Json | None = None,
            headers: Json | None = None,
        ) -> Callable[[F], F]: ...

        def alt_response(
            self,
            status_code: int | str,
            response: str | None = None,
            *,
            schema: Schema | type[Schema] | None = None,
            content_type: str | None = None,
            description: str | None = None,
            example: object = None,
            examples: Json | None = None,
            headers: Json | None = None,
            success: bool = False,
        ) -> Callable[[F], F]: ...

        @staticmethod
        def doc(**kwargs: Any) -> Callable[[F], F]: ...

    def secured(self, *errors: int, **doc: Any) -> Callable[[F], F]:
        """Document a view as needing a bearer key, with the problem+json errors it can
        return: the common ones and `errors` (e.g. 404, 409, 422)."""
        statuses = sorted({*COMMON_ERRORS, *errors})
        responses = {str(status): problem_ref(status) for status in statuses}
        return self.doc(security=BEARER, responses=responses, **doc)
