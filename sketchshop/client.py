"""Python client for the sketchshop HTTP API: what the Android app does, for tests and benchmarks.

    from sketchshop.client import Client, ApiError
    c = Client("http://127.0.0.1:8000", api_key=None, timeout=30)
    res = c.search("photo.jpg", top_k=5, category="dress", max_price=80)
    for item in res["items"]:
        print(item["category"], [m["url"] for m in item["matches"]])
    preview = c.colorize(sketch_png, hints=[{"x": 120, "y": 200, "colour": "red"}])   # PIL image

Images may be a path, bytes, a binary file object or a PIL image. Hints may be a list of
points (`{"x", "y", "colour"}` or `{"x", "y", "rgb"}`, pixel coordinates of the image) or an
RGBA layer (PIL image, PNG path or bytes) with coloured strokes on transparent.
Every error answer becomes `ApiError(status, code, message)`; a server that cannot be reached
is `ApiError(0, "unreachable", ...)`, so callers handle one exception type.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import requests
from PIL import Image

from .errors import UserError

FILTERS = ("category", "colour", "min_price", "max_price", "shop", "currency")
_MAGIC = ((b"\xff\xd8\xff", "image/jpeg", "jpg"), (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
          (b"RIFF", "image/webp", "webp"), (b"GIF8", "image/gif", "gif"))


class ApiError(UserError):
    """An error answer (or no answer) from the API."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"HTTP {status} {code}: {message}" if status else f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


def _encode_image(image, name: str) -> tuple[str, bytes, str]:
    """(filename, bytes, content type) for a multipart file field."""
    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        image.save(buf, "PNG")
        data = buf.getvalue()
    elif isinstance(image, (str, os.PathLike)):
        p = Path(image)
        if not p.is_file():
            raise ApiError(0, "bad_argument", f"{p}: no such file")
        data = p.read_bytes()
    elif isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    elif hasattr(image, "read"):
        data = image.read()
    else:
        raise TypeError(f"{name}: expected a path, bytes, a file object or a PIL image, not {type(image).__name__}")
    for magic, mime, ext in _MAGIC:
        if data.startswith(magic):
            return f"{name}.{ext}", data, mime
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypmsf1"):
        return f"{name}.heic", data, "image/heic"
    return name, data, "application/octet-stream"


def _filters(filters: dict) -> dict:
    if "color" in filters:  # the API accepts both spellings; normalise here so a typo is caught below
        filters = {**filters, "colour": filters.pop("color")}
    unknown = set(filters) - set(FILTERS)
    if unknown:
        raise TypeError(f"unknown filter(s) {sorted(unknown)}; use {', '.join(FILTERS)}")
    return {k: str(v) for k, v in filters.items() if v is not None}


class Client:
    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 30,
                 session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.http = session or requests.Session()
        if api_key:
            self.http.headers["X-API-Key"] = api_key

    # ------------------------------------------------------------------ transport
    def _request(self, method: str, path: str, *, ok=(200,), **kw) -> requests.Response:
        try:
            r = self.http.request(method, self.base_url + path, timeout=self.timeout, **kw)
        except requests.RequestException as e:
            raise ApiError(0, "unreachable", f"{method} {self.base_url}{path}: {e}") from None
        if r.status_code not in ok:
            try:
                err = r.json()["error"]
                code, message = str(err["code"]), str(err["message"])
            except (ValueError, KeyError, TypeError):
                code, message = "http_error", (r.text or r.reason or "")[:300]
            raise ApiError(r.status_code, code, message)
        return r

    def _post(self, path: str, image, *, hints=None, fields: dict | None = None) -> requests.Response:
        files = {"image": _encode_image(image, "image")}
        data = {k: str(v) for k, v in (fields or {}).items() if v is not None}
        if hints is not None:
            if isinstance(hints, (list, tuple)):
                data["hints"] = json.dumps(list(hints))
            elif isinstance(hints, str) and hints.lstrip().startswith("["):
                data["hints"] = hints
            else:
                files["hints"] = _encode_image(hints, "hints")
        return self._request("POST", path, files=files, data=data)

    # ------------------------------------------------------------------ API
    def search(self, image, kind: str | None = None, hints=None, top_k: int = 10, **filters) -> dict:
        """Detect, describe and match: the `/v1/search` answer (items with boxes, chips data, matches)."""
        return self._post("/v1/search", image, hints=hints,
                          fields={"kind": kind, "top_k": top_k, **_filters(filters)}).json()

    def colorize(self, image, hints=None, category: str | None = None) -> Image.Image:
        """The colourised sketch as an RGB PIL image."""
        r = self._post("/v1/colorize", image, hints=hints, fields={"category": category})
        im = Image.open(io.BytesIO(r.content))
        im.load()
        return im

    def detect(self, image) -> dict:
        return self._post("/v1/detect", image).json()

    def classify(self, image, kind: str | None = None, hints=None) -> dict:
        return self._post("/v1/classify", image, hints=hints, fields={"kind": kind}).json()

    def product(self, product_id: int) -> dict:
        return self._request("GET", f"/v1/products/{int(product_id)}").json()

    def products(self, page: int = 1, per_page: int | None = None, q: str | None = None, **filters) -> dict:
        """One page of catalogue products: {"items", "total", "page", "per_page"}."""
        params = {"page": page, "per_page": per_page, "q": q, **_filters(filters)}
        return self._request("GET", "/v1/products", params={k: v for k, v in params.items() if v is not None}).json()

    def image(self, sha_or_url: str) -> bytes:
        """A catalogue image's bytes, by sha256 or by the `image_url` a match carries."""
        path = sha_or_url if sha_or_url.startswith("/") else f"/v1/images/{sha_or_url}"
        return self._request("GET", path).content

    def health(self) -> dict:
        return self._request("GET", "/healthz").json()

    def ready(self) -> dict:
        """Readiness body; `ready` is False (not an exception) while models or index are missing."""
        return self._request("GET", "/readyz", ok=(200, 503)).json()
