"""Image loading shared by every reader, model and endpoint.

One function decides how any file becomes an RGB image: EXIF orientation applied,
16-bit, CMYK, palette and alpha converted (alpha composited on white, the way a
sketch canvas or a shop cut-out is meant to be seen), size checked before decoding.
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import BadShape, ImageError, TooLarge

try:  # HEIC from phones; optional at import so a broken wheel cannot take the product down
    import pillow_heif
    pillow_heif.register_heif_opener()
except Exception:  # pragma: no cover
    pillow_heif = None

MIN_SIDE = 16
DEFAULT_MAX_PIXELS = 40_000_000
# Queries and catalogue images are read at this long side or a little more (`load_image(max_side=)`):
# the models were trained on 400-830 px photos and look at 256 px, and a 12 MP phone photo decoded
# at full size took longer than everything else in a search.
WORK_SIDE = 1000
# No garment picture is longer than this to one; a sliver is refused rather than padded to a square of its
# long side (16 x 150,000 px: 2.4 MP of upload, a 67 GB canvas for the colouriser).
MAX_ASPECT = 20
Image.MAX_IMAGE_PIXELS = None  # we check ourselves, with a clear error instead of a warning


def _name(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return "<bytes>" if isinstance(source, (bytes, bytearray)) else getattr(source, "name", "<stream>")


def _open(source) -> Image.Image:
    if isinstance(source, (str, os.PathLike)):
        if not Path(source).is_file():
            raise ImageError(f"{source}: no such file")
        return Image.open(source)
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError("empty image data")
        return Image.open(io.BytesIO(source))
    return Image.open(source)


def load_image(source, *, max_pixels: int = DEFAULT_MAX_PIXELS, mode: str = "RGB",
               background=(255, 255, 255), max_side: int | None = None) -> Image.Image:
    """Decode `source` (path, bytes or file object) into an upright image in `mode`.

    With `max_side`, an image at least twice that long is reduced by a whole factor (1/2, 1/4, 1/8
    for JPEG, decoded at that scale; any factor otherwise) to a long side of at least `max_side`;
    its upright size before reducing is kept in `info["original_size"]` (see `original_scale`). The file's
    format (JPEG, PNG, ...) is kept in `info["format"]`, as converting forgets `Image.format`.
    Raises ImageError (not an image, corrupt, too small) or TooLarge (pixel bomb).
    """
    name = _name(source)
    try:
        im = _open(source)
        fmt, (w, h) = im.format, im.size
        check_size(w, h, name, max_pixels)
        if _reduction(w, h, max_side) >= 2:
            k = max(max_side / max(w, h), MIN_SIDE / min(w, h))
            im.draft(None, (math.ceil(w * k), math.ceil(h * k)))  # JPEG: DCT scaling, a no-op elsewhere
        im.load()
        upright = ImageOps.exif_transpose(im)
        if upright.size != im.size:  # a quarter turn
            w, h = h, w
        im = convert(upright, mode, background)
        if _reduction(*im.size, max_side) >= 2:
            im = im.reduce(_reduction(*im.size, max_side))
    except (ImageError, TooLarge):
        raise
    except UnidentifiedImageError:
        fmt = _signature(source)
        if fmt:  # a known format's header over a body that does not decode
            raise ImageError(f"{name}: corrupt or truncated image ({fmt} header, but unreadable)") from None
        raise ImageError(f"{name}: not an image (or an unsupported format)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageError(f"{name}: corrupt or truncated image ({e})") from None
    if im.size != (w, h):
        im.info["original_size"] = (w, h)
    im.info["format"] = fmt
    return im


_SIGNATURES = ((0, b"\xff\xd8\xff", "JPEG"), (0, b"\x89PNG\r\n\x1a\n", "PNG"), (8, b"WEBP", "WebP"),
               (4, b"ftypheic", "HEIC"), (4, b"ftypheix", "HEIC"), (4, b"ftypmif1", "HEIF"), (4, b"ftypavif", "AVIF"),
               (0, b"GIF8", "GIF"), (0, b"BM", "BMP"), (0, b"II*\0", "TIFF"), (0, b"MM\0*", "TIFF"))


def _signature(source) -> str | None:
    """The image format a file's first bytes announce, or None."""
    try:
        if isinstance(source, (bytes, bytearray)):
            head = bytes(source[:16])
        elif isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as f:
                head = f.read(16)
        else:
            source.seek(0)
            head = source.read(16)
    except (OSError, AttributeError, ValueError):
        return None
    return next((fmt for at, magic, fmt in _SIGNATURES if head[at:at + len(magic)] == magic), None)


