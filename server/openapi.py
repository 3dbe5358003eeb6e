"""The OpenAPI 3.0 description of the API, complete enough to generate a Retrofit/Kotlin client."""
from __future__ import annotations

from sketchshop import __version__, vocab

_SHOP_URL = {"type": "string", "description": "the product page at its shop (a shop on the server's own loopback, the "
                                          "demo shop, is named by the host the request reached)"}
_NUM = {"type": "number", "format": "double"}  # a generated Kotlin client reads Double, not BigDecimal
_TIME = {"type": "string", "format": "date-time", "nullable": True, "description": "UTC"}
_ERR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _errors(*codes: int) -> dict:
    return {str(c): _ERR for c in codes}


_UPLOAD_ERRORS = _errors(400, 401, 413, 415, 429, 503)


def _json(ref: str, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _q(name, schema, description, required=False):
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


_FILTER_PROPS = {
    "category": {"type": "string", "description": "fine or coarse category (aliases accepted)"},
    "colour": {"type": "string", "enum": list(vocab.COLOURS)},
    "min_price": {**_NUM, "minimum": 0},
    "max_price": {**_NUM, "minimum": 0},
    "shop": {"type": "string"},
    "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$"},
}
_IMAGE = {"type": "string", "format": "binary",
          "description": "JPEG, PNG, WebP or HEIC; EXIF orientation applied. Read at a long side of 1000 px or a "
                         "little more (a larger image is reduced 2, 3, 4... times); boxes and hint points are in "
                         "the uploaded image's pixels all the same"}
_HINTS = {"type": "string", "description": 'colour hints: a PNG layer (send as a file: strokes on transparent, or on '
          'white) or JSON points `[{"x": 10, "y": 20, "colour": "red"}]` / `[{"x":.., "y":.., "rgb": [r, g, b]}]` '
          '(x, y: numbers, pixels of the uploaded image; a colour name or rgb as three integers 0-255, not both; '
          'points off the canvas are left out); '
          'an empty list or a layer without strokes is the same as no hints'}
_KIND = {"type": "string", "enum": ["photo", "sketch", "auto"],
         "description": ("detected when absent or `auto`: a drawing on a white (or transparent) canvas, or light "
                         "strokes on a dark one, "
                         "is a sketch; send `sketch` for a phone photo of a drawing on paper")}

