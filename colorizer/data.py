"""Training and evaluation pairs: garment cut-out (target), the project's own sketch of it, user-like hints.

Everything here is plain numpy/OpenCV so the eval command, the trainer and the API build
inputs the same way. The working canvas is square: images are padded with white to a square
(keeping the aspect ratio) and resized to `size`, so a garment is never stretched.
"""
from __future__ import annotations

import logging
import math

import cv2
import numpy as np
from PIL import Image

from sketchshop.images import convert

log = logging.getLogger(__name__)

WHITE = 255


# ---------------------------------------------------------------- square canvas helpers
def pad_square(a: np.ndarray, fill) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Pad HxW(xC) to a centred square with `fill`; returns the array and the box (x0, y0, w, h) of the original."""
    h, w = a.shape[:2]
    s = max(h, w)
    y0, x0 = (s - h) // 2, (s - w) // 2
    out = np.empty((s, s) + a.shape[2:], a.dtype)
    out[...] = fill
    out[y0:y0 + h, x0:x0 + w] = a
    return out, (x0, y0, w, h)


MAX_PERIOD = 16  # input pixels per period of the hints' scaling beyond which they are resampled first


def hint_canvas(rgba: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 4) float32: an RGBA hint layer premultiplied, padded to a centred square, dilated so that small
    dots survive, and area-scaled to `size`. Only the part of the square that holds hints is computed (a layer is
    mostly transparent; the whole square's float maths cost about 2 ms a sketch), widened to whole periods of the
    scaling (p input pixels to q output pixels) so that it comes out exactly as the whole square would.
    A square whose side shares few factors with `size` has a long period (931 px and 256: the whole square, 10 ms),
    so its hints are first resampled (nearest) onto the next multiple of `size`: they move by under a pixel."""
    h, w = rgba.shape[:2]
    n = max(h, w)
    out = np.zeros((size, size, 4), np.float32)
    bx, by, bw, bh = cv2.boundingRect(np.ascontiguousarray(rgba[..., 3]))
    if bw == 0:
        return out
    region = rgba[by:by + bh, bx:bx + bw]
    x, y = bx + (n - w) // 2, by + (n - h) // 2  # the region's place in the square
    if n > size and n // math.gcd(n, size) > MAX_PERIOD:
        m = math.ceil(n / size) * size
        x, y, x1, y1 = (round(v * m / n) for v in (x, y, x + bw, y + bh))
        region = cv2.resize(np.ascontiguousarray(region), (max(1, x1 - x), max(1, y1 - y)), interpolation=cv2.INTER_NEAREST)
        x, y, n = min(x, m - region.shape[1]), min(y, m - region.shape[0]), m
    k = math.ceil(n / size)
    p, q = (n, size) if n <= size else (n // math.gcd(n, size), size // math.gcd(n, size))

    def span(lo, length):  # enlarging samples neighbours, not areas: the whole square
        return (0, n) if n <= size else (max(0, (lo - k) // p * p), min(n, -(-(lo + length + k) // p) * p))

    (x0, x1), (y0, y1) = span(x, region.shape[1]), span(y, region.shape[0])
    *rgb, alpha = cv2.split(np.ascontiguousarray(region))  # planes: per-plane maths is faster
    a = alpha.astype(np.float32) / 255.0
    part = np.zeros((y1 - y0, x1 - x0, 4), np.float32)
    part[y - y0:y - y0 + region.shape[0], x - x0:x - x0 + region.shape[1]] = cv2.merge([c.astype(np.float32) * a for c in rgb] + [a])
    if k >= 2:
        part = cv2.dilate(part, np.ones((k, k), np.uint8))
    out[y0 * q // p:y1 * q // p, x0 * q // p:x1 * q // p] = cv2.resize(
        part, ((x1 - x0) * q // p, (y1 - y0) * q // p), interpolation=cv2.INTER_AREA)
    return out


def to_canvas(a: np.ndarray, size: int, fill, interp=cv2.INTER_AREA) -> np.ndarray:
    sq, _ = pad_square(a, fill)
    return cv2.resize(sq, (size, size), interpolation=interp)


# ---------------------------------------------------------------- segmentation
def segment_garment(image, size: int = 256, work: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Cut the garment out of a photo: returns (RGB uint8 on white, mask uint8 0/255), both size x size.

    GrabCut initialised from a border model: the outer 3% frame of the photo is sure background, a centred box
    is probable foreground, and pixels whose colour is far from every border colour start as
    probable foreground too. Then the largest component with holes filled. Photos of one garment
    on a bed/floor/hanger are what this is for; when it fails (empty or whole-frame mask) the
    centre ellipse is used so the caller always gets a usable mask.
    """
    rgb = np.asarray(convert(image, "RGB") if isinstance(image, Image.Image) else image, np.uint8)
    sq, (x0, y0, bw, bh) = pad_square(rgb, WHITE)
    rgb = cv2.resize(sq, (size, size), interpolation=cv2.INTER_AREA)
    pad = np.ones(sq.shape[:2], np.uint8)
    pad[y0:y0 + bh, x0:x0 + bw] = 0
    small = cv2.resize(rgb, (work, work), interpolation=cv2.INTER_AREA)  # GrabCut cost grows with pixels
    h, w = small.shape[:2]
    size_full, size = size, work
    m = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    b = max(2, int(0.03 * size))
    inner = np.zeros((h, w), bool)
    inner[int(0.18 * h):int(0.82 * h), int(0.18 * w):int(0.82 * w)] = True
    # border model: distance in Lab to the nearest of k border colours
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    frame = np.zeros((h, w), bool)
    frame[:b], frame[-b:], frame[:, :b], frame[:, -b:] = True, True, True, True
    # the frame of the photo itself, not of the white padding around it
    padded = cv2.resize(pad, (work, work), interpolation=cv2.INTER_NEAREST) > 0
    frame |= cv2.dilate(padded.astype(np.uint8), np.ones((2 * b + 1, 2 * b + 1), np.uint8)) > 0
    border_px = lab[frame & ~padded]
    if len(border_px) >= 16:
        crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
        cv2.setRNGSeed(0)
        k = min(5, len(border_px))
        _, _, centres = cv2.kmeans(border_px, k, None, crit, 1, cv2.KMEANS_PP_CENTERS)
        d = np.min(np.linalg.norm(lab[:, :, None, :] - centres[None, None], axis=3), axis=2)
        far = d > max(25.0, np.percentile(d[frame & ~padded], 95) * 1.2)
        m[far] = cv2.GC_PR_FGD
    m[inner] = cv2.GC_PR_FGD
    m[frame] = cv2.GC_BGD
    m[padded] = cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.setRNGSeed(0)
        cv2.grabCut(small, m, None, bgd, fgd, 3, cv2.GC_INIT_WITH_MASK)
        fg = np.isin(m, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    except cv2.error:
        fg = np.zeros((h, w), np.uint8)
    fg = _clean_mask(fg)
    frac = fg.mean()
    if frac < 0.03 or frac > 0.97:
        fg = np.zeros((h, w), np.uint8)
        cv2.ellipse(fg, (w // 2, h // 2), (int(w * 0.35), int(h * 0.42)), 0, 0, 360, 1, -1)
        fg[padded] = 0
    up = cv2.resize(fg.astype(np.float32), (size_full, size_full), interpolation=cv2.INTER_LINEAR)
    fg = (cv2.GaussianBlur(up, (0, 0), 1.0) > 0.5).astype(np.uint8)
    mask = fg * 255
    out = np.where(fg[..., None] > 0, rgb, WHITE).astype(np.uint8)
    return out, mask.astype(np.uint8)


def cutout_canvas(image: Image.Image, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """An RGBA cut-out (alpha = garment) on the same square canvas as `segment_garment`, no guessing."""
    rgba = np.asarray(image.convert("RGBA"), np.uint8)
    rgb = np.asarray(convert(image, "RGB"), np.uint8)
    rgb = to_canvas(rgb, size, WHITE)
    m = to_canvas(rgba[..., 3], size, 0, cv2.INTER_LINEAR) > 127
    return np.where(m[..., None], rgb, WHITE).astype(np.uint8), (m * 255).astype(np.uint8)


def _clean_mask(fg: np.ndarray) -> np.ndarray:
    """Open, keep components bigger than 15% of the largest, fill holes."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, k)
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, k)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(fg, 8)
    if n <= 1:
        return fg
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= 0.15 * areas.max()) + 1
    fg = np.isin(lab, keep).astype(np.uint8)
    # fill holes: flood the background from the border
    inv = (1 - fg).astype(np.uint8)
    n, lab = cv2.connectedComponents(inv, connectivity=4)
    edge = set(np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))) - {0}
    holes = (inv > 0) & ~np.isin(lab, list(edge))
    fg[holes] = 1
    return fg


# ---------------------------------------------------------------- sketch
def _thin(binary: np.ndarray) -> np.ndarray:
    from skimage.morphology import thin
    return thin(binary).astype(np.uint8)


def sketch_lines(target, mask=None, sigma: float = 1.0, eps: float = 0.0, min_len: int = 12) -> np.ndarray:
    """Interior lines of a garment image: XDoG edges thinned to one-pixel skeletons (HxW uint8 0/1).

    The expensive half of `make_sketch` (thinning), split out so training can cache it.
    """
    a = _rgb(target)
    mask = _mask(a, mask)
    gray = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    g1 = cv2.GaussianBlur(gray, (0, 0), sigma)
    g2 = cv2.GaussianBlur(gray, (0, 0), sigma * 1.6)
    p = 20.0
    dog = (1 + p) * g1 - p * g2
    # XDoG: lines where the sharpened response dips below eps (soft-thresholded, then binarised)
    e = np.where(dog >= eps, 1.0, 1.0 + np.tanh(40.0 * (dog - eps)))
    lines = (e < 0.5).astype(np.uint8)
    lines[mask == 0] = 0
    lines = _thin(lines)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(lines, 8)
    small = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] < min_len) + 1
    lines[np.isin(lab, small)] = 0
    return lines


