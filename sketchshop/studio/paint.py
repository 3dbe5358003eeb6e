"""Turning a placed design into pixels: colours, pattern textures, shading, backgrounds.

Everything is vectorised numpy/OpenCV on float32 maps so a 384 px product takes tens of
milliseconds. The main colour is jittered around a vocabulary prototype and named back with
`vocab.name_colour`, so the label always matches what is painted.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from .. import vocab
from .geometry import Design

SHIFT = 4                       # fixed-point bits for sub-pixel polygon drawing
_LIGHT = ("white", "beige", "yellow", "pink", "gray")
_DARK = ("black", "navy", "red", "blue", "green", "brown", "purple")


def _fx(pts) -> np.ndarray:
    return np.round(np.asarray(pts) * (1 << SHIFT)).astype(np.int32)


@functools.lru_cache(maxsize=4)
def _noise_tile(n: int = 1024) -> np.ndarray:
    """A fixed tile of unit Gaussian noise; products take random windows of it (fast, deterministic)."""
    return np.random.default_rng(20240601).standard_normal((n, n), dtype=np.float32)


def noise(h, w, rng) -> np.ndarray:
    tile = _noise_tile()
    if h > tile.shape[0] or w > tile.shape[1]:
        tile = np.pad(tile, ((0, max(0, h - tile.shape[0])), (0, max(0, w - tile.shape[1]))), mode="wrap")
    y, x = int(rng.integers(0, tile.shape[0] - h + 1)), int(rng.integers(0, tile.shape[1] - w + 1))
    out = tile[y:y + h, x:x + w]
    return out.T if h == w and rng.random() < 0.5 else out


def _grid(h, w):
    return np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :]


def luminance(rgb) -> float:
    r, g, b = rgb
    return 0.299 * r + 0.587 * g + 0.114 * b


def pick_colour(name: str, rng, jitter: float = 9.0) -> np.ndarray:
    """An RGB shade of a vocabulary colour that `vocab.name_colour` names back as `name`."""
    protos = vocab.COLOUR_PROTOTYPES[name]
    neutral = name in ("white", "gray", "black")    # shift lightness, keep them neutral
    for _ in range(10):
        j = rng.normal(0, jitter) + rng.normal(0, 2, 3) if neutral else rng.normal(0, jitter, 3)
        c = np.clip(np.asarray(protos[rng.integers(len(protos))], float) + j, 0, 255)
        if vocab.name_colour(c) == name:
            return c
    return np.asarray(protos[0], float)


def _shade(name: str, rng) -> np.ndarray:
    """A prototype of a colour with a little jitter, unchecked (for soles, linings, backdrops)."""
    protos = vocab.COLOUR_PROTOTYPES[name]
    return np.clip(np.asarray(protos[rng.integers(len(protos))], float) + rng.normal(0, 5, 3), 0, 255)


def contrast_colour(name: str, rng, exclude=()) -> str:
    """A second colour for stripes, checks, dots and prints that reads against the main one."""
    light = luminance(vocab.COLOUR_RGB[name]) > 150
    pool = [c for c in (_DARK if light else _LIGHT) if c != name and c not in exclude]
    return str(rng.choice(pool))


@dataclass
class Palette:
    main: np.ndarray
    roles: dict                      # role -> RGB
    pattern: list                    # [(colour name, RGB)] secondary colours of the pattern
    angle: float = 0.0               # direction of stripes/checks in degrees (0 = horizontal bands)


def palette(design: Design, colour: str, rng) -> Palette:
    main = pick_colour(colour, rng)
    roles = {"main": main, "trim": main * rng.uniform(0.88, 0.97), "lining": main * 0.55 + 8}
    roles["inner"] = _shade(str(rng.choice(["white", "gray", "black", "beige"])), rng)
    if design.category == "shoes" and design.style == "sneaker" and rng.random() < 0.75:
        roles["sole"] = _shade("white", rng)
    else:
        roles["sole"] = _shade(str(rng.choice(["black", "brown", "beige"])), rng)
    roles["hardware"] = (np.full(3, rng.uniform(150, 200)) if rng.random() < 0.5
                         else main * rng.uniform(0.6, 0.8) + 20)
    if design.category == "hat" and design.style == "bucket":
        roles["inner"] = roles["trim"] * 0.8       # hat band
    pat = []
    p = design.attributes.get("pattern", "solid")
    if p != "solid":
        n2 = contrast_colour(colour, rng)
        pat.append((n2, pick_colour(n2, rng)))
        if p in ("print", "check") and rng.random() < 0.5:
            n3 = contrast_colour(colour, rng, exclude=(n2,))
            pat.append((n3, pick_colour(n3, rng)))
    return Palette(main, roles, pat)


# ---------------------------------------------------------------- patterns

def _smooth_noise(h, w, cells, rng) -> np.ndarray:
    """Low-frequency noise in [-1, 1]-ish: random grid upsampled with cubic interpolation."""
    g = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)


def _coords(h, w, angle, rng, warp):
    yy, xx = _grid(h, w)
    a = math.radians(angle)
    u = xx * math.cos(a) + yy * math.sin(a)
    v = -xx * math.sin(a) + yy * math.cos(a)
    if warp:
        u += _smooth_noise(h, w, 5, rng) * warp
        v += _smooth_noise(h, w, 5, rng) * warp
    return u, v


def _bands(t, period, duty):
    """Anti-aliased stripes of width duty*period along coordinate t."""
    d = np.abs((t / period) % 1.0 - 0.5) * period
    return np.clip(duty * period / 2 - d + 0.5, 0, 1)


def pattern_layers(design: Design, pal: Palette, h, w, rng, region_box, S) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(coverage map, RGB)] to lay over the main colour, in image coordinates."""
    kind = design.attributes.get("pattern", "solid")
    if kind == "solid" or not pal.pattern:
        return []
    x0, y0, x1, y1 = region_box
    gsz = max(x1 - x0, y1 - y0, 8)
    vertical = design.category in ("pants", "shirt", "skirt") and rng.random() < 0.6
    angle = (90.0 if vertical else 0.0) + rng.uniform(-4, 4)
    pal.angle = angle
    u, v = _coords(h, w, angle, rng, warp=rng.uniform(0.5, 2.5) * S / 384)
    out = []
    c2 = pal.pattern[0][1]
    if kind == "stripe":
        period = gsz * rng.uniform(0.04, 0.12)
        duty = rng.uniform(0.22, 0.42)
        out.append((_bands(v, period, duty), c2))
        if len(pal.pattern) > 1 or rng.random() < 0.25:
            c3 = pal.pattern[-1][1] if len(pal.pattern) > 1 else c2 * 0.6
            out.append((_bands(v + period * 0.5, period, duty * 0.25), c3))
    elif kind == "check":
        period = gsz * rng.uniform(0.06, 0.14)
        duty = rng.uniform(0.22, 0.38)
        out.append(((_bands(u, period, duty) + _bands(v, period, duty)) * 0.5, c2))
        if len(pal.pattern) > 1:
            c3 = pal.pattern[1][1]
            out.append((np.maximum(_bands(u + period / 2, period, 0.08), _bands(v + period / 2, period, 0.08)), c3))
    elif kind == "dot":
        period = gsz * rng.uniform(0.05, 0.11)
        rad = period * rng.uniform(0.14, 0.26)
        row = np.floor(v / period)
        uu = u + (row % 2) * period * 0.5
        du = (uu / period) % 1.0 - 0.5
        dv = (v / period) % 1.0 - 0.5
        d = np.sqrt(du * du + dv * dv) * period
        out.append((np.clip(rad - d + 0.5, 0, 1), c2))
    else:
        out += _print_layers(design, pal, h, w, rng, region_box)
    return out