def check_size(w: int, h: int, name: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """TooLarge past `max_pixels` (a pixel bomb); ImageError under MIN_SIDE or longer than MAX_ASPECT to one."""
    if w * h > max_pixels:
        raise TooLarge(f"{name}: {w}x{h} is more than {max_pixels:,} pixels")
    if min(w, h) < MIN_SIDE:
        raise BadShape(f"{name}: {w}x{h} is too small (min side {MIN_SIDE} px)")
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise BadShape(f"{name}: {w}x{h} is a sliver, not a picture of a garment (more than {MAX_ASPECT}:1)")


def _reduction(w: int, h: int, max_side: int | None) -> int:
    """The whole factor `load_image` reduces a w x h image by: the long side to at least `max_side`, and the short
    side never below MIN_SIDE (a long thin image is reduced no further than its short side allows)."""
    return min(max(w, h) // max_side, min(w, h) // MIN_SIDE) if max_side else 1


def original_scale(im: Image.Image) -> float:
    """How many pixels of the file one pixel of `im` stands for (1.0 unless `load_image` reduced it), read on the
    long side: the short one is rounded to few pixels."""
    return max(im.info.get("original_size", im.size)) / max(im.size)


def original_box(box, im: Image.Image) -> list[float]:
    """A box on `im` in the file's pixels (`original_scale`), kept inside the file's frame."""
    s = original_scale(im)
    w, h = im.info.get("original_size", im.size)
    return [round(min(max(float(v) * s, 0.0), lim), 1) for v, lim in zip(box, (w, h, w, h))]


def convert(im: Image.Image, mode: str = "RGB", background=(255, 255, 255)) -> Image.Image:
    if im.mode == mode:
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        hi = a.max() or 1.0
        im = Image.fromarray(np.clip(a / hi * 255.0, 0, 255).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA") and mode == "RGB":
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, tuple(background) + (255,))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return im.convert(mode)


PAPER_WHITE = 235  # a drawing app's canvas; paper in a photo is darker and unevenly lit


def as_drawing(im: Image.Image, *, paper: bool = True) -> Image.Image:
    """A drawing as the models read one, RGB dark strokes on white: light strokes on dark paper (a
    chalkboard app, a stroke bitmap such as Quick, Draw!'s) are inverted; with `paper`, a photo of a
    drawing on paper (grey, unevenly lit, no colour) gets the paper's light divided out (`flatten_paper`).
    A white canvas passes through, and so does a photo, unless it is mostly dark with light in it (as a
    chalkboard is: a caller who says a photo is a sketch gets it read as one)."""
    rgb = convert(im, "RGB")
    g = np.asarray(rgb.convert("L").reduce(max(1, max(rgb.size) // 64)))
    b = max(1, min(g.shape) // 16)
    border = np.median(np.concatenate([g[:b].ravel(), g[-b:].ravel(), g[:, :b].ravel(), g[:, -b:].ravel()]))
    if border < 64 and (np.asarray(rgb.convert("L")) > 160).any():  # full size: a thin stroke fades in `g`
        return ImageOps.invert(rgb)
    if paper and border < PAPER_WHITE and _photographed_drawing(rgb):
        return Image.fromarray(flatten_paper(np.asarray(rgb))).convert("RGB")
    return rgb


def require_ink(drawing: Image.Image) -> Image.Image:
    """A drawing with a dark stroke on it (light strokes on a dark slate count too); an empty canvas (drawn on,
    then erased) or one of one colour (a chalkboard app's empty slate) is an ImageError rather than a search for
    whatever a blank page resembles. Cheap (one extrema pass): it runs on every sketch request."""
    lo, hi = convert(drawing, "RGB").convert("L").getextrema()
    if lo >= 192 or hi - lo < 32:
        raise ImageError("the sketch is empty: draw the garment's outline with dark strokes")
    return drawing


def _photographed_drawing(rgb: Image.Image) -> bool:
    """Paper: flattened, mostly white with few mid-tones, and without colour. Of 341 simulated photos of
    doodles on paper 329 qualify; none of 341 clothing-small photos or 234 street photos, but 20 of 400
    studio renders of pale products on pale backdrops (so the kind guess does not use it)."""
    import cv2
    small = np.asarray(rgb.reduce(max(1, max(rgb.size) // 128)))
    f = flatten_paper(small, stretch=False)
    saturation = np.percentile(cv2.cvtColor(small, cv2.COLOR_RGB2HSV)[..., 1], 95)
    return (f > 235).mean() > 0.75 and ((f > 100) & (f <= 235)).mean() < 0.2 and saturation < 40


def flatten_paper(rgb: np.ndarray, work: int = 256, stretch: bool = True) -> np.ndarray:
    """Gray uint8 of a photographed drawing with the paper made white: each pixel divided by the paper's
    light there, estimated as the brightest pixel nearby (strokes up to about 8 px wide at `work` px vanish
    from it), smoothed; with `stretch`, the darkest 1 % made black (a pencil's grey read as a pen's black)."""
    import cv2
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    h, w = g.shape
    s = min(1.0, work / max(h, w))
    small = cv2.resize(g, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    light = cv2.GaussianBlur(cv2.dilate(small, np.ones((9, 9), np.uint8)), (0, 0), 6)
    f = g / np.maximum(cv2.resize(light, (w, h), interpolation=cv2.INTER_LINEAR), 1.0)
    ink = min(float(np.percentile(f, 1)), 0.9) if stretch else 0.0
    return np.clip((f - ink) / (1.0 - ink) * 255.0, 0, 255).astype(np.uint8)


def hint_mask(rgba: np.ndarray) -> np.ndarray:
    """Where an HxWx4 uint8 hint layer holds hints: its opaque pixels, or, when nothing in it is transparent
    (coloured strokes on white, as a PNG without alpha arrives), the pixels clearly off white."""
    alpha = rgba[..., 3]
    if alpha.min() < 255:
        return alpha > 127
    return rgba[..., :3].min(axis=2) < 215


def has_hints(layer: Image.Image) -> bool:
    """`hint_mask(np.asarray(layer)).any()` of an RGBA layer, from band extrema without copying its pixels out
    (a phone-size layer: 1.4 ms instead of 12)."""
    lo, hi = layer.getchannel("A").getextrema()
    if lo < 255:
        return hi > 127
    return min(band[0] for band in layer.getextrema()[:3]) < 215


def to_array(im) -> np.ndarray:
    """HxWx3 uint8 RGB of a PIL image in any mode; an array passes through. Reading a PIL image's
    pixels copies them (up to 0.8 ms for a 400x533 photo), so a hot path does it once per image."""
    return im if isinstance(im, np.ndarray) else np.asarray(convert(im, "RGB"), dtype=np.uint8)
