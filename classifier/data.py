"""Preprocessing (the single function used at index and query time), training data and augmentation.

Crops arrive in every aspect ratio (a detector box around trousers is tall, a bag is wide), so the
input is letterboxed, not squashed or centre-cropped: the garment's silhouette, which tells a
skirt from a dress, survives. The pad colour is the median of the image border, so padding looks
like more background rather than a new edge.
"""
from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from sketchshop import vocab
from sketchshop.errors import UserError
from sketchshop.images import convert, load_image, to_array

log = logging.getLogger(__name__)

SIZE = 224
CACHE_SIDE = 320                       # longer side of the in-memory training cache
_MEAN = np.array((0.485, 0.456, 0.406), np.float32) * 255
_STD = np.array((0.229, 0.224, 0.225), np.float32) * 255
_INV_STD = 1 / _STD
CAT_INDEX = {c: i for i, c in enumerate(vocab.FINE_CATEGORIES)}
COLOUR_INDEX = {c: i for i, c in enumerate(vocab.COLOURS)}


def border_colour(a: np.ndarray) -> tuple[int, int, int]:
    """Median RGB of the outermost 4 % of the image: the background a garment lies on."""
    h, w = a.shape[:2]
    b = max(1, int(round(0.04 * min(h, w))))
    edge = np.concatenate([a[:b].reshape(-1, 3), a[-b:].reshape(-1, 3),
                           a[:, :b].reshape(-1, 3), a[:, -b:].reshape(-1, 3)])
    if edge.dtype != np.uint8:
        return tuple(int(v) for v in np.median(edge, axis=0))
    # np.median's value (mean of the two middle ranks, truncated) from a histogram: 4x faster
    n = len(edge)
    out = []
    for c in range(3):
        cum = np.cumsum(np.bincount(edge[:, c], minlength=256))
        lo, hi = np.searchsorted(cum, [(n - 1) // 2, n // 2], side="right")
        out.append(int((int(lo) + int(hi)) / 2))
    return tuple(out)


def fit(a: np.ndarray, size: int) -> np.ndarray:
    """RGB array `a` resized so that its longer side is `size`.

    OpenCV resizes: exact 2x area halvings while the scale is below 1/2, then bilinear. It takes
    a sixth of PIL's antialiased bilinear (the largest part of a query's preprocessing) and gave
    the same validation top-1.
    """
    import cv2
    h, w = a.shape[:2]
    s = size / max(w, h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    while s < 0.5 and min(a.shape[:2]) >= 2:
        a = a[:a.shape[0] // 2 * 2, :a.shape[1] // 2 * 2]  # even sides: OpenCV's fast 2x path
        a = cv2.resize(a, (a.shape[1] // 2, a.shape[0] // 2), interpolation=cv2.INTER_AREA)
        s *= 2
    if (a.shape[1], a.shape[0]) != (nw, nh):
        a = cv2.resize(a, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return a


def pad(a: np.ndarray, size: int, fill) -> np.ndarray:
    """`a` (sides at most `size`) centred on a size x size canvas of colour `fill`."""
    import cv2
    nh, nw = a.shape[:2]
    if (nw, nh) == (size, size):
        return a
    y, x = (size - nh) // 2, (size - nw) // 2
    # OpenCV's border: 0.01 ms, where filling a numpy canvas and copying in took 0.45 (of a query's 12)
    return cv2.copyMakeBorder(np.ascontiguousarray(a), y, size - nh - y, x, size - nw - x, cv2.BORDER_CONSTANT,
                              value=tuple(int(v) for v in fill))


def letterbox_array(im, size: int = SIZE, fill=None) -> np.ndarray:
    """Fit `im` (PIL or RGB array) into size x size keeping its aspect ratio; pad with `fill`
    (default: border median)."""
    a = to_array(im)
    return pad(fit(a, size), size, border_colour(a) if fill is None else fill)


def letterbox(im, size: int = SIZE, fill=None) -> Image.Image:
    return Image.fromarray(letterbox_array(im, size, fill))


def to_tensor(im) -> torch.Tensor:
    import cv2
    a = np.asarray(im)
    out = np.empty((3, *a.shape[:2]), np.float32)
    for c, plane in enumerate(cv2.split(a)):  # contiguous planes: 3x faster than strided channels
        np.multiply(plane, _INV_STD[c], out=out[c], casting="unsafe")
        out[c] -= _MEAN[c] * _INV_STD[c]
    return torch.from_numpy(out)


DRAWING_FILL = 0.8  # the ink's share of a training drawing's longer side (studio sketches 0.82, XDoG 0.78: medians)


def drawing_frame(im: Image.Image, fill: float = DRAWING_FILL) -> tuple[int, int, int, int] | None:
    """The box that frames a drawing's strokes with a margin, so that they span `fill` of its longer side as
    in the training drawings; None for a drawing already about that size, or without strokes.

    People draw anywhere on a phone's canvas, often small: outline doodles drawn at a third to a half of a
    720x1280 canvas scored 0.52 coarse top-1 as they were, 0.74 framed (the classifier card, session 17)."""
    g = np.asarray(convert(im, "RGB").convert("L")) < 160  # a transparent canvas counts as white
    rows, cols = np.flatnonzero(g.any(axis=1)), np.flatnonzero(g.any(axis=0))
    if len(rows) < 2 or len(cols) < 2:
        return None
    x1, y1, x2, y2 = int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
    ink = max(x2 - x1, y2 - y1)
    if ink / fill >= 0.95 * max(im.size):
        return None
    m = ink * (1 / fill - 1) / 2
    return max(0, int(x1 - m)), max(0, int(y1 - m)), min(im.width, int(x2 + m + 1)), min(im.height, int(y2 + m + 1))


def frame_drawing(im: Image.Image) -> Image.Image:
    box = drawing_frame(im)
    return im if box is None else im.crop(box)


def preprocess(image, size: int = SIZE) -> torch.Tensor:
    """THE preprocessing (index time = query time): any image -> normalised 3 x size x size tensor."""
    if not isinstance(image, (Image.Image, np.ndarray)):
        image = load_image(image)
    return to_tensor(letterbox_array(image, size))


# ---------------------------------------------------------------- sketches from photos

def photo_to_sketch(rgb: np.ndarray, rng: random.Random | None = None, mask: np.ndarray | None = None) -> np.ndarray:
    """A line drawing of a photo (XDoG edges, random stroke thickness and wobble), black on white.

    Users draw outlines and a few inner lines; XDoG keeps outlines and strong folds, and a small
    elastic warp plus random dilation imitate a hand's jitter and pen width. Low-contrast items
    (white on white) get a contrast boost first so their outline does not vanish. With a garment
    `mask` (default: the border-colour foreground model), lines outside it are dropped and the
    mask's outline is drawn, the way people draw: silhouette first, a few inner lines.
    """
    import cv2
    rng = rng or random.Random()
    if mask is None:
        from .colour import foreground_mask
        small = cv2.resize(rgb, (max(1, rgb.shape[1] // 3), max(1, rgb.shape[0] // 3)), interpolation=cv2.INTER_AREA)
        mask = foreground_mask(small, thresh=rng.uniform(10, 16))
        if mask.mean() < 0.05 or mask.mean() > 0.95:
            mask = None
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    lo, hi = np.percentile(g, 2), np.percentile(g, 98)
    g = np.clip((g - lo) / max(hi - lo, 1e-3), 0, 1)
    scale = max(g.shape) / 320.0
    sigma = rng.uniform(0.6, 1.4) * scale
    k, p, eps, phi = 1.6, rng.uniform(18, 30), rng.uniform(-0.02, 0.02), 10.0
    g1 = cv2.GaussianBlur(g, (0, 0), sigma)
    g2 = cv2.GaussianBlur(g, (0, 0), sigma * k)
    d = (1 + p) * g1 - p * g2
    e = np.where(d >= eps, 1.0, 1 + np.tanh(phi * (d - eps)))
    line = (e < rng.uniform(0.55, 0.8)).astype(np.uint8)
    # drop small specks (texture, print) so it looks drawn, not photocopied
    n, lab, stats, _ = cv2.connectedComponentsWithStats(line, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= rng.uniform(8, 30) * scale * scale
    keep[0] = False
    line = keep[lab].astype(np.uint8)
    if mask is not None:  # background edges (floor tiles, carpets) are not part of a drawing
        m = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0)
        m = (cv2.resize(m, (line.shape[1], line.shape[0]), interpolation=cv2.INTER_LINEAR) > 0.5).astype(np.uint8)
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
        inner = cv2.erode(m, np.ones((5, 5), np.uint8))
        outline = cv2.morphologyEx(m, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
        line = ((line & inner) | outline).astype(np.uint8)
    t = rng.choice([0, 0, 0, 1, 1, 2])
    if t:
        line = cv2.dilate(line, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (t + 1, t + 1)))
    h, w = line.shape
    if rng.random() < 0.7:  # smooth random warp = stroke wobble
        amp = rng.uniform(1.0, 4.0) * scale
        gx = cv2.resize(np.random.default_rng(rng.randrange(1 << 30)).standard_normal((6, 6)).astype(np.float32), (w, h))
        gy = cv2.resize(np.random.default_rng(rng.randrange(1 << 30)).standard_normal((6, 6)).astype(np.float32), (w, h))
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        line = cv2.remap(line, xs + amp * gx, ys + amp * gy, cv2.INTER_NEAREST)
    ink = rng.choice([0, 0, 0, 30, 60])
    out = np.where(line[..., None] > 0, ink, 255).astype(np.uint8)
    return np.repeat(out, 3, axis=2)


# ---------------------------------------------------------------- training samples

@dataclass
class Item:
    """One cached training image with whatever labels it has (None / missing = no loss)."""
    image: np.ndarray                      # HxWx3 uint8, longer side <= CACHE_SIDE
    category: int = -1
    colour: int = -1
    attributes: dict[str, int] = field(default_factory=dict)
    sketch: np.ndarray | None = None       # a paired drawing of the same item (studio)
    source: str = "photo"
    coarse: int = -1                       # vocab.COARSE_CATEGORIES index, for items with no fine label
    mask: np.ndarray | None = None         # the garment's pixels (studio renders), for doodles


def _cache_load(path: Path) -> np.ndarray:
    im = Image.open(path)
    im.draft("RGB", (CACHE_SIDE, CACHE_SIDE))
    im = ImageOps.exif_transpose(im)
    im = convert(im, "RGB")
    im.thumbnail((CACHE_SIDE, CACHE_SIDE), Image.BILINEAR)
    return np.asarray(im)


def load_items(samples, desc: str = "loading") -> list[Item]:
    """Decode samples (sketchshop.datasets.Sample) into the in-memory cache (skips unreadable files)."""
    from tqdm import tqdm
    out, bad = [], 0
    for s in tqdm(samples, desc=desc, unit="img", mininterval=5):
        try:
            a = _cache_load(s.path)
        except Exception as e:  # a corrupt training file must not kill a long run
            bad += 1
            log.warning("skipping %s: %s", s.path, e)
            continue
        cat = CAT_INDEX.get(s.category, -1) if s.category else -1
        col = COLOUR_INDEX.get(s.colour, -1) if s.colour else -1
        attrs = {a_: vocab.ATTRIBUTES[a_].values.index(v) for a_, v in s.attributes.items()}
        out.append(Item(a, cat, col, attrs))
    if bad:
        log.warning("%d unreadable images skipped", bad)
    if samples and not out:
        raise UserError(f"{desc}: none of the {len(samples)} images could be read, e.g. {samples[0].path}")
    return out


def augment(a: np.ndarray, rng: random.Random, size: int = SIZE, *, colour_jitter: bool = False,
            fill=None) -> Image.Image:
    """RandomResizedCrop (scale 0.5-1) + flip + small rotation, letterboxed like preprocess()."""
    im = Image.fromarray(a)
    w, h = im.size
    if fill is None:
        fill = border_colour(a)
    for _ in range(10):
        area = w * h * rng.uniform(0.5, 1.0)
        r = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = int(round(math.sqrt(area * r))), int(round(math.sqrt(area / r)))
        if cw <= w and ch <= h:
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            im = im.crop((x, y, x + cw, y + ch))
            break
    if rng.random() < 0.5:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    if rng.random() < 0.5:
        im = im.rotate(rng.uniform(-12, 12), Image.BILINEAR, expand=False, fillcolor=tuple(fill))
    if colour_jitter:  # brightness/contrast only: hue would change the colour label
        from PIL import ImageEnhance
        im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.8, 1.2))
        im = ImageEnhance.Contrast(im).enhance(rng.uniform(0.8, 1.2))
    return letterbox(im, size, fill)
