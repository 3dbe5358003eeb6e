"""Admin API behind a bearer token: queue crawls and manage schedules.

Nothing here crawls: a crawl request is a queued row that the scheduler process
(`sketchshop scheduler`) picks up, so web workers stay responsive.
"""
from __future__ import annotations

import hmac
import json

from flask import Blueprint, current_app, jsonify, request

from crawler.spec import checked_spec_path
from sketchshop.config import settings

from .errors import MAX_ID, ApiError
from .uploads import int_arg, only

bp = Blueprint("admin", __name__)
MAX_STR = 2000


@bp.before_request
def _auth():
    token = settings().admin_token
    if not token:
        raise ApiError(403, "admin_disabled", "the admin API is disabled (set SKETCHSHOP_ADMIN_TOKEN)")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(401, "unauthorized", "missing or wrong admin token (Authorization: Bearer ...)")


def _catalog():
    return current_app.extensions["sketchshop"].need_catalog()


def _body() -> dict:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser goes
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "send a JSON object")
    try:  # what the database stores: UTF-8 text (no lone surrogates) and JSON without NaN/Infinity
        json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except ValueError:
        raise ApiError(400, "bad_request", "the JSON body holds an unpaired surrogate or NaN/Infinity") from None
    return body


def _str(body: dict, key: str, required: bool = True) -> str | None:
    v = body.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, str) or not v.strip():
        raise ApiError(400, "bad_request", f"'{key}' must be a non-empty string")
    if len(v) > MAX_STR:
        raise ApiError(400, "bad_request", f"'{key}' is longer than {MAX_STR} characters")
    return v.strip()


@bp.post("/crawls")
def start_crawl():
    body = _body()
    base_url = _str(body, "base_url", False)
    run = _catalog().request_crawl(checked_spec_path(_str(body, "spec"), base_url), base_url=base_url,
                                   options=body.get("options"))
    return jsonify(run), 202


@bp.get("/crawls")
def list_crawls():
    only("shop", "limit")
    limit = int_arg("limit", 20, 1, 200)
    return jsonify({"items": _catalog().runs(shop=request.args.get("shop") or None, limit=limit)})


@bp.get("/crawls/<int:run_id>")
def get_crawl(run_id: int):
    run = _catalog().run(run_id) if run_id <= MAX_ID else None
    if run is None:
        raise ApiError(404, "not_found", f"no crawl run {run_id}")
    return jsonify(run)


@bp.get("/schedules")
def list_schedules():
    return jsonify({"items": _catalog().schedules()})


@bp.post("/schedules")
def add_schedule():
    body = _body()
    base_url = _str(body, "base_url", False)
    sched = _catalog().add_schedule(_str(body, "name"), checked_spec_path(_str(body, "spec"), base_url),
                                    _str(body, "cron"), base_url=base_url, options=body.get("options"),
                                    reindex=body.get("reindex"))
    return jsonify(sched), 201


@bp.delete("/schedules/<name>")
def remove_schedule(name: str):
    if name not in {x["name"] for x in _catalog().schedules()}:
        raise ApiError(404, "not_found", f"no schedule named {name!r}")
    _catalog().remove_schedule(name)
    return "", 204