def _print_layers(design, pal, h, w, rng, box):
    """Print: a chest graphic on tees, or an all-over floral/abstract motif elsewhere."""
    x0, y0, x1, y1 = box
    gsz = max(x1 - x0, y1 - y0)
    cols = [c for _, c in pal.pattern]
    maps = [np.zeros((h, w), np.uint8) for _ in cols]
    if design.category in ("t-shirt", "longsleeve") and rng.random() < 0.65:
        cx = (x0 + x1) / 2 + rng.uniform(-0.03, 0.03) * gsz
        cy = y0 + (y1 - y0) * rng.uniform(0.32, 0.42)
        gw = (x1 - x0) * rng.uniform(0.18, 0.3)
        shape = rng.integers(3)
        m = maps[0]
        if shape == 0:
            cv2.circle(m, (int(cx), int(cy - gw * 0.3)), int(gw * 0.5), 255, -1, cv2.LINE_AA)
        elif shape == 1:
            pts = np.array([(cx + gw * 0.6 * math.cos(t), cy - gw * 0.3 + gw * 0.6 * math.sin(t))
                            for t in np.linspace(-math.pi / 2, 1.5 * math.pi, 11)[:-1]])
            pts[1::2] = (pts[1::2] - [cx, cy - gw * 0.3]) * 0.45 + [cx, cy - gw * 0.3]
            cv2.fillPoly(m, [_fx(pts)], 255, cv2.LINE_AA, SHIFT)
        else:
            cv2.rectangle(m, (int(cx - gw * 0.6), int(cy - gw * 0.8)), (int(cx + gw * 0.6), int(cy + gw * 0.2)), 255, -1)
        tm = maps[-1]
        ty = cy + gw * 0.45
        for line in range(rng.integers(1, 3)):
            x = cx - gw * 0.8
            while x < cx + gw * 0.8:
                lw = gw * rng.uniform(0.08, 0.3)
                cv2.rectangle(tm, (int(x), int(ty)), (int(x + lw), int(ty + gw * 0.16)), 255, -1)
                x += lw + gw * 0.06
            ty += gw * 0.26
    else:
        step = gsz * rng.uniform(0.07, 0.12)
        kind = rng.integers(3)
        for yy in np.arange(y0 - step, y1 + step, step):
            for xx in np.arange(x0 - step, x1 + step, step):
                cx, cy = xx + rng.uniform(-0.4, 0.4) * step, yy + rng.uniform(-0.4, 0.4) * step
                m = maps[rng.integers(len(maps))]
                s = step * rng.uniform(0.15, 0.3)
                if kind == 0:     # flowers
                    for k in range(5):
                        t = 2 * math.pi * k / 5 + rng.uniform(0, 1)
                        cv2.ellipse(m, (int(cx + s * math.cos(t)), int(cy + s * math.sin(t))),
                                    (max(1, int(s * 0.7)), max(1, int(s * 0.45))), math.degrees(t), 0, 360, 255, -1,
                                    cv2.LINE_AA)
                elif kind == 1:   # leaves
                    cv2.ellipse(m, (int(cx), int(cy)), (max(1, int(s * 1.3)), max(1, int(s * 0.45))),
                                rng.uniform(0, 180), 0, 360, 255, -1, cv2.LINE_AA)
                else:             # abstract blobs and triangles
                    pts = np.array([(cx + s * 1.4 * math.cos(t), cy + s * 1.4 * math.sin(t))
                                    for t in rng.uniform(0, 2 * math.pi, 3)])
                    cv2.fillPoly(m, [_fx(pts)], 255, cv2.LINE_AA, SHIFT)
    return [(m.astype(np.float32) / 255, c) for m, c in zip(maps, cols)]


