"""The public API under /v1: search, colourise, detect, classify, products and images."""
from __future__ import annotations

import io
import uuid
from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify, request, send_file, url_for
from werkzeug.http import parse_range_header

from catalog.search import guess_kind, hint_layer
from sketchshop import vocab
from sketchshop.images import original_box, original_scale, require_ink

from . import uploads
from .errors import MAX_ID, ApiError
from .metrics import observe_stages

bp = Blueprint("v1", __name__)


def _state():
    return current_app.extensions["sketchshop"]


def _image_url(sha: str | None) -> str | None:
    return url_for("v1.image", sha=sha, _external=False) if sha else None


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _shop_url(url: str | None) -> str | None:
    """A product link on this machine's loopback (the demo shop), named by the host the client reached us at:
    a phone on the network cannot open 127.0.0.1. Links to any other host are the shops' own, untouched."""
    u = urlsplit(url or "")
    if u.hostname not in LOOPBACK:
        return url
    client = urlsplit(request.host_url).hostname
    if not client or client in LOOPBACK:
        return url
    host = f"[{client}]" if ":" in client else client
    return u._replace(netloc=host + (f":{u.port}" if u.port else "")).geturl()


def _item_json(described, hits, index, image) -> dict:
    p = described.prediction
    matches = []
    for h in hits:
        it = index.items_by_id(h.product_id)
        d = it.display
        matches.append({"product_id": h.product_id, "title": d.get("title"), "brand": d.get("brand"),
                        "price": it.price, "currency": it.currency, "shop": it.shop, "url": _shop_url(d.get("url")),
                        "image_url": _image_url(d.get("image")), "category": it.category,
                        "colour": it.colour, "score": round(h.score, 4), "matched": h.matched})
    return {
        "box": original_box(described.box, image) if described.box else None,
        "whole_image": described.whole_image,
        "detector": ({"category": described.detector_category,
                      "confidence": round(described.detector_confidence, 4)}
                     if described.detector_category else None),
        "category": p["category"], "category_p": round(float(p["category_p"]), 4),
        "coarse_category": vocab.FINE_TO_COARSE.get(p["category"], p["category"]),
        "topk": [{"category": c, "p": round(float(q), 4)} for c, q in p.get("topk", [])],
        "colour": p.get("colour"), "colour_p": round(float(p.get("colour_p", 0.0)), 4),
        "attributes": {k: {"value": v["value"], "p": round(float(v["p"]), 4)}
                       for k, v in p.get("attributes", {}).items()},
        "matches": matches,
    }


def _kind_of(image) -> str:
    """`kind` as sent, else guessed; an empty drawing is refused before anything runs."""
    kind = uploads.kind_from() or guess_kind(image)
    if kind == "sketch":
        require_ink(image)
    return kind


@bp.post("/search")
def search():
    uploads.only("image", "kind", "hints", "top_k", *uploads.FILTERS)
    image = uploads.image_from("image")
    kind = _kind_of(image)
    hints = uploads.hints_from(original_scale(image))
    top_k = uploads.int_arg("top_k", 10, 1, 50)
    filters = uploads.filters_from()
    searcher = _state().need_searcher()
    if searcher.index is None:
        raise ApiError(503, "not_ready", "the search index is not loaded: " + _state().problems.get("index", ""))
    out = searcher.search(image, kind=kind, hints=hints, top_k=top_k, filters=filters)
    observe_stages(out["timing_ms"])
    return jsonify({"query_id": uuid.uuid4().hex, "kind": out["kind"],
                    "items": [_item_json(d, hits, searcher.index, image) for d, hits in out["items"]],
                    "timing_ms": out["timing_ms"]})


@bp.post("/colorize")
def colorize():
    uploads.only("image", "hints", "category")
    image = uploads.image_from("image")
    hints = uploads.hints_from(original_scale(image))
    category = request.values.get("category") or None
    if category:
        try:
            category = vocab.category(category, allow_coarse=False)
        except vocab.VocabError as e:
            raise ApiError(400, "bad_parameter", str(e)) from None
    searcher = _state().need_searcher()
    if searcher.colorizer is None:
        raise ApiError(503, "not_ready", "the colouriser is not loaded")
    out = searcher.colorizer.colorize(image, hints=hints, category=category)
    buf = io.BytesIO()
    out.save(buf, "PNG")
    buf.seek(0)
    return send_file(buf, mimetype="image/png", download_name="colorized.png")


