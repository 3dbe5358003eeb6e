"""What a person would draw: a wobbly line sketch and a sparse colour-hint layer.

The sketch follows the same placed design as the photo (pixel-aligned pairs for the
colouriser), but each outline is split into a few hand strokes with low-frequency wobble,
varying pen pressure, overshoot and occasional gaps; some details are left out. Later parts
hide the lines of earlier ones, as when a person draws a sleeve behind the body.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .geometry import Design
from .paint import SHIFT, Layer, _fx, _resample


def _wobble(pts, S, rng, amp):
    """Offset a resampled polyline along its normals by smooth, hand-like noise."""
    n = len(pts)
    if n < 3:
        return pts
    d = np.gradient(pts, axis=0)
    nrm = np.stack([-d[:, 1], d[:, 0]], 1)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True) + 1e-9
    t = np.linspace(0, 1, n)
    length = float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())
    cycles = max(1.0, length / S * rng.uniform(3, 7))
    off = (np.sin(2 * math.pi * (t * cycles + rng.uniform())) * 0.7
           + np.sin(2 * math.pi * (t * cycles * 2.3 + rng.uniform())) * 0.3) * amp
    off += rng.normal(0, 0.12, n) * S / 384
    return pts + nrm * off[:, None] + rng.normal(0, amp * 0.5, 2)


def stroke(canvas, pts, closed, width, ink, S, rng, *, gaps=0.3, pieces=(1, 3)):
    """Draw a polyline as 1-3 hand strokes of varying width, with overshoot and gaps."""
    pts = np.asarray(pts, float)
    if closed:
        pts = np.concatenate([pts, pts[:1]])
    pts = _resample(pts, max(2.0, S / 110))
    n = len(pts)
    if n < 2:
        return
    k = int(rng.integers(pieces[0], pieces[1] + 1)) if n > 12 else 1
    cuts = np.sort(rng.choice(np.arange(3, n - 3), size=k - 1, replace=False)) if k > 1 and n > 8 else []
    bounds = [0, *cuts, n - 1]
    amp = S * rng.uniform(0.002, 0.006)
    for i in range(len(bounds) - 1):
        a, b = bounds[i], bounds[i + 1]
        over = int(rng.integers(0, 3))
        seg = pts[max(0, a - over): min(n, b + 1 + over)]
        if len(seg) < 2:
            continue
        seg = _wobble(seg, S, rng, amp)
        m = len(seg)
        keep = np.ones(m - 1, bool)
        if m > 10 and rng.random() < gaps:
            g0 = int(rng.integers(2, m - 4))
            keep[g0: g0 + int(rng.integers(1, max(2, m // 12) + 1))] = False
        t = np.linspace(0, math.pi, m - 1)
        press = width * (0.55 + 0.45 * np.sin(t) ** 0.5) * (1 + 0.25 * np.sin(t * rng.uniform(1, 4) + rng.uniform(0, 6)))
        thick = np.clip(np.round(press), 1, None).astype(int)
        # group consecutive segments of equal thickness into one polyline call
        j = 0
        while j < m - 1:
            if not keep[j]:
                j += 1
                continue
            e = j
            while e + 1 < m - 1 and keep[e + 1] and thick[e + 1] == thick[j]:
                e += 1
            cv2.polylines(canvas, [_fx(seg[j:e + 2])], False, ink, int(thick[j]), cv2.LINE_AA, SHIFT)
            j = e + 1


def draw_sketch(design: Design, S_h: int, S_w: int, rng, layer: Layer | None = None) -> np.ndarray:
    """uint8 HxW sketch, dark strokes on white."""
    S = max(S_h, S_w)
    canvas = np.full((S_h, S_w), 255, np.uint8)
    ink = int(rng.uniform(15, 70))
    width = S / 384 * rng.uniform(1.5, 2.6)
    for p in design.parts:
        if p.role == "hardware":
            continue
        cv2.fillPoly(canvas, [_fx(p.pts)], 255, cv2.LINE_8, SHIFT)
        if p.outline:
            stroke(canvas, p.pts, True, width * (0.8 if p.role in ("lining", "trim") else 1.0), ink, S, rng)
    drop = rng.uniform(0.15, 0.45)
    for d in design.details:
        if d.kind == "fold" and rng.random() < 0.75 or rng.random() < drop:
            continue
        stroke(canvas, d.pts, d.closed, width * 0.7 * d.weight, ink, S, rng, gaps=0.4, pieces=(1, 1))
    for p in design.parts:   # buttons as little circles, sometimes skipped
        if p.role == "hardware" and rng.random() > drop:
            c = p.pts.mean(0)
            r = max(1.5, np.abs(p.pts - c).max() * 0.9)
            cv2.circle(canvas, tuple(_fx(c)), int(r * (1 << SHIFT)), ink, max(1, int(width * 0.6)), cv2.LINE_AA, SHIFT)
    if layer is not None and design.attributes.get("pattern", "solid") != "solid" and rng.random() < 0.4:
        _sketch_pattern(canvas, design, layer, S, rng, ink, width)
    return canvas


def _sketch_pattern(canvas, design, layer, S, rng, ink, width):
    """Some people draw the pattern: a few stripes, a grid, dots or doodles inside the garment."""
    region = layer.full(cv2.erode(layer.patterned.astype(np.uint8), np.ones((5, 5), np.uint8))) > 0
    ys, xs = np.nonzero(region)
    if len(xs) < 50:
        return
    pat = np.full_like(canvas, 255)
    kind = design.attributes["pattern"]
    cx, cy = xs.mean(), ys.mean()
    span = float(max(np.ptp(xs), np.ptp(ys))) * 0.75 + 2
    step = max(8.0, span * rng.uniform(0.13, 0.22))
    if kind in ("stripe", "check"):
        a = math.radians(layer.pattern_angle)
        along, across = np.array([math.cos(a), math.sin(a)]), np.array([-math.sin(a), math.cos(a)])
        dirs = [(along, across)] + ([(across, along)] if kind == "check" else [])
        for d, n in dirs:    # lines along the bands, spaced across them
            for o in np.arange(-span, span, step):
                c = np.array([cx, cy]) + n * o
                stroke(pat, [c - d * span, c + d * span], False, width * 0.6, ink, S, rng, gaps=0.2, pieces=(1, 1))
    else:
        for _ in range(int(rng.integers(6, 16))):
            i = rng.integers(len(xs))
            c = (xs[i], ys[i])
            if kind == "dot":
                cv2.circle(pat, (int(c[0]), int(c[1])), int(step * 0.12) + 1, ink,
                           max(1, int(width * 0.6)), cv2.LINE_AA)
            else:
                pts = [(c[0] + step * 0.3 * math.cos(t), c[1] + step * 0.3 * math.sin(t))
                       for t in np.linspace(0, 2 * math.pi, 7)]
                stroke(pat, pts, False, width * 0.6, ink, S, rng, gaps=0.1, pieces=(1, 1))
    canvas[region] = np.minimum(canvas[region], pat[region])


def draw_hints(layer: Layer, rng, S: int) -> np.ndarray:
    """uint8 HxWx4 RGBA: 3-10 dots or short strokes per colour region, transparent elsewhere."""
    h, w = layer.alpha.shape                      # drawn on the garment's crop, then pasted
    out = np.zeros((h, w, 4), np.uint8)
    total = max(1, int((layer.alpha > 0.5).sum()))
    k3 = np.ones((3, 3), np.uint8)
    for mask, rgb, _name in layer.regions:
        area = int(mask.sum())
        if area < max(40, 0.01 * total):
            continue
        er = cv2.erode(mask.astype(np.uint8), k3, iterations=2 if area > 2000 else 1)
        ys, xs = np.nonzero(er if er.any() else mask)
        n = int(rng.integers(3, 11))
        col = tuple(int(v) for v in np.clip(np.asarray(rgb) + rng.normal(0, 4, 3), 0, 255)) + (255,)
        for i in rng.choice(len(xs), size=min(n, len(xs)), replace=False):
            x, y = int(xs[i]), int(ys[i])
            if rng.random() < 0.6:
                cv2.circle(out, (x, y), max(1, int(S / 384 * rng.uniform(2.5, 5))), col, -1)
            else:
                ang = rng.uniform(0, 2 * math.pi)
                ln = S / 384 * rng.uniform(8, 24)
                x2, y2 = int(x + ln * math.cos(ang)), int(y + ln * math.sin(ang))
                # shorten until the end stays inside the region
                for _ in range(4):
                    if 0 <= x2 < w and 0 <= y2 < h and mask[y2, x2]:
                        break
                    x2, y2 = (x + x2) // 2, (y + y2) // 2
                cv2.line(out, (x, y), (x2, y2), col, max(2, int(S / 384 * rng.uniform(2.5, 4.5))))
    out[layer.alpha < 0.5] = 0
    return layer.full(out)