SCHEMAS = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"$ref": "#/components/schemas/ErrorDetail"}}},
    "ErrorDetail": {"type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
    "AttributeValue": {"type": "object", "properties": {"value": {"type": "string"}, "p": _NUM}},
    "CategoryP": {"type": "object", "properties": {"category": {"type": "string"}, "p": _NUM}},
    "Match": {"type": "object", "required": ["product_id", "score", "matched"], "properties": {
        "product_id": {"type": "integer"}, "title": {"type": "string", "nullable": True},
        "brand": {"type": "string", "nullable": True}, "price": {**_NUM, "nullable": True},
        "currency": {"type": "string", "nullable": True}, "shop": {"type": "string", "nullable": True},
        "url": {**_SHOP_URL, "nullable": True},
        "image_url": {"type": "string", "nullable": True},
        "category": {"type": "string", "nullable": True}, "colour": {"type": "string", "nullable": True},
        "score": _NUM, "matched": {"type": "array", "items": {"type": "string"}}}},
    "Item": {"type": "object", "required": ["category", "category_p", "matches"], "properties": {
        "box": {"type": "array", "items": _NUM, "minItems": 4, "maxItems": 4, "nullable": True,
                "description": "x1, y1, x2, y2 in the uploaded image's pixels (after EXIF rotation)"},
        "whole_image": {"type": "boolean"},
        "detector": {"type": "object", "nullable": True, "properties": {
            "category": {"type": "string"}, "confidence": _NUM}},
        "category": {"type": "string", "enum": list(vocab.FINE_CATEGORIES)},
        "category_p": _NUM, "coarse_category": {"type": "string"},
        "topk": {"type": "array", "items": {"$ref": "#/components/schemas/CategoryP"}},
        "colour": {"type": "string", "nullable": True}, "colour_p": _NUM,
        "attributes": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/AttributeValue"}},
        "matches": {"type": "array", "items": {"$ref": "#/components/schemas/Match"}}}},
    "SearchResponse": {"type": "object", "required": ["query_id", "kind", "items", "timing_ms"], "properties": {
        "query_id": {"type": "string"}, "kind": {"type": "string", "enum": ["photo", "sketch"]},
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
        "timing_ms": {"type": "object", "additionalProperties": _NUM}}},
    "Detection": {"type": "object", "required": ["box", "category", "confidence", "whole_image"], "properties": {
        "box": {"type": "array", "items": _NUM, "minItems": 4, "maxItems": 4},
        "category": {"type": "string", "nullable": True, "enum": list(vocab.COARSE_CATEGORIES) + [None],
                     "description": "null when nothing was found and the item is the whole image (whole_image)"},
        "confidence": _NUM, "whole_image": {"type": "boolean"}}},
    "DetectResponse": {"type": "object", "properties": {
        "width": {"type": "integer"}, "height": {"type": "integer"},
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Detection"}}}},
    "ClassifyResponse": {"type": "object", "properties": {
        "kind": {"type": "string"}, "category": {"type": "string"}, "category_p": _NUM,
        "topk": {"type": "array", "items": {"$ref": "#/components/schemas/CategoryP"}},
        "colour": {"type": "string", "nullable": True}, "colour_p": _NUM,
        "attributes": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/AttributeValue"}},
        "embedding": {"type": "array", "items": _NUM}}},
    "Product": {"type": "object", "required": ["id"], "properties": {
        "id": {"type": "integer"}, "shop": {"type": "string"}, "external_id": {"type": "string"},
        "url": _SHOP_URL,
        "title": {"type": "string"}, "brand": {"type": "string", "nullable": True},
        "price": {**_NUM, "nullable": True}, "currency": {"type": "string", "nullable": True},
        "category": {"type": "string", "nullable": True}, "coarse_category": {"type": "string", "nullable": True},
        "colour": {"type": "string", "nullable": True},
        "attributes": {"type": "object", "additionalProperties": {"type": "string"}},
        "image_urls": {"type": "array", "items": {"type": "string"}},
        "last_seen": _TIME,
        "first_seen": {**_TIME, "description": "UTC; GET /v1/products/{id} only"},
        "labels": {"type": "array", "description": "GET /v1/products/{id} only: every label the shop gave, "
                   "with the vocabulary's value (null: not in the vocabulary) and where it was read",
                   "items": {"type": "object", "properties": {
                       "name": {"type": "string"}, "value": {"type": "string", "nullable": True},
                       "raw": {"type": "string", "nullable": True}, "source": {"type": "string", "nullable": True}}}},
        "prices": {"type": "array", "description": "GET /v1/products/{id} only: the price at each crawl that saw it",
                   "items": {"type": "object", "properties": {
                       "price": {**_NUM, "nullable": True}, "currency": {"type": "string", "nullable": True},
                       "seen_at": _TIME,
                       "run_id": {"type": "integer", "nullable": True}}}}}},
    "ProductPage": {"type": "object", "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Product"}},
        "total": {"type": "integer"}, "page": {"type": "integer"}, "per_page": {"type": "integer"}}},
    "CrawlRun": {"type": "object", "required": ["id", "status", "spec", "trigger"], "properties": {
        "id": {"type": "integer"}, "shop": {"type": "string", "nullable": True, "description": "null until it starts"},
        "spec": {"type": "string"}, "base_url": {"type": "string", "nullable": True},
        "trigger": {"type": "string", "description": "manual, api or schedule:<name>"},
        "status": {"type": "string", "enum": ["queued", "running", "done", "partial", "failed", "interrupted"]},
        "options": {"type": "object", "additionalProperties": True,
                    "description": "the options it runs with (CrawlOptions; null where not given)"},
        **{k: _TIME for k in ("created_at", "started_at", "finished_at", "heartbeat_at")},
        **{k: {"type": "integer"} for k in ("pages", "products", "new", "updated", "skipped_robots", "images_new",
                                            "near_duplicates")},
        "failed": {"type": "integer",
                   "description": "listing pages and products (an image or page of one) that failed"},
        "unknown_labels": {"type": "object", "additionalProperties": {"type": "integer"},
                           "description": "'name=raw' labels outside the vocabulary, with their counts"},
        "error": {"type": "string", "nullable": True}}},
    "CrawlRunList": {"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/CrawlRun"}}}},
    "CrawlRequest": {"type": "object", "required": ["spec"], "properties": {
        "spec": {"type": "string", "description": "crawl spec path on the server, e.g. crawler/specs/demo-a.yaml "
                 "(relative to the server's working directory); checked now (400 if it does not load), stored absolute"},
        "base_url": {"type": "string"}, "options": {"$ref": "#/components/schemas/CrawlOptions"}}},
    "CrawlOptions": {"type": "object", "additionalProperties": False, "properties": {
        "browsers": {"type": "integer", "minimum": 1, "maximum": 16},
        "max_pages": {"type": "integer", "minimum": 1, "maximum": 10_000_000},
        "remote_url": {"type": "string", "description": "a Selenium Grid, e.g. http://grid:4444/wd/hub"},
        "reindex": {"type": "boolean"}}},
    "Schedule": {"type": "object", "required": ["id", "name", "spec", "cron", "enabled"], "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "spec": {"type": "string"}, "cron": {"type": "string"},
        "base_url": {"type": "string", "nullable": True}, "options": {"$ref": "#/components/schemas/CrawlOptions"},
        "reindex": {"type": "boolean"}, "enabled": {"type": "boolean"},
        "last_fired_at": _TIME,
        "last_run_id": {"type": "integer", "nullable": True}}},
    "ScheduleList": {"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Schedule"}}}},
    "ScheduleRequest": {"type": "object", "required": ["name", "spec", "cron"], "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}, "spec": {"type": "string"},
        "cron": {"type": "string", "description": "5 fields, UTC, e.g. '0 3 * * *' (weekdays: 0 and 7 Sunday, 1 "
                 "Monday, or sun-sat); 400 if it never fires"},
        "base_url": {"type": "string"}, "reindex": {"type": "boolean"},
        "options": {"$ref": "#/components/schemas/CrawlOptions"}}},
    "Ready": {"type": "object", "required": ["ready", "problems"], "properties": {
        "ready": {"type": "boolean"}, "problems": {"type": "object", "additionalProperties": {"type": "string"}},
        "index": {"type": "object", "description": "the live index build, once there is one", "properties": {
            "build": {"type": "string"}, "products": {"type": "integer"}}}}},
    "Health": {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}},
}