@bp.post("/detect")
def detect():
    uploads.only("image")
    image = uploads.image_from("image")
    searcher = _state().need_searcher()
    found = searcher.detector.predict(image)
    width, height = image.info.get("original_size", image.size)
    return jsonify({"width": width, "height": height, "items": [
        {"box": original_box(f["box"], image), "category": f["category"],
         "confidence": round(float(f["confidence"]), 4), "whole_image": bool(f.get("whole_image"))}
        for f in found]})


@bp.post("/classify")
def classify():
    uploads.only("image", "kind", "hints")
    image = uploads.image_from("image")
    kind = _kind_of(image)
    hints = uploads.hints_from(original_scale(image))
    searcher = _state().need_searcher()
    (p,) = searcher.classifier.predict([image], kind=kind, hints=[hint_layer(hints, image.size)])
    return jsonify({"kind": kind, "category": p["category"], "category_p": round(float(p["category_p"]), 4),
                    "topk": [{"category": c, "p": round(float(q), 4)} for c, q in p.get("topk", [])],
                    "colour": p.get("colour"), "colour_p": round(float(p.get("colour_p", 0.0)), 4),
                    "attributes": {k: {"value": v["value"], "p": round(float(v["p"]), 4)}
                                   for k, v in p.get("attributes", {}).items()},
                    "embedding": [round(float(x), 6) for x in p["embedding"]]})


def _product_json(d: dict) -> dict:
    images = [x["sha256"] if isinstance(x, dict) else x for x in d.get("images", [])]
    out = {k: d.get(k) for k in ("id", "shop", "external_id", "url", "title", "brand", "price", "currency",
                                 "category", "colour", "attributes", "last_seen")}
    out["url"] = _shop_url(out["url"])
    out["coarse_category"] = vocab.FINE_TO_COARSE.get(d.get("category"), d.get("category"))
    out["image_urls"] = [_image_url(s) for s in images]
    for k in ("prices", "labels", "first_seen"):
        if k in d:
            out[k] = d[k]
    return out


@bp.get("/products/<int:product_id>")
def product(product_id: int):
    d = _state().need_catalog().product(product_id) if product_id <= MAX_ID else None
    if d is None:
        raise ApiError(404, "not_found", f"no product {product_id}")
    return jsonify(_product_json(d))


@bp.get("/products")
def products():
    uploads.only("q", "page", "per_page", *uploads.FILTERS)
    f = uploads.filters_from()
    page = uploads.int_arg("page", 1, 1, 1_000_000)
    per_page = uploads.int_arg("per_page", 50, 1, 200)
    res = _state().need_catalog().products(category=f.category, colour=f.colour, shop=f.shop,
                                           min_price=f.min_price, max_price=f.max_price, currency=f.currency,
                                           q=_text_arg("q"), page=page, per_page=per_page)
    return jsonify({"items": [_product_json(d) for d in res.items], "total": res.total,
                    "page": res.page, "per_page": res.per_page})


def _text_arg(name: str, max_len: int = 200) -> str | None:
    """Free text to match: printable, so that a NUL (which ends a string in SQLite's LIKE) cannot cut it short."""
    v = request.args.get(name) or None
    if v is not None and (len(v) > max_len or not v.isprintable()):
        raise ApiError(400, "bad_parameter", f"'{name}' must be printable text of at most {max_len} characters")
    return v


@bp.get("/images/<sha>")
def image(sha: str):
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ApiError(400, "bad_parameter", "image id must be a sha256 in lowercase hex")
    path = _state().need_catalog().image_path(sha)
    if path is None or not path.is_file():
        raise ApiError(404, "not_found", f"no image {sha}")
    if "HTTP_RANGE" in request.environ:  # a Range that is not bytes or cannot be parsed is ignored (RFC 9110, 14.2)
        rng = parse_range_header(request.environ["HTTP_RANGE"])
        if rng is None or rng.units != "bytes":
            del request.environ["HTTP_RANGE"]
    resp = send_file(path, max_age=86400 * 30)
    resp.headers["Cache-Control"] = "public, max-age=2592000, immutable"
    return resp