# ---------------------------------------------------------------- garment layer

@dataclass
class Layer:
    """A painted garment, cropped to its bounding box `box` = (x0, y0, x1, y1) in the frame."""
    rgb: np.ndarray          # float32 hxwx3, shaded garment colours (meaningful where alpha > 0)
    alpha: np.ndarray        # float32 hxw 0..1, anti-aliased coverage
    parts: np.ndarray        # uint8 hxw, 1 + index of the visible part (0 = none)
    instances: np.ndarray    # uint8 hxw, 1 + instance id (shoes: one per shoe)
    regions: list            # [(bool hxw mask, RGB, name)] flat colour regions, for the hints
    box: tuple[int, int, int, int]
    frame: tuple[int, int]   # (height, width) of the full frame
    patterned: np.ndarray | None = None   # bool hxw: where the pattern lies (main and trim parts)
    pattern_angle: float = 0.0

    def full(self, arr, fill=0):
        """`arr` (crop-sized) pasted into a frame-sized array."""
        h, w = self.frame
        out = np.full((h, w) + arr.shape[2:], fill, arr.dtype)
        x0, y0, x1, y1 = self.box
        out[y0:y1, x0:x1] = arr
        return out

    @property
    def mask(self) -> np.ndarray:
        """Frame-sized binary uint8 mask (255 = garment)."""
        return self.full(np.where(self.alpha >= 0.5, 255, 0).astype(np.uint8))