def _multipart(props: dict, required: list[str]) -> dict:
    return {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": required, "properties": props,
        "additionalProperties": False}}}}  # any other field is a 400 unknown_parameter


# a generated client has one API class per tag (SearchApi, CatalogueApi, ...): the app needs no admin calls
TAGS = {"search": "a photo or sketch in: garments, attributes, shop links", "catalogue": "browse the products",
        "admin": "crawls and schedules, behind a bearer token", "ops": "liveness and readiness"}


def spec() -> dict:
    upload = {"image": _IMAGE}
    search_props = {"image": _IMAGE, "kind": _KIND, "hints": _HINTS,
                    "top_k": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10}, **_FILTER_PROPS}
    admin = [{"bearerAuth": []}]
    key = [{"apiKey": []}, {}]  # X-API-Key when the server has SKETCHSHOP_API_KEYS set, else nothing
    return {
        "openapi": "3.0.3",
        "info": {"title": "sketchshop API", "version": __version__,
                 "description": "Upload a photo or a sketch (with optional colour hints); get, for each garment "
                                "found, its category, colour and attributes and the shop products that match."},
        "servers": [{"url": "/"}],
        "paths": {
            "/v1/search": {"post": {"operationId": "search", "tags": ["search"], "security": key,
                                    "summary": "photo or sketch in, shop links out",
                                    "requestBody": _multipart(search_props, ["image"]),
                                    "responses": {"200": _json("SearchResponse"), **_UPLOAD_ERRORS}}},
            "/v1/colorize": {"post": {"operationId": "colorize", "tags": ["search"], "security": key,
                                      "summary": "sketch plus hints to a PNG (the size the sketch was read at)",
                                      "requestBody": _multipart({"image": _IMAGE, "hints": _HINTS,
                                                                 "category": {"type": "string"}}, ["image"]),
                                      "responses": {"200": {"description": "PNG", "content": {
                                          "image/png": {"schema": {"type": "string", "format": "binary"}}}},
                                          **_UPLOAD_ERRORS}}},
            "/v1/detect": {"post": {"operationId": "detect", "tags": ["search"], "security": key,
                                    "summary": "garment boxes in a photo",
                                    "requestBody": _multipart(upload, ["image"]),
                                    "responses": {"200": _json("DetectResponse"), **_UPLOAD_ERRORS}}},
            "/v1/classify": {"post": {"operationId": "classify", "tags": ["search"], "security": key,
                                      "summary": "category, colour, attributes, embedding",
                                      "requestBody": _multipart({"image": _IMAGE, "kind": _KIND, "hints": _HINTS},
                                                                ["image"]),
                                      "responses": {"200": _json("ClassifyResponse"), **_UPLOAD_ERRORS}}},
            "/v1/products": {"get": {"operationId": "listProducts", "tags": ["catalogue"],
                                     "summary": "browse the catalogue",
                                     "parameters": [_q(k, v, k.replace("_", " ")) for k, v in _FILTER_PROPS.items()] + [
                                         _q("q", {"type": "string", "maxLength": 200}, "text in title or brand (printable)"),
                                         _q("page", {"type": "integer", "minimum": 1, "default": 1}, "page number"),
                                         _q("per_page", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                                            "page size")],
                                     "responses": {"200": _json("ProductPage"), **_errors(400, 503)}}},
            "/v1/products/{product_id}": {"get": {
                "operationId": "getProduct", "tags": ["catalogue"], "summary": "one product",
                "parameters": [{"name": "product_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {"200": _json("Product"), **_errors(404, 503)}}},
            "/v1/images/{sha}": {"get": {
                "operationId": "getImage", "tags": ["catalogue"], "summary": "a stored product image",
                "parameters": [{"name": "sha", "in": "path", "required": True,
                                "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}],
                "responses": {"200": {"description": "the image", "content": {
                    "image/*": {"schema": {"type": "string", "format": "binary"}}}},
                    "206": {"description": "the bytes a Range header asked for", "content": {
                        "image/*": {"schema": {"type": "string", "format": "binary"}}}},
                    "304": {"description": "not modified (If-None-Match)"},
                    "416": {"description": "the Range lies past the end of the image"}, **_errors(400, 404)}}},
            "/v1/crawls": {
                "post": {"operationId": "startCrawl", "tags": ["admin"], "security": admin,
                         "summary": "queue a crawl",
                         "requestBody": {"required": True, "content": {"application/json": {
                             "schema": {"$ref": "#/components/schemas/CrawlRequest"}}}},
                         "responses": {"202": _json("CrawlRun", "queued"), **_errors(400, 401, 403)}},
                "get": {"operationId": "listCrawls", "tags": ["admin"], "security": admin,
                        "summary": "recent crawl runs",
                        "parameters": [_q("shop", {"type": "string"}, "shop name"),
                                       _q("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "how many")],
                        "responses": {"200": _json("CrawlRunList", "runs"), **_errors(400, 401, 403)}}},
            "/v1/crawls/{run_id}": {"get": {
                "operationId": "getCrawl", "tags": ["admin"], "security": admin,
                "parameters": [{"name": "run_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {"200": _json("CrawlRun"), **_errors(401, 403, 404)}}},
            "/v1/schedules": {
                "get": {"operationId": "listSchedules", "tags": ["admin"], "security": admin,
                        "responses": {"200": _json("ScheduleList", "schedules"), **_errors(401, 403)}},
                "post": {"operationId": "addSchedule", "tags": ["admin"], "security": admin,
                         "requestBody": {"required": True, "content": {"application/json": {
                             "schema": {"$ref": "#/components/schemas/ScheduleRequest"}}}},
                         "responses": {"201": _json("Schedule", "created"), **_errors(400, 401, 403)}}},
            "/v1/schedules/{name}": {"delete": {
                "operationId": "removeSchedule", "tags": ["admin"], "security": admin,
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"204": {"description": "removed"}, **_errors(401, 403, 404)}}},
            "/healthz": {"get": {"operationId": "health", "tags": ["ops"],
                                 "responses": {"200": _json("Health", "alive")}}},
            "/readyz": {"get": {"operationId": "ready", "tags": ["ops"],
                                "responses": {"200": _json("Ready"), "503": _json("Ready", "not ready")}}},
        },
        "tags": [{"name": t, "description": d} for t, d in TAGS.items()],
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}},
    }
