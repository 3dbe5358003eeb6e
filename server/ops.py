"""Operations: health, readiness, the OpenAPI spec and its docs page, the web client, API keys and limits."""
from __future__ import annotations

import html

from flask import Blueprint, Flask, current_app, jsonify, request, send_from_directory

from sketchshop.config import settings

from . import openapi
from .errors import ApiError

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"ok": True})


@bp.get("/readyz")
def readyz():
    st = current_app.extensions["sketchshop"]
    index = st.refresh_index()  # the live build, even before the next search would load it
    ready = st.ready              # read once, after the refresh: the body and the status agree
    body = {"ready": ready, "problems": dict(st.problems)}
    if index is not None:
        body["index"] = {"build": index.build_id, "products": len(index)}
    return jsonify(body), (200 if ready else 503)


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(openapi.spec())


@bp.get("/docs")
def docs():
    spec = openapi.spec()
    rows = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            rows.append(f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                        f"<td>{html.escape(op.get('summary', op.get('operationId', '')))}</td></tr>")
    return (f"<!doctype html><meta name=viewport content='width=device-width'><title>sketchshop API</title>"
            f"<style>body{{font-family:system-ui;margin:1.5em}}td{{padding:.3em .8em;border-bottom:1px solid #ddd}}</style>"
            f"<h1>sketchshop API {spec['info']['version']}</h1><p>{html.escape(spec['info']['description'])}</p>"
            f"<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a> (OpenAPI 3.0; generate a Retrofit "
            f"client with openapi-generator's <code>kotlin</code> generator).</p><table>{''.join(rows)}</table>")


@bp.get("/")
def index():
    return send_from_directory(current_app.static_folder, "index.html")


def _client_key() -> str:
    return request.headers.get("X-API-Key") or request.remote_addr or "anonymous"


def register_limits(app: Flask) -> None:
    """Optional API keys (SKETCHSHOP_API_KEYS) and per-key rate limits (SKETCHSHOP_RATE_LIMIT)."""
    s = settings()
    keys = {k.strip() for k in s.api_keys.split(",") if k.strip()}
    if keys:
        @app.before_request
        def _require_key():
            if request.path.startswith("/v1/") and request.method == "POST" \
                    and request.blueprint == "v1" and request.headers.get("X-API-Key") not in keys:
                raise ApiError(401, "unauthorized", "missing or unknown API key (header X-API-Key)")
    if s.rate_limit:
        from flask_limiter import Limiter
        limiter = Limiter(_client_key, app=app, storage_uri=s.rate_limit_storage,
                          default_limits=[s.rate_limit], headers_enabled=True)
        limiter.exempt(bp)