def _crop_box(design: Design, h, w, pad=4):
    pts = np.concatenate([p.pts for p in design.parts])
    x0, y0 = np.floor(pts.min(0)).astype(int) - pad
    x1, y1 = np.ceil(pts.max(0)).astype(int) + pad
    return max(0, x0), max(0, y0), min(w, x1), min(h, y1)


def paint_garment(design: Design, colour: str, h: int, w: int, rng, *, pal: Palette | None = None) -> Layer:
    """Paint a placed design: flat colours, pattern, folds, seams, edge shading, fabric grain."""
    S = max(h, w)
    pal = pal or palette(design, colour, rng)
    x0, y0, x1, y1 = _crop_box(design, h, w)
    ch, cw = max(1, y1 - y0), max(1, x1 - x0)
    off = np.array([x0, y0], float)
    local = Design(design.category, design.attributes, style=design.style, leather=design.leather)
    local.parts = [type(p)(p.pts - off, p.role, p.instance, 0, p.outline) for p in design.parts]
    local.details = [type(d)(d.pts - off, d.kind, d.closed, d.weight) for d in design.details]
    parts = np.zeros((ch, cw), np.uint8)
    inst = np.zeros((ch, cw), np.uint8)
    alpha = np.zeros((ch, cw), np.uint8)
    lut = np.zeros((len(local.parts) + 1, 3), np.float32)
    lut[0] = pal.main
    for k, p in enumerate(local.parts):
        q = [_fx(p.pts)]
        cv2.fillPoly(parts, q, k + 1, cv2.LINE_8, SHIFT)
        cv2.fillPoly(inst, q, p.instance + 1, cv2.LINE_8, SHIFT)
        cv2.fillPoly(alpha, q, 255, cv2.LINE_AA, SHIFT)
        lut[k + 1] = pal.roles[p.role]
    a = alpha.astype(np.float32) * (1 / 255)
    inside = alpha >= 128
    role_of = ["main"] + [p.role for p in local.parts]
    flat = lut[parts]
    patterned = np.array([r in ("main", "trim") for r in role_of])[parts] & (alpha > 0)
    layers = []
    if patterned.any():
        ys, xs = np.nonzero(patterned)
        layers = pattern_layers(local, pal, ch, cw, rng, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), S)
    cover = np.zeros((ch, cw), np.float32)
    for m, c in layers:
        m = m * patterned
        m3 = m[..., None]
        flat = flat + (np.asarray(c, np.float32) - flat) * m3
        cover = np.maximum(cover, m)
    regions = [(patterned & inside & (cover < 0.3), pal.main, colour)]
    for (name, c), (m, _) in zip(pal.pattern, layers):
        regions.append(((m > 0.7) & patterned & inside, c, name))
    for role in ("sole", "inner", "lining"):
        if role in role_of:
            idx = np.array([r == role for r in role_of])
            rm = idx[parts] & inside
            if rm.any():
                regions.append((rm, pal.roles[role], role))

    shade = _shading(local, a, ch, cw, S, rng)
    grain = noise(ch, cw, rng) * 2.2
    cat = local.category
    yy, xx = _grid(ch, cw)
    if cat in ("longsleeve", "hat") and rng.random() < 0.5:       # knit
        f = 2 * math.pi / max(3.0, S / 110)
        grain = grain + 6 * np.sin(xx * f) * np.cos(yy * f * 0.6)
    elif cat in ("pants", "shorts", "outerwear") and colour in ("blue", "navy", "black") and rng.random() < 0.6:
        grain = grain + 7 * np.sin((xx + yy) * (2 * math.pi / max(3.0, S / 120)))   # denim twill
    rgb = flat * shade[..., None] + (38 * (shade - 1) + grain)[..., None]
    return Layer(rgb, a, parts, inst, regions, (x0, y0, x0 + cw, y0 + ch), (h, w), patterned & inside, pal.angle)