def render_sketch(lines: np.ndarray, mask, rng: np.random.Generator | None = None) -> Image.Image:
    """Draw interior lines plus the garment outline as dark strokes on white (PIL "L").

    With `rng`: wobbly outline, pen lifts (gaps), stroke width 1-3 px, slight blur; without: fixed.
    """
    r = rng
    mask = np.asarray(mask, np.uint8)
    h, w = mask.shape
    width = int(r.choice([1, 1, 2, 2, 3])) if r else 2
    outline = np.zeros((h, w), np.uint8)
    contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    for c in contours:
        if r is not None and len(c) > 8:
            c = c + r.normal(0, 0.6, c.shape).round().astype(c.dtype)  # a hand is not a contour tracer
            c = cv2.approxPolyDP(c, r.uniform(0.3, 1.5), True)
        cv2.polylines(outline, [c], True, 1, 1)
    ink = np.maximum(lines.astype(np.uint8), outline)
    if r is not None and r.random() < 0.3:  # sparser drawings: some users draw only a few folds
        n, lab = cv2.connectedComponents(lines.astype(np.uint8), connectivity=8)
        drop = np.flatnonzero(r.random(n) < r.uniform(0.3, 0.9))
        ink = np.maximum(np.where(np.isin(lab, drop[drop > 0]), 0, lines).astype(np.uint8), outline)
    if r is not None and r.random() < 0.5:  # gaps: a human lifts the pen
        ys, xs = np.nonzero(ink)
        for i in (r.integers(len(ys), size=int(r.integers(3, 15))) if len(ys) else []):
            cv2.circle(ink, (int(xs[i]), int(ys[i])), int(r.integers(2, 5)), 0, -1)
    if width > 1:
        ink = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width, width)))
    sk = (255 - ink * 255).astype(np.uint8)
    if r is not None and r.random() < 0.3:
        sk = cv2.GaussianBlur(sk, (0, 0), r.uniform(0.3, 0.8))
    return Image.fromarray(sk, "L")


