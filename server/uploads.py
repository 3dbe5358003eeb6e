"""Reading what a phone sends: one image file, optional hints, and validated options."""
from __future__ import annotations

import json

from flask import request
from PIL import Image

from catalog.index import Filters
from sketchshop import vocab
from sketchshop.config import settings
from sketchshop.errors import ImageError, TooLarge
from sketchshop.images import WORK_SIDE, has_hints, load_image

from .errors import ApiError, parse_int, parse_number

ALLOWED_TYPES = {"JPEG", "PNG", "WEBP", "HEIF", "HEIC", "MPO"}
MAX_HINT_POINTS = 2000


FILTERS = ("category", "colour", "color", "min_price", "max_price", "shop", "currency")


def only(*names: str) -> None:
    """Refuse a parameter (query or form) this call does not take: a misspelt filter ('price_max', 'topK')
    would otherwise be ignored, and the answer look right while being unfiltered."""
    import difflib
    import re
    for name in [*request.args, *request.form, *request.files]:
        if not isinstance(name, str):  # a part whose name Werkzeug could not read
            raise ApiError(400, "unknown_parameter", "a form field without a readable name")
        if name not in names:
            snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower().replace("-", "_")  # topK, max-price
            near = [n for n in names if sorted(n.split("_")) == sorted(snake.split("_"))]      # price_max
            near = near or difflib.get_close_matches(snake, names, n=1, cutoff=0.6)           # categroy
            hint = f" (did you mean '{near[0]}'?)" if near else f"; it takes {', '.join(names) or 'none'}"
            raise ApiError(400, "unknown_parameter", f"unknown parameter {name[:100]!r}{hint}")


def image_from(field: str = "image", *, required: bool = True, mode: str = "RGB") -> Image.Image | None:
    f = request.files.get(field)
    if f is None:
        if field in request.form:
            raise ApiError(400, "bad_request", f"'{field}' must be sent as a multipart file, not a form field")
        if required:
            raise ApiError(400, "missing_file", f"multipart file field '{field}' is required")
        return None
    data = f.read()
    if not data:
        raise ApiError(400, "empty_file", f"'{field}' is empty")
    try:
        # the query image is read at the working size (boxes go back scaled: `original_scale`);
        # a hint layer keeps its own, as the colouriser fits it to the sketch
        im = load_image(data, max_pixels=settings().max_image_pixels, mode=mode,
                        max_side=WORK_SIDE if field == "image" else None)
    except (ImageError, TooLarge) as e:
        msg = str(e).replace("<bytes>", f"'{field}'")
        if "not an image" in msg:
            raise ApiError(415, "unsupported_media_type",
                           f"'{field}' is not a JPEG, PNG, WebP or HEIC image") from None
        raise ApiError(e.status, e.code, msg) from None
    fmt = im.info["format"]
    if fmt and fmt.upper() not in ALLOWED_TYPES and field == "image":
        raise ApiError(415, "unsupported_media_type", f"'{field}' is {fmt}; send JPEG, PNG, WebP or HEIC")
    return im


def hints_from(scale: float = 1.0) -> Image.Image | list | None:
    """Hints as an image layer (file field `hints`) or JSON points [{"x","y","colour"|"rgb"}].

    Points are in the uploaded image's pixels; `scale` is its `original_scale` (points are divided by it).
    """
    if "hints" in request.files:
        layer = image_from("hints", mode="RGBA")
        return layer if has_hints(layer) else None  # an empty layer is no hints
    raw = request.form.get("hints")
    if not raw:
        return None
    try:
        pts = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or an integer past Python's 4300-digit limit
        raise ApiError(400, "bad_hints", "'hints' is neither an image file nor JSON points") from None
    if not isinstance(pts, list) or len(pts) > MAX_HINT_POINTS:
        raise ApiError(400, "bad_hints", f"'hints' must be a list of at most {MAX_HINT_POINTS} points")
    return [_hint_point(i, p, scale) for i, p in enumerate(pts)] or None


def _hint_point(i: int, p, scale: float) -> dict:
    """One JSON point: numbers x and y, and a vocabulary colour name or three integers 0-255 as rgb (one of them)."""
    def bad(why: str) -> ApiError:
        return ApiError(400, "bad_hints", f"hint point #{i}: {why}")

    def number(v, lo: float, hi: float) -> bool:  # compared, not converted: an int may be past float's range
        return isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v <= hi

    if not isinstance(p, dict):
        raise bad('must be an object like {"x": 10, "y": 20, "colour": "red"}')
    p = {("colour" if k == "color" else k): v for k, v in p.items()}
    unknown = sorted(set(p) - {"x", "y", "colour", "rgb"})
    if unknown:
        raise bad(f"unknown field(s) {', '.join(map(repr, unknown))}: a point has x, y and colour or rgb")
    if not all(number(p.get(k), -1e9, 1e9) for k in ("x", "y")):
        raise bad("x and y must be numbers (pixels of the uploaded image)")
    if ("colour" in p) == ("rgb" in p):
        raise bad("give either colour (a name) or rgb (three integers 0-255)")
    if "rgb" in p:
        rgb = p["rgb"]
        if not (isinstance(rgb, list) and len(rgb) == 3
                and all(number(v, 0, 255) and float(v).is_integer() for v in rgb)):
            raise bad("rgb must be three integers 0-255")
        rgb = [int(v) for v in rgb]
    else:
        if not isinstance(p["colour"], str):
            raise bad("colour must be a colour name")
        try:
            rgb = list(vocab.COLOUR_RGB[vocab.colour(p["colour"])])
        except vocab.VocabError as e:
            raise bad(str(e)) from None
    return {"x": p["x"] / scale, "y": p["y"] / scale, "rgb": rgb}


def int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.values.get(name)
    if raw in (None, ""):
        return default
    try:
        v = parse_int(raw)
    except ValueError:
        raise ApiError(400, "bad_parameter", f"'{name}' must be an integer") from None
    if not lo <= v <= hi:
        raise ApiError(400, "bad_parameter", f"'{name}' must be between {lo} and {hi}")
    return v


def filters_from() -> Filters:
    v = request.values
    f = Filters()
    try:
        if v.get("category"):
            f.category = vocab.category(v["category"])
        if v.get("colour") or v.get("color"):
            f.colour = vocab.colour(v.get("colour") or v.get("color"))
        if v.get("currency"):
            f.currency = vocab.currency(v["currency"])
    except vocab.VocabError as e:
        raise ApiError(400, "bad_filter", str(e)) from None
    for name in ("min_price", "max_price"):
        if v.get(name):
            try:
                x = parse_number(v[name])
            except ValueError:
                raise ApiError(400, "bad_filter", f"'{name}' must be a number") from None
            if not 0 <= x < 1e9:
                raise ApiError(400, "bad_filter", f"'{name}' must be between 0 and 1e9")
            setattr(f, name, x)
    if f.min_price is not None and f.max_price is not None and f.min_price > f.max_price:
        raise ApiError(400, "bad_filter", "'min_price' is above 'max_price'")
    f.shop = v.get("shop") or None
    return f


def kind_from() -> str | None:
    k = request.values.get("kind")
    if k in (None, "", "auto"):
        return None
    if k not in ("photo", "sketch"):
        raise ApiError(400, "bad_parameter", "'kind' must be 'photo' or 'sketch'")
    return k