def _shading(design: Design, a, h, w, S, rng) -> np.ndarray:
    """Multiplicative light: soft volume, folds (ridge + valley), seams, darker edges."""
    mask = (a > 0.5).astype(np.uint8)
    dt = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    yy, xx = _grid(h, w)
    la = rng.uniform(0, 2 * math.pi)
    grad = ((xx - w / 2) * (math.cos(la) / S)) + ((yy - h / 2) * (math.sin(la) / S))
    glossy = design.leather
    sh = (1.0 + 0.05 * _smooth_noise(h, w, 4, rng) + rng.uniform(0.02, 0.05) * _smooth_noise(h, w, 11, rng)
          + rng.uniform(0.06, 0.14) * grad
          - 0.12 * np.exp(dt * (-1 / (0.015 * S))) + 0.04 * (1 - np.exp(dt * (-1 / (0.08 * S)))))
    # folds: a bright crest next to a dark valley, blurred
    fold = np.zeros((h, w), np.float32)
    th = max(2, int(S * rng.uniform(0.008, 0.016)))
    n = int(rng.integers(3, 10)) if design.category not in ("shoes", "hat") else int(rng.integers(0, 3))
    for _ in range(n):
        p0 = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        d = rng.normal(0, 1, 2)
        d *= S * rng.uniform(0.08, 0.25) / (np.linalg.norm(d) + 1e-6)
        mid = p0 + d / 2 + rng.normal(0, S * 0.02, 2)
        line = np.stack([p0, mid, p0 + d])
        off = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-6) * th
        cv2.polylines(fold, [_fx(line)], False, 1.0, th, cv2.LINE_AA, SHIFT)
        cv2.polylines(fold, [_fx(line + off)], False, -1.0, th, cv2.LINE_AA, SHIFT)
    for dl in design.details:
        if dl.kind == "fold":
            cv2.polylines(fold, [_fx(dl.pts)], False, 0.8, 3, cv2.LINE_AA, SHIFT)
            cv2.polylines(fold, [_fx(dl.pts + [th, 0])], False, -0.8, 3, cv2.LINE_AA, SHIFT)
    sh += cv2.GaussianBlur(fold, (0, 0), S * 0.01) * (0.18 if glossy else 0.12)
    if glossy:   # a specular streak along the top of the main parts
        hl = np.zeros((h, w), np.float32)
        for p in design.parts[:3]:
            top = p.pts[p.pts[:, 1] < np.percentile(p.pts[:, 1], 35)]
            if len(top) > 2:
                cv2.polylines(hl, [_fx(top + [0, S * 0.03])], False, 1.0, max(2, int(S * 0.012)), cv2.LINE_AA, SHIFT)
        sh += 0.25 * cv2.GaussianBlur(hl, (0, 0), S * 0.008) * mask
    # seams and part boundaries: thin dark lines
    seam = np.zeros((h, w), np.float32)
    lw = max(1, int(round(S / 300)))
    for p in design.parts[1:]:
        cv2.polylines(seam, [_fx(p.pts)], True, 1.0, lw, cv2.LINE_AA, SHIFT)
    for dl in design.details:
        if dl.kind == "fold":
            continue
        t = max(1, int(round(lw * dl.weight * (2.2 if dl.kind in ("zip", "lace") else 1))))
        if dl.kind == "stitch":
            pts = _fx(_resample(dl.pts, S / 90))
            cv2.polylines(seam, [pts[i:i + 2] for i in range(0, len(pts) - 1, 2)], False, 0.7, t, cv2.LINE_AA, SHIFT)
        else:
            cv2.polylines(seam, [_fx(dl.pts)], dl.closed, 1.0, t, cv2.LINE_AA, SHIFT)
    sh -= 0.32 * cv2.GaussianBlur(seam, (0, 0), 0.7)
    return sh