def make_sketch(target, mask=None, rng: np.random.Generator | None = None) -> Image.Image:
    """The project's sketch of a garment image: thin dark lines on white (PIL "L", same size).

    XDoG edges of the garment (interior folds, seams, prints) thinned to one-pixel skeletons and
    redrawn at a stroke width, plus the garment outline from the mask, like a person tracing it.
    With `rng` the look varies (blur scale, threshold, stroke width, gaps, wobble) for training;
    without it the output is fixed, which is what evaluation uses.
    """
    a = _rgb(target)
    mask = _mask(a, mask)
    if rng is None:
        lines = sketch_lines(a, mask)
    else:
        lines = sketch_lines(a, mask, rng.uniform(0.7, 1.4), rng.uniform(-0.02, 0.02), int(rng.integers(6, 20)))
    return render_sketch(lines, mask, rng)


def _rgb(im) -> np.ndarray:
    return np.asarray(convert(im, "RGB") if isinstance(im, Image.Image) else im, np.uint8)


def _mask(a: np.ndarray, mask) -> np.ndarray:
    """The given mask as uint8, or the non-white pixels of a cut-out."""
    if mask is None:
        return np.where(np.any(a < 245, axis=2), 255, 0).astype(np.uint8)
    return np.asarray(convert(mask, "L") if isinstance(mask, Image.Image) else mask, np.uint8)


