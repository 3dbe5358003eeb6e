"""`Colorizer`: sketch + colour hints -> garment image, deterministic, on CPU.

The model works on a 256 px square canvas; any sketch is padded with white to a square,
scaled down, coloured, and the result cropped back to the sketch's aspect ratio and scaled to
its size (capped at `max_side`). The user's dark strokes are drawn back over the result, so
the outlines they drew stay exactly where they drew them.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from sketchshop import vocab
from sketchshop.accel import pool
from sketchshop.config import settings
from sketchshop.errors import ImageError, UserError
from sketchshop.images import as_drawing, check_size, convert, hint_mask, load_image, require_ink
from sketchshop.registry import weights_path

from .data import encode_hints, encode_sketch, hint_canvas, make_sketch, pad_square, segment_garment
from .pairs import category_index

log = logging.getLogger(__name__)

MIN_INK_PIXELS = 20  # at 256 px: fewer stroke pixels than this is an empty canvas


def _parse_rgb(v) -> tuple[int, int, int]:
    if isinstance(v, str):
        s = v.strip().lstrip("#")
        if len(s) == 6 and all(c in "0123456789abcdefABCDEF" for c in s):
            return tuple(int(s[i:i + 2], 16) for i in (0, 2, 4))
        try:
            return vocab.COLOUR_RGB[vocab.colour(v)]
        except vocab.VocabError as e:
            raise UserError(f"hint colour {v!r}: {e}") from None
    try:
        r, g, b = (int(round(float(c))) for c in v)
    except (TypeError, ValueError):
        raise UserError(f"hint colour {v!r}: expected [r, g, b], '#rrggbb' or a colour name") from None
    if not all(0 <= c <= 255 for c in (r, g, b)):
        raise UserError(f"hint colour {v!r}: channels must be 0-255")
    return r, g, b


def looks_like_photo(rgb: np.ndarray) -> bool:
    """A sketch is mostly white paper with dark (or coloured) strokes; a photo is mostly mid-tones."""
    small = cv2.resize(rgb, (128, 128), interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    paper = (gray >= 225).mean()
    mid = ((gray > 70) & (gray < 215)).mean()
    return paper < 0.35 or mid > 0.45


MAX_CANVAS = 4096  # a larger drawing is reduced before it is padded: the square of a long side costs its square


def _thicken(gray: np.ndarray, factor: float) -> np.ndarray:
    """Darkest wins before a downscale by `factor`: thin strokes survive it (an area average fades them)."""
    k = int(math.floor(factor))
    return cv2.erode(gray, np.ones((k, k), np.uint8)) if k >= 2 else gray


class Colorizer:
    """A loaded generator. `Colorizer.load()` once, then `colorize(...)` per request (thread-safe for reads)."""

    def __init__(self, generator, size: int = 256, meta: dict | None = None, path: Path | None = None):
        from .model import fuse_bn
        self.gen = fuse_bn(generator.eval())  # eval-mode BN folded into the convs: deterministic and faster
        self.size = size
        self.meta = meta or {}
        self.path = path
        self.fast = None  # the generator in ONNX Runtime or OpenVINO (sketchshop.accel), set by load()

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "Colorizer":
        """Load weights (default: the shipped `models/colorizer/colorizer.pt` or SKETCHSHOP_COLORIZER_WEIGHTS)."""
        import torch

        from .model import GRAPH_VERSION, IN_CHANNELS, UNetGenerator
        from .train import FORMAT
        p = weights_path("colorizer", path)
        try:
            st = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
            raise UserError(f"{p}: not a colorizer weights file ({type(e).__name__}: {str(e)[:120]})") from None
        if not isinstance(st, dict) or st.get("format") != FORMAT:
            raise UserError(f"{p}: not a colorizer weights file (format {st.get('format') if isinstance(st, dict) else None!r})")
        gen = UNetGenerator(widths=tuple(st["kwargs"]["widths"]))
        try:
            gen.load_state_dict(st["state_dict"])
        except (RuntimeError, KeyError) as e:
            raise UserError(f"{p}: weights do not fit the generator ({str(e)[:160]})") from None
        self = cls(gen, int(st.get("size", 256)), st.get("meta", {}), p)
        from sketchshop.accel import onnx_module, openvino_module
        from sketchshop.registry import sha256
        example = (torch.rand(1, IN_CHANNELS, self.size, self.size),
                   torch.zeros(1, dtype=torch.long))
        self.fast = onnx_module(self.gen, example, ("sketch_hints", "category"), ("rgb",),
                                key=f"colorizer-{sha256(p)[:16]}-g{GRAPH_VERSION}", as_dict=False)
        # bfloat16 where the CPU has it: 0.05 of the output's [-1, 1] range is about 6 of 255 levels
        self.fast = openvino_module(self.fast, self.gen, example, atol=0.05) or self.fast
        return self

    # ------------------------------------------------------------ inputs
    def _mapping(self, sketch: Image.Image) -> tuple[float, float, float]:
        """(x0, y0, scale): where the sketch's pixels land on the square model canvas."""
        w, h = sketch.size
        check_size(w, h, "sketch", settings().max_image_pixels)
        s = max(w, h)
        return (s - w) / 2, (s - h) / 2, self.size / s

    def _canvas(self, sketch: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
        """Sketch -> (256x256 uint8 gray canvas, the sketch in gray at full size); a photo passed as a sketch
        gets the project's own sketch of it as the canvas, and None as the second."""
        rgb = np.asarray(convert(sketch, "RGB"), np.uint8)
        if looks_like_photo(rgb):
            log.warning("the sketch looks like a photo: colouring the project's own sketch of it")
            target, mask = segment_garment(rgb, self.size)
            return np.asarray(make_sketch(target, mask)), None
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        sq = gray
        if max(sq.shape) > MAX_CANVAS:
            f = max(sq.shape) / MAX_CANVAS
            sq = cv2.resize(_thicken(sq, f), (max(1, round(sq.shape[1] / f)), max(1, round(sq.shape[0] / f))),
                            interpolation=cv2.INTER_AREA)
        sq, _ = pad_square(sq, 255)
        sq = _thicken(sq, max(sq.shape) / self.size)
        return cv2.resize(sq, (self.size, self.size), interpolation=cv2.INTER_AREA), gray

    def _hints(self, hints, wh, mapping) -> np.ndarray:
        """Any accepted hint format -> 256x256 RGBA uint8 on the model canvas."""
        S = self.size
        out = np.zeros((S, S, 4), np.uint8)
        if hints is None:
            return out
        x0, y0, scale = mapping
        if isinstance(hints, (list, tuple)):
            r = max(1, round(2 * S / 256))
            dropped = 0
            for i, p in enumerate(hints):
                if not isinstance(p, dict) or "x" not in p or "y" not in p:
                    raise UserError(f"hint {i}: expected {{'x', 'y', 'rgb' or 'colour'}}")
                col = p.get("rgb", p.get("colour", p.get("color")))
                if col is None:
                    raise UserError(f"hint {i}: no 'rgb' or 'colour'")
                rgb = _parse_rgb(col)
                try:
                    x, y = float(p["x"]), float(p["y"])
                except (TypeError, ValueError):
                    raise UserError(f"hint {i}: x and y must be numbers") from None
                if not (0 <= x < wh[0] and 0 <= y < wh[1]) or not (math.isfinite(x) and math.isfinite(y)):
                    dropped += 1
                    continue
                cv2.circle(out, (int((x + x0) * scale), int((y + y0) * scale)), r, rgb + (255,), -1)
            if dropped:
                log.warning("%d hint point(s) outside the %dx%d canvas ignored", dropped, *wh)
            return out
        if not isinstance(hints, Image.Image):
            hints = load_image(hints, max_pixels=settings().max_image_pixels, mode="RGBA")
        if hints.size != tuple(wh):
            hints = hints.resize(wh, Image.NEAREST)  # the same canvas at another resolution
        rgba = np.asarray(hints.convert("RGBA"), np.uint8).copy()
        if rgba[..., 3].min() == 255:  # strokes on white: every clearly non-white pixel is a hint
            rgba[..., 3] = np.where(hint_mask(rgba), 255, 0)
        pre = hint_canvas(rgba, S)
        m = pre[..., 3] >= 0.5
        out[m, :3] = np.clip(pre[m, :3] / pre[m, 3:], 0, 255).astype(np.uint8)
        out[m, 3] = 255
        return out

    def _category(self, category) -> int:
        if category is None or category == "":
            return 0
        try:
            c = vocab.category(str(category), allow_coarse=False)
        except vocab.VocabError as e:
            raise UserError(f"category {category!r}: {e}") from None
        return category_index(c)

    # ------------------------------------------------------------ the call
    def colorize(self, sketch, hints=None, category: str | None = None, *, keep_strokes: bool = True,
                 max_side: int = 2048, square: bool = False) -> Image.Image:
        """Colour a sketch. Returns RGB at the sketch's aspect ratio and size (long side capped at `max_side`).

        hints: None; an image of colour strokes (RGBA on transparent, or on white) on the sketch's
        canvas; or a list of {"x", "y", "rgb": [r, g, b] | "#rrggbb"} / {"x", "y", "colour": name}
        in the sketch's pixel coordinates (points outside are ignored). category: a garment
        category name or None. keep_strokes: draw the user's dark strokes over the result.
        square: return the model's own square canvas instead (the sketch centred on white, `size` px),
        for a caller that classifies the result and would only scale it back down (sketch search).
        """
        import torch
        if not isinstance(sketch, Image.Image):
            sketch = load_image(sketch, max_pixels=settings().max_image_pixels)
        mapping = self._mapping(sketch)
        sketch = require_ink(as_drawing(sketch))
        w, h = sketch.size
        x = np.empty((1, 9, self.size, self.size), np.float32)
        # the hints' channels on the pool while this thread reads the strokes: they meet only in `x`
        hinted = pool().submit(lambda: encode_hints(self._hints(hints, (w, h), mapping), x[0]))
        canvas, gray = self._canvas(sketch)
        if int(((255 - canvas.astype(np.int32)) > 64).sum()) < MIN_INK_PIXELS:
            raise ImageError("the sketch is empty: draw the garment's outline with dark strokes")
        encode_sketch(canvas, x[0])
        x0, y0, scale = mapping
        cx0, cy0 = int(round(x0 * scale)), int(round(y0 * scale))
        cw, ch = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
        f = min(1.0, max_side / max(w, h))
        ow, oh = max(1, int(round(w * f))), max(1, int(round(h * f)))
        keep = None
        if keep_strokes:  # what the user's dark strokes leave of the colours under them
            if square:
                gray = canvas
            elif gray is None:  # a photo: the strokes of its sketch
                gray = cv2.resize(canvas[cy0:cy0 + ch, cx0:cx0 + cw], (ow, oh), interpolation=cv2.INTER_AREA)
            elif gray.shape != (oh, ow):
                gray = cv2.resize(gray, (ow, oh), interpolation=cv2.INTER_AREA)
            keep = 1 - np.clip((255.0 - gray.astype(np.float32)) / 127.5, 0, 1)[..., None]
        hinted.result()
        cat = torch.tensor([self._category(category)])
        with torch.inference_mode():
            y = (self.fast or self.gen)(torch.from_numpy(x), cat)[0]
        out = ((y.permute(1, 2, 0).numpy() + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
        if not square:  # crop the square canvas back to the sketch's frame, then to its size (capped)
            out = cv2.resize(out[cy0:cy0 + ch, cx0:cx0 + cw], (ow, oh), interpolation=cv2.INTER_LINEAR)
        if keep is not None:
            out = (out * keep).astype(np.uint8)
        return Image.fromarray(out, "RGB")