def _resample(pts, step) -> np.ndarray:
    pts = np.asarray(pts, float)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0], np.cumsum(seg)])
    if s[-1] <= 0:
        return pts
    t = np.linspace(0, s[-1], max(2, int(s[-1] / step) + 1))
    return np.stack([np.interp(t, s, pts[:, 0]), np.interp(t, s, pts[:, 1])], 1)


# ---------------------------------------------------------------- backgrounds

def _lowres(h, w, k=8):
    return max(2, h // k), max(2, w // k)


def studio_background(h, w, garment_rgb, rng) -> np.ndarray:
    """A clean light backdrop with a gentle gradient; darker when the garment is very light."""
    light_garment = luminance(garment_rgb) > 185
    v = rng.uniform(196, 222) if light_garment else rng.uniform(226, 248)
    tint = rng.normal(0, 3.5, 3).astype(np.float32)
    sh, sw = _lowres(h, w)
    yy, xx = _grid(sh, sw)
    g = (rng.uniform(-0.05, 0.05) * (yy / sh - 0.5) + rng.uniform(-0.03, 0.03) * (xx / sw - 0.5)
         - 0.07 * (((xx / sw - 0.5) ** 2 + (yy / sh - 0.5) ** 2)))
    small = (v * (1 + g))[..., None] + tint
    bg = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return bg + (noise(h, w, rng) * 1.2)[..., None]


def drop_shadow(bg, layer: Layer, rng, strength=(0.22, 0.4)) -> np.ndarray:
    """Darken the backdrop under a soft, offset copy of the garment (computed at 1/4 size)."""
    h, w = bg.shape[:2]
    S = max(h, w)
    sh_, sw_ = _lowres(h, w, 4)
    x0, y0, x1, y1 = layer.box
    dx, dy = rng.uniform(-0.01, 0.02) * S, rng.uniform(0.008, 0.025) * S
    a = cv2.resize(layer.alpha, (max(1, (x1 - x0) // 4), max(1, (y1 - y0) // 4)), interpolation=cv2.INTER_AREA)
    M = np.float32([[1, 0, (x0 + dx) / 4], [0, 1, (y0 + dy) / 4]])
    small = cv2.warpAffine(a, M, (sw_, sh_))
    small = cv2.GaussianBlur(small, (0, 0), S / 4 * rng.uniform(0.012, 0.03))
    sh = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return bg * (1 - rng.uniform(*strength) * sh)[..., None]


def compose(bg, layer: Layer) -> np.ndarray:
    """Alpha-blend the garment into `bg` (in place) at its box."""
    x0, y0, x1, y1 = layer.box
    roi = bg[y0:y1, x0:x1]
    roi += (layer.rgb - roi) * layer.alpha[..., None]
    return bg


def light(img, rng) -> np.ndarray:
    """Global exposure and white-balance variation, then 8-bit."""
    t = rng.uniform(-0.025, 0.025)
    gain = rng.uniform(0.95, 1.05) * np.array([1 + t, 1.0, 1 - t], np.float32)
    img *= gain
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8)


def busy_background(h, w, rng) -> np.ndarray:
    """Floors, bedsheets, carpets and tiles: what real phone photos of garments lie on."""
    kind = rng.integers(5)
    yy, xx = _grid(h, w)
    S = max(h, w)
    if kind == 0:      # wooden floor
        base = np.array([rng.uniform(150, 200), rng.uniform(90, 125), rng.uniform(45, 75)], np.float32)
        pw = S * rng.uniform(0.08, 0.16)
        plank = np.floor(xx / pw)
        tone = (np.sin(plank * 12.9898) * 43758.5453) % 1.0
        grain = np.sin((yy + _smooth_noise(h, w, 6, rng) * S * 0.03) * 2 * math.pi / (S * rng.uniform(0.04, 0.08))
                       + plank * 3)
        v = 0.8 + 0.25 * tone + 0.035 * grain + 0.03 * noise(h, w, rng)
        v -= 0.35 * (np.abs((xx / pw) % 1.0 - 0.0) < 0.02)
        img = base * v[..., None]
    elif kind == 1:    # printed bedsheet
        c1 = _shade(str(rng.choice(vocab.COLOURS)), rng)
        c2 = _shade(str(rng.choice(vocab.COLOURS)), rng)
        img = np.broadcast_to(c1, (h, w, 3)).astype(np.float32).copy()
        m = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(20, 60))):
            cv2.ellipse(m, (int(rng.uniform(0, w)), int(rng.uniform(0, h))),
                        (int(S * rng.uniform(0.01, 0.06)), int(S * rng.uniform(0.01, 0.04))),
                        rng.uniform(0, 180), 0, 360, 255, -1, cv2.LINE_AA)
        mm = (m.astype(np.float32) / 255)[..., None]
        img = img * (1 - mm) + c2 * mm
        img *= (1 + 0.08 * _smooth_noise(h, w, 7, rng))[..., None]
    elif kind == 2:    # carpet: noisy ornament
        c1 = _shade(str(rng.choice(["red", "brown", "beige", "gray", "green", "navy"])), rng)
        c2 = _shade(str(rng.choice(["beige", "yellow", "white", "brown"])), rng)
        p = S * rng.uniform(0.06, 0.12)
        orn = (np.sin(xx * 2 * math.pi / p) * np.sin(yy * 2 * math.pi / p) > 0.5).astype(np.float32)
        orn = cv2.GaussianBlur(orn, (0, 0), 1.5)[..., None]
        img = c1 * (1 - orn) + c2 * orn
        img = img + (noise(h, w, rng) * 10)[..., None]
    elif kind == 3:    # tiles
        c1 = _shade(str(rng.choice(["beige", "gray", "white", "brown"])), rng)
        p = S * rng.uniform(0.15, 0.3)
        grout = ((xx % p) < 3) | ((yy % p) < 3)
        img = c1 * (1 + 0.08 * _smooth_noise(h, w, 10, rng))[..., None]
        img = img * np.where(grout, 0.7, 1.0).astype(np.float32)[..., None]
    else:              # coloured fabric / wall
        c1 = _shade(str(rng.choice(vocab.COLOURS)), rng)
        img = c1 * (1 + 0.1 * _smooth_noise(h, w, 5, rng) + 0.03 * noise(h, w, rng))[..., None]
    img = img.astype(np.float32)
    img *= (1 + 0.15 * (yy / h - 0.5) * rng.uniform(-1, 1))[..., None]
    return img
