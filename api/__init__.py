"""The intake API: a Flask application factory (`gunicorn 'api:create_app()'`)."""

from __future__ import annotations

from typing import Any

from flask import Flask, send_from_directory
from swagger_ui_bundle import swagger_ui_path

import resources
from api import admin, assets, errors, observability, operators, ops, transactions, wallets
from api.edge import MAX_BODY_BYTES, HttpEdge
from api.openapi import WalletApi


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the API: defaults first, then the caller's overrides. The process's
    engines, clients and pools (resources.py) are its own, built on first use."""
    resources.start()
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        API_TITLE="Wallet service",
        API_VERSION="1.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        # Served from the swagger-ui-bundle package: /docs works without the internet.
        OPENAPI_SWAGGER_UI_URL="/docs/assets/",
        JSON_SORT_KEYS=False,
    )
    if config:
        app.config.update(config)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    api = WalletApi(app)
    for blueprint in (transactions.blp, wallets.blp, assets.blp, admin.blp, operators.blp):
        api.register_blueprint(blueprint)
    app.register_blueprint(ops.blp)

    @app.get("/docs/assets/<path:filename>")
    def swagger_assets(filename: str) -> Any:
        return send_from_directory(swagger_ui_path, filename)

    # After Api(app): our handlers replace flask-smorest's JSON error handler.
    errors.register(app)
    app.wsgi_app = HttpEdge(app.wsgi_app)  # type: ignore[method-assign]
    # Outside the edge: its own answers are logged and counted too.
    observability.install(app)
    return app
