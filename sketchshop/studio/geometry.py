"""Garment silhouettes as layered polygons, parameterised by category and attributes.

A `Design` is drawn in garment units (body width about 1, y down). Each `Part` is one filled
polygon in z-order (later parts cover earlier ones), with a colour role; `Detail` lines are
seams, hems, zips and folds that the photo shades and the sketch may draw. Every category
gets its own builder so that the attributes really change the shape: long sleeves reach the
hem, a knee-length skirt reaches past the hips, a hood sits behind the neck.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# Colour roles. "main" and "trim" carry the pattern; the others are solid.
ROLES = ("main", "trim", "lining", "inner", "sole", "hardware")


@dataclass
class Part:
    pts: np.ndarray                 # (N, 2) float, closed polygon
    role: str = "main"
    instance: int = 0               # shoes: one instance per shoe
    smooth: int = 2                 # Chaikin iterations (0 keeps corners)
    outline: bool = True            # drawn in the sketch


@dataclass
class Detail:
    pts: np.ndarray                 # (N, 2) polyline
    kind: str = "seam"              # seam | hem | zip | fold | lace | stitch
    closed: bool = False
    weight: float = 1.0             # relative stroke width


@dataclass
class Design:
    category: str
    attributes: dict
    parts: list[Part] = field(default_factory=list)
    details: list[Detail] = field(default_factory=list)
    style: str = ""                 # sub-style (cap, tote, sneaker...) for titles
    leather: bool = False           # glossy shading (shoes, some bags)

    def add(self, pts, role="main", **kw) -> Part:
        p = Part(np.asarray(pts, dtype=np.float64), role, **kw)
        self.parts.append(p)
        return p

    def line(self, pts, kind="seam", **kw) -> Detail:
        d = Detail(np.asarray(pts, dtype=np.float64), kind, **kw)
        self.details.append(d)
        return d

    def all_points(self) -> np.ndarray:
        return np.concatenate([p.pts for p in self.parts] + [d.pts for d in self.details])


# ---------------------------------------------------------------- curve helpers

def ellipse(cx, cy, rx, ry, a0=0.0, a1=360.0, n=32) -> np.ndarray:
    t = np.radians(np.linspace(a0, a1, n))
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)


def bezier(p0, p1, p2, n=12) -> np.ndarray:
    """Quadratic Bezier from p0 to p2 pulled towards p1."""
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2 = (np.asarray(p, float) for p in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def mirror(pts) -> np.ndarray:
    """Mirror left-half points to the right half, reversed so the outline stays ordered."""
    pts = np.asarray(pts, float)[::-1].copy()
    pts[:, 0] *= -1
    return pts


def band(path, width) -> np.ndarray:
    """A strap or handle: the polyline `path` thickened to a closed polygon."""
    path = np.asarray(path, float)
    d = np.gradient(path, axis=0)
    n = np.stack([-d[:, 1], d[:, 0]], 1)
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-9
    return np.concatenate([path + n * width / 2, (path - n * width / 2)[::-1]])


def densify(pts: np.ndarray, at=(0.2, 0.8)) -> np.ndarray:
    """Add points near both ends of every edge so smoothing rounds corners only locally."""
    nxt = np.roll(pts, -1, axis=0)
    seg = [pts[:, None, :]] + [(pts + (nxt - pts) * t)[:, None, :] for t in at]
    return np.concatenate(seg, 1).reshape(-1, 2)


def chaikin(pts: np.ndarray, n: int, closed: bool = True) -> np.ndarray:
    """Corner cutting: soft fabric edges instead of CAD corners."""
    for _ in range(n):
        a = pts
        b = np.roll(pts, -1, axis=0) if closed else pts[1:]
        if not closed:
            a = pts[:-1]
        q = 0.75 * a + 0.25 * b
        r = 0.25 * a + 0.75 * b
        out = np.empty((2 * len(a), 2))
        out[0::2], out[1::2] = q, r
        pts = out if closed else np.concatenate([pts[:1], out, pts[-1:]])
    return pts


def _u(r, a, b):
    return float(r.uniform(a, b))


# ---------------------------------------------------------------- tops, outerwear, dresses

def _neck_curves(nw, neck, r):
    """Back neck (shallow, body edge) and front neckline (deep), both left to right."""
    back = bezier((-nw / 2, 0), (0, _u(r, 0.03, 0.06)), (nw / 2, 0), 10)
    if neck == "v":
        depth = _u(r, 0.22, 0.34)
        front = np.array([(-nw / 2, 0), (-nw / 4, depth * 0.55), (0, depth), (nw / 4, depth * 0.55), (nw / 2, 0)])
    else:
        depth = _u(r, 0.1, 0.16)
        front = ellipse(0, 0, nw / 2, depth, 180, 0, 14)
    return back, front, depth


def _sleeve(side, shoulder, armpit, length, theta, cuff_w, r):
    """One sleeve as a quad from the armhole to the cuff; theta is the angle from vertical."""
    th = math.radians(theta)
    d = np.array([side * math.sin(th), math.cos(th)])          # outwards and down
    n = np.array([-side * math.cos(th), math.sin(th)])         # towards the body
    s, a = np.asarray(shoulder, float), np.asarray(armpit, float)
    top_end = s + d * length
    bot_end = top_end + n * cuff_w
    inset = np.array([-side * 0.06, 0.0])
    pts = np.array([s + inset, top_end, bot_end, a + inset])
    return pts, top_end, bot_end, d


def build_top(cat: str, attrs: dict, r) -> Design:
    """t-shirt, longsleeve, shirt, outerwear and dress share one parameterised torso."""
    D = Design(cat, attrs)
    sleeve, neck = attrs.get("sleeve", "short"), attrs.get("neckline", "round")
    length = attrs.get("length")
    dress = cat == "dress"
    W = _u(r, 0.8, 0.9) if dress else _u(r, 0.95, 1.08) if cat == "outerwear" else _u(r, 0.9, 1.0)
    if cat == "outerwear":
        L = {"short": _u(r, 1.05, 1.25), "knee": _u(r, 1.7, 1.95), "long": _u(r, 2.2, 2.5)}[length or "short"]
    elif dress:
        L = {"short": _u(r, 1.45, 1.65), "knee": _u(r, 1.95, 2.2), "long": _u(r, 2.6, 2.95)}[length or "knee"]
    else:
        L = _u(r, 1.1, 1.3) if cat != "shirt" else _u(r, 1.22, 1.4)
    nw = W * (_u(r, 0.4, 0.5) if sleeve == "none" else _u(r, 0.32, 0.38))
    xs, sd = W / 2, _u(r, 0.05, 0.09)
    ah = _u(r, 0.36, 0.44) * (0.9 if dress else 1.0)
    xa = xs - _u(r, 0.0, 0.03)
    if dress:
        wy = ah + _u(r, 0.22, 0.32)
        flare = {"short": _u(r, 0.5, 0.7), "knee": _u(r, 0.55, 0.85), "long": _u(r, 0.6, 0.95)}[length or "knee"]
        left = [(-xa, ah), (-xa * _u(r, 0.8, 0.88), wy), (-flare, L)]
    else:
        hw = xa * _u(r, 0.92, 1.02)
        left = [(-xa, ah), (-(xa + hw) / 2, (ah + L) / 2), (-hw, L)]
    hem_drop = _u(r, 0.06, 0.12) if cat == "shirt" else _u(r, 0.0, 0.025)
    if sleeve == "none":
        strap = W * _u(r, 0.07, 0.12) if cat != "outerwear" else W * _u(r, 0.1, 0.14)
        arm = bezier((-nw / 2 - strap, 0.0), (-xa * 0.8, ah * 0.75), (-xa, ah), 8)
        left_side = np.concatenate([[(-nw / 2, 0)], arm, left[1:]])
        shoulder_pt = (-nw / 2 - strap, 0.0)
    else:
        left_side = np.array([(-nw / 2, 0), (-xs, sd)] + left)
        shoulder_pt = (-xs, sd)
    x_hem = left_side[-1][0]
    hem = bezier((x_hem, L), (0, L + hem_drop * 2), (-x_hem, L), 14) if hem_drop > 0.01 else \
        np.array([(x_hem, L), (-x_hem, L)])
    back, front, ndepth = _neck_curves(nw, "round" if neck in ("collar", "hood") else neck, r)
    body = np.concatenate([left_side, hem[1:-1], mirror(left_side), back[::-1][1:-1]])

    # hood lies flat behind the shoulders
    if neck == "hood":
        hw_, top = nw * _u(r, 0.75, 0.9), -_u(r, 0.3, 0.4)
        D.add(bezier((-hw_ * 1.1, 0.1), (-hw_ * 1.25, top * 1.2), (0, top), 12).tolist()
              + bezier((0, top), (hw_ * 1.25, top * 1.2), (hw_ * 1.1, 0.1), 12).tolist())
    # sleeves, under the body
    cuffs = []
    if sleeve != "none":
        if sleeve == "long":
            sl = min(L, 1.3) * _u(r, 0.82, 0.98) if cat != "dress" else _u(r, 0.9, 1.05)
            theta, cw = _u(r, 18, 34), W * _u(r, 0.15, 0.2)
        else:
            sl, theta, cw = _u(r, 0.2, 0.3), _u(r, 48, 64), W * _u(r, 0.22, 0.3)
        for side in (-1, 1):
            pts, te, be, d = _sleeve(side, (side * xs, sd), (side * xa, ah), sl, theta, cw, r)
            D.add(pts)
            cuffs.append((te, be, d))
    D.add(body)
    for te, be, d in cuffs:  # cuff hem lines / ribbed cuffs
        k = 0.1 if sleeve == "long" else 0.05
        if sleeve == "long" and cat in ("shirt", "longsleeve", "outerwear") and r.random() < 0.6:
            D.add([te - d * k, te, be, be - d * k], "trim", smooth=0)
        else:
            D.line([te - d * k, be - d * k], "hem")
    # hem band
    if cat in ("longsleeve", "outerwear") and r.random() < 0.5:
        hb = _u(r, 0.06, 0.1)
        D.add([(x_hem * 0.99, L - hb), (-x_hem * 0.99, L - hb), (-x_hem, L), (x_hem, L)], "trim", smooth=0)
    elif hem_drop <= 0.01:
        D.line([(x_hem * 0.97, L - 0.05), (-x_hem * 0.97, L - 0.05)], "hem")
    if dress:
        D.line(bezier((-xa * 0.86, wy), (0, wy + 0.03), (xa * 0.86, wy)), "seam")
        for _ in range(r.integers(2, 5)):
            x0 = _u(r, -0.25, 0.25)
            D.line([(x0, wy + 0.1), (x0 * _u(r, 1.4, 2.2), L - 0.1)], "fold")
    # the neck opening: the inside of the back
    if neck not in ("collar",):
        D.add(np.concatenate([back, front[::-1][1:-1]]), "lining", smooth=1)
        if neck == "round":
            D.line(front * [0.82, 0.78] + [0, ndepth * 0.2], "seam")
        elif neck == "v":
            D.line(front * [0.85, 0.88], "seam")
    # fronts
    if cat == "shirt" or (neck == "collar" and cat in ("dress", "longsleeve")):
        _collar(D, nw, r, lapel=False)
        bottom = L - 0.08 if cat == "shirt" else min(L * 0.4, 0.7)
        D.line([(0.03, 0.12), (0.03, bottom + 0.05)], "seam")
        D.line([(-0.03, 0.12), (-0.03, bottom + 0.05)], "stitch")
        for y in np.arange(0.18, bottom, _u(r, 0.13, 0.17)):
            D.add(ellipse(0, y, 0.018, 0.018, 0, 360, 10), "hardware", smooth=0)
        if cat == "shirt" and r.random() < 0.6:
            x0 = -xa * _u(r, 0.45, 0.6)
            D.line([(x0 - 0.11, 0.32), (x0 - 0.11, 0.48), (x0 + 0.09, 0.48), (x0 + 0.09, 0.32)], "seam")
    elif cat == "outerwear":
        _outer_front(D, nw, L, xa, neck, ndepth, r)
    elif neck == "hood" and cat == "longsleeve":  # hoodie: kangaroo pocket and drawstrings
        py = L * _u(r, 0.58, 0.66)
        D.add([(-xa * 0.55, py), (xa * 0.55, py), (xa * 0.75, L - 0.1), (-xa * 0.75, L - 0.1)], "trim", smooth=1)
        for s in (-1, 1):
            D.line([(s * nw * 0.25, ndepth * 0.6), (s * nw * 0.27, ndepth + _u(r, 0.18, 0.28))], "lace", weight=1.3)
    D.style = {"hood": "hooded", "collar": "collared"}.get(neck, "")
    return D


def _collar(D: Design, nw, r, lapel: bool):
    tip_y = _u(r, 0.16, 0.22)
    for s in (-1, 1):
        D.add([(s * nw / 2 * 1.08, -0.04), (s * nw / 2 * 1.15, 0.05), (s * _u(r, 0.1, 0.14), tip_y),
               (s * 0.01, 0.1), (s * 0.02, 0.0)], "trim", smooth=1)
    D.add(bezier((-nw / 2 * 1.05, -0.05), (0, 0.0), (nw / 2 * 1.05, -0.05), 8).tolist()
          + bezier((nw / 2 * 0.9, 0.0), (0, 0.06), (-nw / 2 * 0.9, 0.0), 8).tolist(), "trim", smooth=1)


def _outer_front(D: Design, nw, L, xa, neck, ndepth, r):
    style = r.choice(["zip", "buttons", "open"], p=[0.4, 0.35, 0.25])
    top = ndepth if neck != "collar" else 0.05
    if style == "open":
        gap = _u(r, 0.06, 0.12)
        D.add([(-0.05, top), (-gap, L), (gap, L), (0.05, top)], "inner", smooth=1)
        D.style = "open"
    elif style == "zip":
        D.line([(0, top), (0, L)], "zip", weight=1.6)
        D.add([(-0.02, top + 0.02), (0.02, top + 0.02), (0.02, top + 0.1), (-0.02, top + 0.1)], "hardware", smooth=0)
    else:
        D.line([(0.04, top), (0.04, L)], "seam")
        for y in np.arange(top + 0.15, L - 0.1, _u(r, 0.18, 0.26)):
            D.add(ellipse(-0.0, y, 0.03, 0.03, 0, 360, 12), "hardware", smooth=0)
    if neck == "collar":
        for s in (-1, 1):   # notch lapels
            ly = min(_u(r, 0.35, 0.5), L * 0.4)
            D.add([(s * nw / 2 * 1.1, -0.04), (s * nw / 2 * 1.2, 0.06), (s * 0.24, 0.14), (s * 0.2, 0.2),
                   (s * 0.05, ly), (s * 0.02, 0.1), (s * 0.02, 0.0)], "trim", smooth=1)
    for s in (-1, 1):
        if r.random() < 0.7:
            py = min(L * 0.7, 0.9)
            D.line([(s * xa * 0.35, py), (s * xa * 0.8, py)], "seam", weight=1.2)


# ---------------------------------------------------------------- bottoms

def build_skirt(attrs: dict, r) -> Design:
    D = Design("skirt", attrs)
    ww = _u(r, 0.34, 0.4)
    L = {"short": _u(r, 0.75, 0.95), "knee": _u(r, 1.2, 1.45), "long": _u(r, 1.9, 2.3)}[attrs.get("length", "knee")]
    style = r.choice(["a-line", "pencil", "pleated"], p=[0.45, 0.3, 0.25])
    hw = ww * (_u(r, 1.05, 1.18) if style == "pencil" else _u(r, 1.45, 2.0))
    bh = _u(r, 0.06, 0.1)
    hem = bezier((-hw, L), (0, L + _u(r, 0.02, 0.1) * (style != "pencil")), (hw, L), 14)
    D.add(np.concatenate([[(-ww, bh * 0.5), (-ww * _u(r, 1.05, 1.12), 0.3)], hem, [(ww * 1.08, 0.3), (ww, bh * 0.5)]]))
    D.add([(-ww, 0), (ww, 0), (ww * 1.01, bh), (-ww * 1.01, bh)], "trim", smooth=0)
    if style == "pleated":
        for x in np.linspace(-0.8, 0.8, int(r.integers(5, 9))):
            D.line([(x * ww, bh), (x * hw, L)], "fold" if r.random() < 0.3 else "seam")
    elif style == "pencil":
        if r.random() < 0.5:
            D.line([(hw * 0.4, L), (hw * 0.4, L - 0.2)], "seam")
    else:
        for _ in range(r.integers(2, 4)):
            x = _u(r, -0.6, 0.6)
            D.line([(x * ww, bh + 0.15), (x * hw * 1.1, L - 0.05)], "fold")
    D.line([(-hw * 0.97, L - 0.04), (hw * 0.97, L - 0.04)], "hem")
    D.style = style
    return D


def build_legwear(cat: str, attrs: dict, r) -> Design:
    """Pants and shorts: waistband, two legs meeting at the crotch, fly and pockets."""
    D = Design(cat, attrs)
    ww = _u(r, 0.45, 0.52)
    length = attrs.get("length", "long" if cat == "pants" else "short")
    L = {"long": _u(r, 2.6, 3.0), "knee": _u(r, 1.55, 1.85), "short": _u(r, 0.8, 1.0)}[length]
    cy = _u(r, 0.55, 0.68)
    lw = (_u(r, 0.7, 0.88) if length == "long" else _u(r, 0.85, 1.05)) * ww
    splay = _u(r, 0.0, 0.12) + (0.12 if length == "short" else 0.0)
    xo = ww * _u(r, 1.0, 1.08) + splay
    bh = _u(r, 0.07, 0.1)
    left = [(-ww, 0), (-ww * _u(r, 1.04, 1.1), cy * 0.7), (-xo, L), (-xo + lw, L + 0.01)]
    body = np.array(left + [(0, cy)] + mirror(left).tolist())
    D.add(body, smooth=1)
    D.add([(-ww, 0), (ww, 0), (ww * 1.01, bh), (-ww * 1.01, bh)], "trim", smooth=0)
    D.line(bezier((0.06, bh), (0.07, cy * 0.75), (0.0, cy * 0.9), 8), "stitch")
    D.add(ellipse(0.0, bh / 2, 0.022, 0.022, 0, 360, 10), "hardware", smooth=0)
    for s in (-1, 1):
        D.line(bezier((s * ww * 0.5, bh), (s * ww * 0.55, 0.28), (s * ww * 1.03, 0.3), 8), "seam")
        D.line([(s * (xo - lw * 0.97), L - 0.05), (s * xo * 0.99, L - 0.05)], "hem")
        if length != "short" and r.random() < 0.6:
            D.line([(s * ww * 0.55, cy), (s * (xo - lw / 2), L - 0.1)], "fold")
        for x in (0.3, 0.85):
            D.line([(s * ww * x, -0.01), (s * ww * x, bh + 0.02)], "seam", weight=0.8)
    if length == "short" and r.random() < 0.4:  # turn-ups
        for s in (-1, 1):
            D.add([(s * (xo - lw), L - 0.1), (s * xo, L - 0.1), (s * xo, L + 0.01), (s * (xo - lw), L + 0.02)],
                  "trim", smooth=0)
    D.style = {"long": "", "knee": "cropped", "short": ""}[length] if cat == "pants" else \
        {"knee": "bermuda"}.get(length, "")
    return D


# ---------------------------------------------------------------- accessories

def build_hat(attrs: dict, r) -> Design:
    D = Design("hat", attrs)
    style = r.choice(["cap", "beanie", "bucket"], p=[0.45, 0.3, 0.25])
    if style == "cap":
        rx, ry = _u(r, 0.48, 0.55), _u(r, 0.4, 0.48)
        D.add(ellipse(0, 0, rx, ry, 180, 360, 24).tolist() + [(rx, 0.04), (-rx, 0.04)])
        bl = _u(r, 0.45, 0.65)
        D.add(bezier((rx * 0.3, 0.0), (rx + bl * 0.5, -0.02), (rx + bl, 0.1), 10).tolist()
              + bezier((rx + bl * 0.95, 0.16), (rx + bl * 0.4, 0.14), (rx * 0.2, 0.08), 10).tolist(), "trim")
        D.add(ellipse(0, -ry, 0.04, 0.025, 0, 360, 10), "trim", smooth=0)
        for x in (-0.45, 0.4):
            D.line(bezier((0, -ry), (x * rx * 1.2, -ry * 0.7), (x * rx * 1.6, 0.0), 8), "seam")
        D.line([(-rx * 0.95, -0.03), (rx * 0.3, -0.03)], "stitch")
    elif style == "beanie":
        rx, ry = _u(r, 0.45, 0.52), _u(r, 0.55, 0.7)
        D.add(ellipse(0, 0, rx, ry, 180, 360, 24).tolist() + [(rx, 0.05), (-rx, 0.05)])
        cb = _u(r, 0.18, 0.26)
        D.add([(-rx * 1.04, -0.02), (rx * 1.04, -0.02), (rx * 1.04, cb), (-rx * 1.04, cb)], "trim", smooth=1)
        for x in np.linspace(-0.9, 0.9, 9):
            D.line([(x * rx, 0.02), (x * rx, cb - 0.03)], "fold", weight=0.7)
        if r.random() < 0.45:
            D.add(ellipse(0, -ry - 0.08, 0.13, 0.11, 0, 360, 16), "trim")
    else:
        D.add(ellipse(0, 0.05, _u(r, 0.7, 0.85), _u(r, 0.12, 0.2), 0, 360, 32), "trim")
        D.add(bezier((-0.42, 0.06), (-0.46, -0.6), (0, -0.58), 10).tolist()
              + bezier((0, -0.58), (0.46, -0.6), (0.42, 0.06), 10).tolist())
        D.add([(-0.43, -0.1), (0.43, -0.1), (0.43, 0.04), (-0.43, 0.04)], "inner", smooth=1)
        D.line(bezier((-0.2, -0.55), (0, -0.42), (0.2, -0.55), 8), "fold")
    D.style = style
    return D


def _shoe(D: Design, inst: int, dx: float, dy: float, k: float, style: str, r):
    """One shoe in side view, toe to the right: sole, upper, opening, laces."""
    def T(pts):
        return (np.asarray(pts, float) * k + [dx, dy]).tolist()
    sole_h = {"sneaker": 0.1, "boot": 0.09, "loafer": 0.06}[style]
    if style == "boot":
        upper = [(0.04, 0.42), (0.02, -0.1), (0.06, -0.42), (0.34, -0.42), (0.37, -0.05), (0.55, 0.1),
                 (0.85, 0.19), (1.0, 0.3), (1.0, 0.42)]
        opening = ellipse(0.2, -0.42, 0.14, 0.04, 0, 360, 12)
    elif style == "loafer":
        upper = [(0.04, 0.42), (0.01, 0.12), (0.1, 0.04), (0.45, 0.1), (0.75, 0.14), (0.97, 0.26), (1.0, 0.42)]
        opening = bezier((0.08, 0.07), (0.28, 0.18), (0.48, 0.11), 8).tolist() + \
            bezier((0.48, 0.11), (0.28, 0.04), (0.08, 0.07), 8).tolist()
    else:
        upper = [(0.04, 0.42), (0.0, 0.1), (0.08, 0.02), (0.26, 0.06), (0.36, -0.04), (0.44, 0.0),
                 (0.6, 0.12), (0.85, 0.2), (0.98, 0.28), (1.0, 0.42)]
        opening = ellipse(0.18, 0.06, 0.1, 0.04, 0, 360, 12)
    sole = [(0.0, 0.38), (1.0, 0.38), (1.04, 0.4 + sole_h * 0.6), (0.97, 0.4 + sole_h), (0.03, 0.4 + sole_h),
            (-0.01, 0.4 + sole_h * 0.5)]
    if style == "boot":   # block heel
        sole = sole[:4] + [(0.32, 0.4 + sole_h), (0.3, 0.4 + sole_h * 2.2), (0.02, 0.4 + sole_h * 2.2)]
    D.add(T(upper), "main", instance=inst)
    D.add(T(sole), "sole", instance=inst, smooth=1)
    D.add(T(opening), "lining", instance=inst, smooth=1)
    if style == "sneaker":
        for t in np.linspace(0, 1, 4):
            x, y = 0.42 + 0.2 * t, 0.04 + 0.09 * t
            D.line(T([(x - 0.03, y - 0.035), (x + 0.04, y + 0.035)]), "lace", weight=0.9)
        D.line(T(bezier((0.3, 0.3), (0.55, 0.18), (0.78, 0.22), 8)), "seam", weight=1.2)
        D.line(T(bezier((0.8, 0.38), (0.82, 0.24), (1.0, 0.3), 6)), "seam")
    elif style == "boot":
        D.line(T([(0.36, -0.4), (0.38, 0.05)]), "zip")
        D.line(T([(0.0, 0.3), (0.97, 0.33)]), "stitch")
    else:
        D.line(T(bezier((0.5, 0.2), (0.7, 0.14), (0.85, 0.25), 8)), "seam")


def build_shoes(attrs: dict, r) -> Design:
    D = Design("shoes", attrs)
    style = str(r.choice(["sneaker", "boot", "loafer"], p=[0.5, 0.25, 0.25]))
    D.leather = style != "sneaker" or r.random() < 0.3
    if r.random() < 0.5:   # one behind the other
        _shoe(D, 1, _u(r, 0.2, 0.35), _u(r, -0.22, -0.12), 0.96, style, r)
        _shoe(D, 0, 0.0, 0.0, 1.0, style, r)
    else:                  # one above the other, as a pair lies on the floor
        lift = 1.0 if style == "boot" else 0.62
        _shoe(D, 1, _u(r, -0.15, 0.15), -lift, 1.0, style, r)
        _shoe(D, 0, 0.0, 0.0, 1.0, style, r)
    D.style = style
    return D


def build_bag(attrs: dict, r) -> Design:
    D = Design("bag", attrs)
    style = str(r.choice(["tote", "handbag", "backpack"], p=[0.4, 0.35, 0.25]))
    D.leather = style == "handbag" or r.random() < 0.3
    if style == "tote":
        w, h = _u(r, 0.5, 0.6), _u(r, 0.75, 0.95)
        for x in (-0.25, 0.25):
            D.add(band(bezier((x - 0.1, 0.05), (x, -_u(r, 0.5, 0.7)), (x + 0.1, 0.05), 16), 0.05), "trim", smooth=0)
        D.add([(-w, 0), (w, 0), (w * 0.92, h), (-w * 0.92, h)], smooth=1)
        D.line([(-w * 0.97, 0.06), (w * 0.97, 0.06)], "stitch")
    elif style == "handbag":
        w, h = _u(r, 0.55, 0.7), _u(r, 0.6, 0.75)
        D.add(band(bezier((-w * 0.5, 0.02), (0, -_u(r, 0.55, 0.8)), (w * 0.5, 0.02), 18), 0.07), "trim", smooth=0)
        D.add([(-w * 0.8, 0), (w * 0.8, 0), (w, h), (-w, h)], smooth=2)
        fy = h * _u(r, 0.35, 0.5)
        D.add([(-w * 0.8, 0), (w * 0.8, 0), (w * 0.88, fy), (0, fy + 0.06), (-w * 0.88, fy)], "trim", smooth=1)
        D.add(ellipse(0, fy + 0.02, 0.05, 0.035, 0, 360, 12), "hardware", smooth=0)
    else:
        w, h = _u(r, 0.42, 0.5), _u(r, 1.0, 1.2)
        D.add(band(bezier((-0.12, 0.02), (0, -0.18), (0.12, 0.02), 10), 0.04), "trim", smooth=0)
        D.add(ellipse(0, w * 0.6, w, w * 0.6, 180, 360, 16).tolist() + [(w, h), (-w, h)], smooth=2)
        D.add([(-w * 0.7, h * 0.55), (w * 0.7, h * 0.55), (w * 0.72, h * 0.95), (-w * 0.72, h * 0.95)], "trim", smooth=2)
        D.line(bezier((-w * 0.85, w * 0.55), (0, -0.02), (w * 0.85, w * 0.55), 12), "zip")
    D.style = style
    return D


def build(category: str, attributes: dict, rng) -> Design:
    """The design for one product; all randomness comes from `rng`."""
    if category in ("t-shirt", "longsleeve", "shirt", "outerwear", "dress"):
        return build_top(category, attributes, rng)
    if category == "skirt":
        return build_skirt(attributes, rng)
    if category in ("pants", "shorts"):
        return build_legwear(category, attributes, rng)
    return {"hat": build_hat, "shoes": build_shoes, "bag": build_bag}[category](attributes, rng)


# ---------------------------------------------------------------- placement

def place(design: Design, width: int, height: int, rng, *, margin=(0.06, 0.12), angle=(-5.0, 5.0),
          shift=0.03) -> Design:
    """Rotate and scale a design into a width x height canvas (pixels), smoothed."""
    a = math.radians(rng.uniform(*angle))
    R = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    pts = design.all_points() @ R.T
    lo, hi = pts.min(0), pts.max(0)
    m = rng.uniform(*margin)
    scale = min(width * (1 - 2 * m) / (hi[0] - lo[0]), height * (1 - 2 * m) / (hi[1] - lo[1]))
    centre = (lo + hi) / 2
    off = np.array([width / 2, height / 2]) + rng.uniform(-shift, shift, 2) * [width, height]

    def tf(p):
        return (p @ R.T - centre) * scale + off
    out = Design(design.category, design.attributes, style=design.style, leather=design.leather)
    out.parts = [Part(chaikin(densify(tf(p.pts)) if len(p.pts) < 12 and p.smooth else tf(p.pts), p.smooth),
                      p.role, p.instance, 0, p.outline) for p in design.parts]
    out.details = [Detail(tf(d.pts), d.kind, d.closed, d.weight) for d in design.details]
    out.scale = scale
    return out
