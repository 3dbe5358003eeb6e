"""The Flask API for the phone and the mobile web client.

    from server import create_app
    app = create_app()            # loads models, index and catalogue once for this process

Blueprints: `v1` (public API), `admin` (token-protected crawls and schedules), `ops`
(health, readiness, metrics, OpenAPI) and `web` (the mobile web client at `/`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sketchshop.config import settings

if TYPE_CHECKING:
    from flask import Flask


def create_app(*, searcher=None, catalog=None, load: bool = True) -> Flask:
    """A Flask app. The blueprints are imported here, not with the package: `sketchshop serve`'s gunicorn master and
    every other command import `server.cli` and need none of the models' libraries (torch alone is ~500 MB)."""
    from flask import Flask

    from . import admin, api, errors, metrics, ops
    from .state import State
    s = settings()
    app = Flask(__name__, static_folder="web", static_url_path="/static")
    app.url_map.converters["int"] = errors.AsciiIntConverter  # `<int:id>`: ASCII digits, before any route is added
    app.config.update(
        MAX_CONTENT_LENGTH=int(s.max_upload_mb * 1_000_000),
        MAX_FORM_MEMORY_SIZE=2_000_000,   # JSON hints in a form field; images must be files
        MAX_FORM_PARTS=100,
        JSON_SORT_KEYS=False,
    )
    state = State()
    if load:
        state.load(searcher=searcher, catalog=catalog)
    else:
        state.searcher, state.catalog = searcher, catalog
    app.extensions["sketchshop"] = state
    if s.trusted_proxies:  # behind nginx: the client's address (rate limits) and host (shop links) from its headers
        from werkzeug.middleware.proxy_fix import ProxyFix
        n = s.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)
    errors.register(app)
    metrics.register(app)
    ops.register_limits(app)
    app.register_blueprint(api.bp, url_prefix="/v1")
    app.register_blueprint(admin.bp, url_prefix="/v1", name="admin")
    app.register_blueprint(ops.bp)
    return app
