"""Measured colour: the dominant colour of the garment's foreground, and of a sketch's hint layer.

Photos: pixels far (in Lab) from every colour of the image border are the garment; the border
model works for product shots and crops (background or neighbouring pixels touch the edge, the
garment sits inside). k-means in Lab on the foreground, the largest cluster is named with
`vocab.name_colour` after an exposure gain: phone photos are often underexposed (navy reads as
black, white as gray), so the image is brightened until its 99th-percentile luminance is white
(at most 1.5x; a product shot on white is left alone, and so is a garment that fills the frame,
which leaves nothing to tell a gray sweater from a dim white one). Sketches: the colour comes from
the user's hint dots, not from the ink.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from sketchshop import vocab
from sketchshop.images import convert, hint_mask


def _lab(a: np.ndarray) -> np.ndarray:
    import cv2
    return cv2.cvtColor(a.astype(np.uint8), cv2.COLOR_RGB2LAB).astype(np.float32) * (100 / 255, 1, 1) - (0, 128, 128)


def _kmeans(x: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    import cv2
    if len(x) < 2:  # OpenCV would read a single row as several 1-D points
        return np.zeros(len(x), np.int32), x.astype(np.float32).reshape(len(x), -1)
    k = max(1, min(k, len(x)))
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 0.5)
    cv2.setRNGSeed(seed)
    _, lab, cen = cv2.kmeans(x.astype(np.float32), k, None, crit, 1, cv2.KMEANS_PP_CENTERS)
    return lab.ravel(), cen


def foreground_mask(a: np.ndarray, thresh: float = 12.0) -> np.ndarray:
    """Boolean HxW: pixels whose Lab distance to every border-colour cluster exceeds `thresh`."""
    h, w = a.shape[:2]
    lab = _lab(a)
    b = max(2, int(0.05 * min(h, w)))
    edge = np.concatenate([lab[:b].reshape(-1, 3), lab[-b:].reshape(-1, 3),
                           lab[:, :b].reshape(-1, 3), lab[:, -b:].reshape(-1, 3)])
    _, cen = _kmeans(edge[:: max(1, len(edge) // 3000)], 4)
    planes = lab.reshape(-1, 3).T.copy()  # one plane per channel: 10x faster than a 3-wide axis
    d2 = np.full(h * w, np.inf, np.float32)
    for c in cen:
        np.minimum(d2, (planes[0] - c[0]) ** 2 + (planes[1] - c[1]) ** 2 + (planes[2] - c[2]) ** 2, out=d2)
    d2 = d2.reshape(h, w)
    fg = d2 > thresh * thresh
    # keep the centre region's connected blobs; a garment never hugs the border only
    import cv2
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
    if n > 1:
        areas = stats[1:, cv2.CC_STAT_AREA]
        keep = np.zeros(n, bool)
        keep[1:] = areas >= 0.02 * h * w
        if not keep.any():
            keep[1 + int(np.argmax(areas))] = True
        fg = keep[labels]
    return fg


MAX_GAIN = 1.5
MIN_FOREGROUND = 0.08  # below this share the border model found no garment: use the centre
BOX_TRIM = 0.1  # a detected garment's colour is read in its box less this much of each side


def exposure_gain(a: np.ndarray, max_gain: float = MAX_GAIN) -> float:
    """The factor that takes the 99th-percentile luminance of RGB `a` to 255 (1 to max_gain)."""
    return float(np.clip(255.0 / max(float(np.percentile(a.mean(axis=2), 99)), 1.0), 1.0, max_gain))


def box_core(shape: tuple[int, ...], box, trim: float = BOX_TRIM) -> np.ndarray:
    """Boolean HxW: `box` (x1, y1, x2, y2) less `trim` of its sides each way."""
    x1, y1, x2, y2 = box
    tx, ty = (x2 - x1) * trim, (y2 - y1) * trim
    m = np.zeros(shape[:2], bool)
    m[max(0, round(y1 + ty)): max(1, round(y2 - ty)), max(0, round(x1 + tx)): max(1, round(x2 - tx))] = True
    return m


def measured_colour(image: Image.Image | np.ndarray, mask: np.ndarray | None = None, side: int = 64,
                    box=None) -> tuple[tuple[float, float, float], float]:
    """(sRGB of the garment's dominant colour, share of the foreground in that cluster) of a photo or crop.

    Read in `mask` if given; else in the core of `box` (where a detected garment lies in its crop), as
    the border model's foreground of a street photo or a model shot also holds skin, hair and the other
    garments, less the pixels that match the crop's border (the backdrop between a cap's crown and brim);
    else in the core of that foreground (see the classifier card). 64 px (OpenCV's area resize)
    and one k-means attempt of 10 iterations: 2 ms of CPU for a phone photo, for 0.938 colour top-1 on
    130 held-out studio products (96 px and 2 x 20: 7.5 ms, 0.946; measured before the exposure gain).
    The name is fragile where two clusters are about as large: reading the photo at 256 px first renamed
    the colours of 28 of the 341 validation photos, and the 130 labelled ones scored 0.56-0.61 across
    such variants (the classifier card, session 17).
    """
    import cv2
    a = np.asarray(convert(image, "RGB")) if isinstance(image, Image.Image) else image
    in_box = mask is None and box is not None
    if in_box:
        mask = box_core(a.shape, box)
    if max(a.shape[:2]) > side:
        s = side / max(a.shape[:2])
        size = (max(1, round(a.shape[1] * s)), max(1, round(a.shape[0] * s)))
        a = cv2.resize(np.ascontiguousarray(a), size, interpolation=cv2.INTER_AREA)
        if mask is not None:
            mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    if in_box:  # less what matches the crop's border, unless that leaves little (a garment the colour of its surroundings)
        fg = mask & foreground_mask(a)
        mask = fg if fg.sum() >= mask.sum() / 4 else mask
    if mask is not None:
        fg, fills_frame = mask, not mask.any()
    else:
        fg = foreground_mask(a)
        fills_frame = fg.sum() < MIN_FOREGROUND * fg.size  # nothing stands out from the border
        if not fills_frame:  # the foreground's rim is where shadows, hands and hangers join it
            ys, xs = np.nonzero(fg)
            core = fg & box_core(fg.shape, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
            fg = core if core.sum() >= fg.sum() / 4 else fg
    if fills_frame:
        h, w = fg.shape
        fg = np.zeros_like(fg)
        fg[h // 6: h - h // 6, w // 6: w - w // 6] = True
    gain = 1.0 if fills_frame else exposure_gain(a)
    px = np.minimum(a[fg].reshape(-1, 3).astype(np.float32) * gain, 255.0)
    lab = _lab(px.reshape(-1, 1, 3)).reshape(-1, 3)
    labels, _ = _kmeans(lab, 3)
    counts = np.bincount(labels, minlength=3)
    best = int(np.argmax(counts))
    rgb = np.median(px[labels == best], axis=0)
    return (float(rgb[0]), float(rgb[1]), float(rgb[2])), float(counts[best] / counts.sum())


def dominant_colour(image: Image.Image | np.ndarray, mask: np.ndarray | None = None, side: int = 64
                    ) -> tuple[str, float]:
    """(colour name, share of the foreground in that cluster) of the garment in a photo or crop."""
    rgb, share = measured_colour(image, mask, side)
    return vocab.name_colour(rgb), share


def colour_features(p_head: np.ndarray, rgb) -> np.ndarray:
    """(N, 2C) evidence for N photos: -dE / 10 to each colour's nearest prototype (dE the CIEDE2000 of the
    measured colour `rgb`, N x 3) and log p_head / 5 (the colour head's probabilities, N x C)."""
    de = vocab.colour_distance_matrix(np.reshape(rgb, (-1, 3)))
    return np.concatenate([-de / 10.0, np.log(np.reshape(p_head, (len(de), -1)).astype(np.float64) + 1e-6) / 5.0], axis=1)


def _rule() -> tuple[np.ndarray, np.ndarray]:
    """The hand-set combination as weights of `colour_features`: log p = (0.25 log p_head - dE / 3) / 2."""
    n = len(vocab.COLOURS)
    return np.vstack([np.eye(n) * 10 / 6, np.eye(n) * 0.25 / 2 * 5]), np.zeros(n)


RULE = _rule()


def combine_colour(p_head: np.ndarray, rgb, model: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """P(colour) from the head's probabilities and the measured colour, of one image or of N at once
    (p_head N x C, rgb N x 3): softmax(colour_features @ W + b).

    `model` (W, b) is fitted on labelled photos (`classifier/colour_model.py`); without one, the hand-set
    `RULE`: the measurement decides unless two names are about equally close to it (navy or black,
    beige or white in a dim photo), then the head breaks the tie; its temperature of 2 makes the
    probability honest on real photos (the search ranking weighs colour by it). See the classifier card.
    """
    w, b = RULE if model is None else model
    logit = colour_features(p_head, rgb) @ w + b
    q = np.exp(logit - logit.max(axis=-1, keepdims=True))
    q /= q.sum(axis=-1, keepdims=True)
    return q[0] if np.ndim(rgb) == 1 else q


def hint_colour(hints: Image.Image | None) -> tuple[str, float] | None:
    """Colour of a sketch from its hint layer (`images.hint_mask`: dots on transparent or on white); None if no hints."""
    if hints is None:
        return None
    rgba = np.asarray(hints.convert("RGBA"))
    on = hint_mask(rgba)
    if on.sum() < 4:
        return None
    px = rgba[..., :3][on].astype(np.float32)
    names = {}
    if len(px) > 4000:
        px = px[:: len(px) // 4000]
    packed = (px @ np.array([65536, 256, 1], np.float32)).astype(np.int64)
    values, first, counts = np.unique(packed, return_index=True, return_counts=True)
    if len(values) <= 3:  # a palette's dots: k-means would make each colour its own cluster (and took 1 ms)
        found, sizes = px[first], counts
    else:
        labels, _ = _kmeans(_lab(px.reshape(-1, 1, 3)).reshape(-1, 3), min(3, len(px)))
        groups = [g for g in (px[labels == c] for c in range(labels.max() + 1)) if len(g)]
        found, sizes = [np.median(g, axis=0) for g in groups], [len(g) for g in groups]
    for i, size in zip(vocab.colour_distance_matrix(found).argmin(axis=1), sizes):  # one call names them all
        names[vocab.COLOURS[i]] = names.get(vocab.COLOURS[i], 0) + int(size)
    best = max(names, key=names.get)
    return best, names[best] / sum(names.values())
