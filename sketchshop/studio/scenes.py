"""Multi-item scenes for detector pre-training: several garments on a busy background.

Garments are painted directly at their final size (no resampling), so every box and mask is
exact: a box is the tight box of the visible mask after later garments cover earlier ones.
A placement that would hide too much of an earlier garment is retried elsewhere or dropped,
so there are no unlabelled garment pixels. Shoes give one instance per shoe, as in the
street-photo annotations the detector is judged on.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .. import vocab
from ..errors import UserError
from . import geometry, paint
from .products import sample_attributes

MIN_VISIBLE = 0.6         # an earlier garment must keep this share of its pixels
MIN_AREA = 0.002          # instances smaller than this share of the image are not placed


@dataclass
class Scene:
    image: Image.Image
    boxes: list[tuple[float, float, float, float]]     # x, y, w, h in pixels
    labels: list[str]                                  # coarse categories
    masks: list[Image.Image]                           # "L", 255 = visible part of the garment
    fine: list[str] = field(default_factory=list)      # fine category of each box
    colours: list[str] = field(default_factory=list)


def _item_scale(cat: str, rng) -> float:
    if cat in ("hat", "bag"):
        return rng.uniform(0.16, 0.3)
    if cat == "shoes":
        return rng.uniform(0.18, 0.3)
    return rng.uniform(0.28, 0.55)


def render_scene_arrays(seed: int, n_items: int | None = None, size=(640, 640)):
    """(image uint8 HxWx3, instance map uint8 HxW, [(fine category, colour)] per instance id)."""
    try:
        W, H = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    except (TypeError, ValueError, IndexError):
        raise UserError(f"scene size must be (width, height) (got {size!r})") from None
    if not (128 <= W <= 2048 and 128 <= H <= 2048):
        raise UserError(f"scene size must be 128-2048 px per side (got {W}x{H})")
    if int(seed) < 0:
        raise UserError(f"seed must be >= 0 (got {seed})")
    rng = np.random.default_rng([int(seed), 0x5CE4E])
    if n_items is None:
        n_items = int(rng.integers(2, 7))
    if not 1 <= int(n_items) <= 30:
        raise UserError(f"n_items must be 1-30 (got {n_items})")
    img = paint.busy_background(H, W, rng)
    owner = np.zeros((H, W), np.uint8)
    full_area: dict[int, int] = {}     # instance id -> pixels when placed
    visible: dict[int, int] = {}       # instance id -> pixels still visible
    info: list[tuple[str, str]] = []
    short = min(W, H)
    for _ in range(int(n_items)):
        cat = vocab.FINE_CATEGORIES[int(rng.integers(len(vocab.FINE_CATEGORIES)))]
        col = vocab.COLOURS[int(rng.integers(len(vocab.COLOURS)))]
        attrs = sample_attributes(cat, rng)
        s = max(48, int(short * _item_scale(cat, rng)))
        placed = geometry.place(geometry.build(cat, attrs, rng), s, s, rng, margin=(0.02, 0.05), angle=(-30, 30),
                                shift=0.0)
        layer = paint.paint_garment(placed, col, s, s, rng)
        x0, y0, x1, y1 = layer.box
        lw, lh = x1 - x0, y1 - y0
        if lw >= W or lh >= H:
            continue
        local = np.where(layer.alpha >= 0.5, layer.instances, 0)
        for _try in range(15):
            px, py = int(rng.integers(0, W - lw + 1)), int(rng.integers(0, H - lh + 1))
            win = owner[py:py + lh, px:px + lw]
            covered = np.bincount(win[local > 0], minlength=len(info) + 1)
            if all(visible[k] - covered[k] >= MIN_VISIBLE * full_area[k] for k in full_area if covered[k]):
                break
        else:
            continue
        base = len(info)
        ids = np.unique(local[local > 0])
        areas = {int(i): int((local == i).sum()) for i in ids}
        if any(a < MIN_AREA * W * H for a in areas.values()):
            continue
        layer.box = (px, py, px + lw, py + lh)
        layer.frame = (H, W)
        img = paint.drop_shadow(img, layer, rng, strength=(0.25, 0.45))
        img = paint.compose(img, layer)
        for k in full_area:
            visible[k] -= int(covered[k])
        for i in ids:
            k = base + int(i)
            full_area[k] = visible[k] = areas[int(i)]
            win[local == i] = k
            info.append((cat, col))
    image = paint.light(img, rng)
    return image, owner, info


def render_scene(seed: int, n_items: int | None = None, size=(640, 640)) -> Scene:
    """A busy-background scene with `n_items` garments (2-6 when None); size is (width, height)."""
    image, owner, info = render_scene_arrays(seed, n_items, size)
    boxes, labels, masks, fine, colours = [], [], [], [], []
    for k, (cat, col) in enumerate(info, start=1):
        m = owner == k
        ys, xs = np.nonzero(m)
        if not len(xs):
            continue
        boxes.append((float(xs.min()), float(ys.min()), float(xs.max() + 1 - xs.min()), float(ys.max() + 1 - ys.min())))
        labels.append(vocab.FINE_TO_COARSE[cat])
        masks.append(Image.fromarray(np.where(m, 255, 0).astype(np.uint8), "L"))
        fine.append(cat)
        colours.append(col)
    return Scene(Image.fromarray(image, "RGB"), boxes, labels, masks, fine, colours)