# ---------------------------------------------------------------- hints
def sample_hints(target, mask, n: int = 30, rng: np.random.Generator | int | None = 0,
                 strokes: bool = False, radius: int = 2) -> Image.Image:
    """Colour hints as a user would give them: RGBA, transparent except coloured dots (and short strokes).

    Dots are `radius` px discs at random garment pixels, coloured with the median of the target
    around them. With `strokes`, some hints become short straight strokes inside a uniformly
    coloured area (one colour per stroke, as a user picks one pen).
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    a = _rgb(target)
    mask = _mask(a, mask)
    h, w = a.shape[:2]
    out = np.zeros((h, w, 4), np.uint8)
    inside = mask > 0
    if radius > 1:  # keep dots off the very edge of the garment so they do not sample background
        er = cv2.erode(inside.astype(np.uint8), np.ones((2 * radius + 1,) * 2, np.uint8)) > 0
        if er.sum() >= max(n, 1):
            inside = er
    ys, xs = np.nonzero(inside)
    if n <= 0 or not len(ys):
        return Image.fromarray(out, "RGBA")
    idx = rng.choice(len(ys), size=min(n, len(ys)), replace=False)
    blur = cv2.medianBlur(a, 3)
    for i in idx:
        y, x = int(ys[i]), int(xs[i])
        col = tuple(int(v) for v in blur[y, x]) + (255,)
        if strokes and rng.random() < 0.35:
            ang = rng.uniform(0, np.pi)
            ln = rng.uniform(5, 18)
            x2, y2 = int(round(x + ln * np.cos(ang))), int(round(y + ln * np.sin(ang)))
            x2, y2 = min(max(x2, 0), w - 1), min(max(y2, 0), h - 1)
            seg = np.zeros((h, w), np.uint8)
            cv2.line(seg, (x, y), (x2, y2), 1, 1)
            px = blur[(seg > 0) & inside]
            if len(px) > 2 and np.abs(px.astype(int) - blur[y, x]).max() < 30:
                cv2.line(out, (x, y), (x2, y2), col, max(1, radius))
                continue
        cv2.circle(out, (x, y), radius, col, -1)
    return Image.fromarray(out, "RGBA")


# ---------------------------------------------------------------- model input
def inside_mask(sketch: np.ndarray) -> np.ndarray:
    """1 inside the garment's outline (enclosed, not reachable from the canvas border), else 0.

    Strokes are thickened by 5 px first so pen gaps up to ~10 px still close the outline. A
    cheap, explicit hint of "garment vs background" the network would otherwise have to learn.
    """
    ink = (sketch < 160).astype(np.uint8)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11))
    thick = cv2.dilate(ink, disc)
    n, lab = cv2.connectedComponents((1 - thick).astype(np.uint8), connectivity=4)
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    enclosed = ((lab > 0) & ~np.isin(lab, edge)).astype(np.uint8)  # label 0 is the thick strokes
    # the filled shape, shrunk back by the thickening: its edge lands on the outline again
    inside = cv2.erode(thick | enclosed, disc)  # strokes inside the outline count as inside (no white lines)
    return inside.astype(np.float32)


def hint_prior(colours: np.ndarray, a: np.ndarray, coarse: int = 64, sigmas=(1.0, 3.0, 8.0)) -> np.ndarray:
    """(3, H, W) float32 in [-1, 1]: hint colours spread over the canvas (0 = grey where there is none).

    `colours`: (3, H, W) hint colours in [-1, 1], 0 where no hint; `a`: 1 where a hint is, else 0.
    Multi-scale normalised convolution on a coarse grid: each pixel takes the weighted mean of
    nearby hints, the finest scale that has enough hint mass wins. Gives the network a colour
    layout to refine instead of learning long-range propagation from scratch.
    """
    h, w = a.shape
    a_c = cv2.resize(a, (coarse, coarse), interpolation=cv2.INTER_AREA)
    p_c = cv2.resize(cv2.merge(list(colours)), (coarse, coarse), interpolation=cv2.INTER_AREA)
    out = np.zeros((coarse, coarse, 3), np.float32)
    done = np.zeros((coarse, coarse), bool)
    for s in sigmas:
        den = cv2.GaussianBlur(a_c, (0, 0), s)
        num = cv2.GaussianBlur(p_c, (0, 0), s)
        ok = (den > 0.02 / (s * s)) & ~done
        out[ok] = num[ok] / den[ok, None]
        done |= ok
    on = a > 0
    if on.any() and not done.all():  # far from every hint: the mean hint colour
        out[~done] = [c[on].mean() for c in colours]
    return np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in cv2.split(out)])


def encode(sketch: np.ndarray, hints: np.ndarray) -> np.ndarray:
    """(9, H, W) float32 model input from a sketch (HxW uint8, dark strokes) and hints (HxWx4 RGBA uint8).

    Channels: 0 ink (strokes of at least half a pixel's coverage count fully, so a canvas
    downscaled from a big drawing keeps its thin lines); 1-3 hint colour in [-1, 1], 0 where no
    hint; 4 hint mask; 5-7 `hint_prior`; 8 `inside_mask`.
    """
    out = np.empty((9,) + sketch.shape, np.float32)
    encode_hints(hints, out)
    encode_sketch(sketch, out)
    return out


def encode_sketch(sketch: np.ndarray, out: np.ndarray) -> None:
    """`encode`'s channels 0 and 8, written into `out`: they need only the sketch."""
    out[0] = np.clip((255.0 - sketch.astype(np.float32)) / 127.5, 0.0, 1.0)
    out[8] = inside_mask(sketch)


def encode_hints(hints: np.ndarray, out: np.ndarray) -> None:
    """`encode`'s channels 1-7, written into `out`: they need only the hints (so both halves can run at once)."""
    *rgb, alpha = cv2.split(np.ascontiguousarray(hints))  # planes: per-plane maths is several times faster
    out[4] = alpha >= 64
    for i, c in enumerate(rgb):
        out[1 + i] = (c.astype(np.float32) / 127.5 - 1.0) * out[4]
    out[5:8] = hint_prior(out[1:4], out[4])
