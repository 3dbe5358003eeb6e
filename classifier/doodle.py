"""Doodles: the outline a person draws of a garment in a few seconds, made from its mask.

XDoG drawings of photos keep folds, seams and prints; studio sketches are clean but stylised. A
quick human doodle has neither: a wobbly, simplified silhouette, sometimes not closed, sometimes
with a line or two inside (a waistband, a collar). A model trained without these called most
contour-only drawings "top" (models/classifier/card.md). This turns any garment mask into such a
drawing so that training (and a doodle validation set) can have them.
"""
from __future__ import annotations

import logging
import random

import numpy as np

log = logging.getLogger(__name__)

SIZE = 256


def _chaikin(p: np.ndarray, rounds: int) -> np.ndarray:
    """Corner cutting: a polygon drawn by hand has round corners."""
    for _ in range(rounds):
        q = np.roll(p, -1, axis=0)
        p = np.concatenate([0.75 * p + 0.25 * q, 0.25 * p + 0.75 * q], axis=1).reshape(-1, 2)
    return p


def _resample(p: np.ndarray, step: float) -> np.ndarray:
    """The closed polygon as points every `step` px along its perimeter."""
    q = np.concatenate([p, p[:1]])
    seg = np.linalg.norm(np.diff(q, axis=0), axis=1)
    t = np.concatenate([[0], np.cumsum(seg)])
    s = np.arange(0, t[-1], step)
    return np.stack([np.interp(s, t, q[:, 0]), np.interp(s, t, q[:, 1])], axis=1)


def outlines(mask: np.ndarray, min_share: float = 0.1) -> list[np.ndarray]:
    """External contours (float Nx2) of the mask's blobs at least `min_share` of the largest one's area
    (a pair of shoes is two blobs), after closing small gaps and dropping specks."""
    import cv2
    m = (mask > 0).astype(np.uint8)
    k = max(3, int(round(0.02 * max(m.shape))) | 1)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((k, k), np.uint8))
    cs, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not cs:
        return []
    areas = [cv2.contourArea(c) for c in cs]
    top = max(areas)
    return [c[:, 0].astype(np.float32) for c, a in zip(cs, areas) if a >= min_share * top and a > 0]


def doodle(mask: np.ndarray, rng: random.Random | None = None, inner: np.ndarray | None = None,
           size: int = SIZE) -> np.ndarray | None:
    """A size x size RGB uint8 doodle (black on white) of the garment in `mask`, or None for an empty mask.

    `inner`: an optional line drawing (bool/uint8 HxW like the mask, lines > 0) from which the few
    longest inner strokes are kept.
    """
    import cv2
    rng = rng or random.Random()
    cs = outlines(mask)
    if not cs:
        return None
    pts = np.concatenate(cs)
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    span = max(x1 - x0, y1 - y0, 1.0)
    scale = size * rng.uniform(0.55, 0.9) / span  # people draw big, not always filling the canvas
    off = np.array([size / 2, size / 2]) - scale * np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    off += np.array([rng.gauss(0, 0.04 * size), rng.gauss(0, 0.04 * size)])
    canvas = np.full((size, size), 255, np.uint8)
    thick = rng.choice([1, 2, 2, 3, 3, 4])
    wobble = rng.uniform(0.0, 0.012) * size
    for c in cs:
        eps = rng.uniform(0.004, 0.025) * cv2.arcLength(c[:, None], True)
        p = cv2.approxPolyDP(c[:, None], eps, True)[:, 0].astype(np.float64)
        if len(p) < 3:
            continue
        p = _chaikin(p, rng.choice([0, 0, 1, 2])) * scale + off
        p += np.array([[rng.gauss(0, wobble), rng.gauss(0, wobble)] for _ in range(len(p))])
        closed = rng.random() < 0.8
        if not closed:  # a stroke that stops a little short of where it started
            p = _resample(p, 3.0)
            p = p[: max(3, int(len(p) * rng.uniform(0.9, 0.98)))]
        cv2.polylines(canvas, [np.round(p).astype(np.int32)], closed, 0, thick, cv2.LINE_AA)
    if inner is not None:
        lines = (inner > 0).astype(np.uint8)
        lines &= cv2.erode((mask > 0).astype(np.uint8), np.ones((7, 7), np.uint8))
        n, lab, stats, _ = cv2.connectedComponentsWithStats(lines, connectivity=8)
        if n > 1:
            longest = 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA])[: rng.randint(1, 3)]
            keep = np.isin(lab, longest).astype(np.uint8)
            M = np.float32([[scale, 0, off[0]], [0, scale, off[1]]])
            keep = cv2.warpAffine(keep * 255, M, (size, size), flags=cv2.INTER_LINEAR) > 96
            if thick > 1:
                keep = cv2.dilate(keep.astype(np.uint8), np.ones((thick - 1, thick - 1), np.uint8)) > 0
            canvas[keep] = 0
    return np.repeat(canvas[..., None], 3, axis=2)


def garment_doodle(rgb: np.ndarray, rng: random.Random | None = None) -> np.ndarray | None:
    """A doodle of the garment in a product photo, cut out with the colouriser's GrabCut; half of
    them keep a few inner lines of its XDoG drawing."""
    from colorizer.data import segment_garment

    from .data import photo_to_sketch
    rng = rng or random.Random()
    target, mask = segment_garment(rgb)
    inner = photo_to_sketch(target, rng, mask=mask > 0)[..., 0] < 128 if rng.random() < 0.5 else None
    return doodle(mask, rng, inner)


def doodle_dataset(out_dir, *, imagefolder=None, coco=None, ids=None, seed: int = 0, min_side: int = 48) -> dict:
    """Write doodles and a labels CSV (file, category) for `sketchshop eval classifier --domain sketch`.

    From an ImageFolder of product photos (GrabCut outlines), or from a COCO json whose images
    name a `mask_file` label map with `fine_label_names` (Clothing Co-Parsing): each box's
    fine-label pixels, so the outline is a person's annotation, not a segmenter's guess. `ids`:
    only these image ids (e.g. the detector's held-out photos). Garments whose box is smaller
    than `min_side` px are skipped: nobody doodles a ring.
    """
    import csv
    from pathlib import Path

    from PIL import Image
    from tqdm import tqdm

    from sketchshop.datasets import read_imagefolder
    from sketchshop.errors import UserError
    from sketchshop.files import replaced_dir
    from sketchshop.images import load_image
    out = Path(out_dir)
    rng, rows, skipped = random.Random(seed), [], 0
    if not (imagefolder or coco):
        raise UserError("give --imagefolder or --coco")
    with replaced_dir(out, "labels.csv") as tmp:  # the whole set or nothing
        def save(d, name, category):
            Image.fromarray(d).save(tmp / name)
            rows.append((name, category))

        if imagefolder:
            for s in tqdm(read_imagefolder(imagefolder), desc="doodles", unit="img"):
                try:
                    d = garment_doodle(np.asarray(load_image(s.path)), rng)
                except UserError as e:  # one unreadable photo must not stop the set
                    log.warning("%s", e)
                    d = None
                if d is None:
                    skipped += 1
                    continue
                save(d, f"{s.path.parent.name}_{s.path.stem}.png", s.category)
        else:
            from .street import masked_garments
            for im, a, category, (_, _, w, h), mask in masked_garments(coco, ids, "doodles"):
                d = None if mask is None or max(w, h) < min_side else \
                    doodle(np.pad(mask.astype(np.uint8) * 255, max(w, h) // 8), rng)
                if d is None:
                    skipped += 1
                    continue
                save(d, f"{im['id']:04d}_{a['id']}.png", category)
        if not rows:
            raise UserError(f"no doodle could be made from the input ({skipped} skipped; see the warnings above)")
        with open(tmp / "labels.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "category"])
            w.writerows(rows)
    return {"doodles": len(rows), "skipped": skipped, "labels": str(out / "labels.csv")}
