"""Evaluation on real photos: cut the garment out, sketch it, give N hint dots, colour, compare.

Scores are taken on the garment region of the 256 px canvas (the target's mask), against the
cut-out target: SSIM (Wang et al. gaussian window, sigma 1.5, RGB, averaged over garment pixels),
PSNR over garment pixels, and the CIEDE2000 distance between the dominant colours (largest
k-means cluster, k=3) of target and output. The output is taken without the drawn strokes
(`keep_strokes=False`): the target photo has no pen lines, the generator is what is measured.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from sketchshop import vocab
from sketchshop.datasets import Skipped
from sketchshop.errors import UserError
from sketchshop.files import atomic_write
from sketchshop.images import load_image

from .data import make_sketch, sample_hints, segment_garment
from .pairs import list_images

log = logging.getLogger(__name__)


def dominant_colour(rgb: np.ndarray, mask: np.ndarray, k: int = 3) -> tuple[float, float, float]:
    """Centre of the largest colour cluster among the masked pixels (sRGB 0-255)."""
    px = rgb[mask > 0].reshape(-1, 3).astype(np.float32)
    if len(px) < k:
        return tuple(float(v) for v in (px.mean(0) if len(px) else (255, 255, 255)))
    if len(px) > 20000:
        px = px[np.linspace(0, len(px) - 1, 20000).astype(int)]
    cv2.setRNGSeed(0)
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, labels, centres = cv2.kmeans(px, k, None, crit, 2, cv2.KMEANS_PP_CENTERS)
    return tuple(float(v) for v in centres[np.bincount(labels.ravel(), minlength=k).argmax()])


def garment_scores(out: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict:
    from skimage.metrics import structural_similarity
    m = mask > 0
    _, smap = structural_similarity(target, out, channel_axis=2, data_range=255, gaussian_weights=True,
                                    sigma=1.5, use_sample_covariance=False, full=True)
    ssim = float(smap.mean(axis=2)[m].mean())
    mse = float(((out.astype(np.float64) - target) ** 2)[m].mean())
    psnr = float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))
    de = vocab.ciede2000(vocab.srgb_to_lab(dominant_colour(target, mask)), vocab.srgb_to_lab(dominant_colour(out, mask)))
    return {"ssim": ssim, "psnr": psnr, "colour_delta_e": float(de)}


def reference_scores(target: np.ndarray, mask: np.ndarray) -> dict:
    """SSIM of stand-ins that are given the photo itself: the garment filled with its exact mean
    colour, and the photo blurred (gaussian sigma 1, 2, 4 px). They bracket what a colouriser
    that sees only a sketch and a few dots can reach: texture finer than the blur is unknowable."""
    m = mask > 0
    flat = target.copy()
    flat[m] = target[m].mean(0)
    out = {"flat_mean_colour": garment_scores(flat, target, mask)["ssim"]}
    for s in (1, 2, 4):
        b = cv2.GaussianBlur(target, (0, 0), s)
        b[~m] = 255
        out[f"photo_blurred_sigma{s}"] = garment_scores(b, target, mask)["ssim"]
    return out


def evaluate(images: str | Path, *, hints: int = 30, seed: int = 0, weights=None, limit: int | None = None,
             use_category: bool = False, sheet: str | Path | None = None, sheet_rows: int = 8) -> dict:
    """Score the colouriser on the photos under `images` (recursing into class folders)."""
    from .infer import Colorizer
    if hints < 0:
        raise UserError(f"--hints must be >= 0, not {hints}")
    col = Colorizer.load(weights)
    items = list_images(images)
    if limit:
        items = items[:limit]
    rows, refs, times, tiles, skipped = [], [], [], [], Skipped()
    show = set(np.linspace(0, len(items) - 1, min(sheet_rows, len(items))).round().astype(int).tolist()) if sheet else set()
    for i, (path, folder) in enumerate(tqdm(items, desc="eval colorizer", unit="img")):
        try:
            photo = load_image(path)
        except UserError as e:
            skipped.add(path, e)
            continue
        target, mask = segment_garment(photo, col.size)
        sketch = make_sketch(target, mask)
        hint = sample_hints(target, mask, hints, np.random.default_rng((seed, i)))
        cat = None
        if use_category and folder:
            try:
                cat = vocab.category(folder, allow_coarse=False)
            except vocab.VocabError:
                cat = None
        t = time.perf_counter()
        out = np.asarray(col.colorize(sketch, hint, cat, keep_strokes=False))
        times.append((time.perf_counter() - t) * 1000)
        rows.append(garment_scores(out, target, mask))
        refs.append(reference_scores(target, mask))
        if i in show:  # rows spread over the folder, so every class shows up
            tiles.append((sketch, hint, Image.fromarray(out), Image.fromarray(target)))
    if not rows:
        raise UserError(f"{images}: no photo could be evaluated")
    skipped.check(len(rows), len(items))
    res = {"n": len(rows),
           "ssim": float(np.mean([r["ssim"] for r in rows])),
           "psnr": float(np.mean([r["psnr"] for r in rows])),
           "colour_delta_e": float(np.mean([r["colour_delta_e"] for r in rows])),
           "ms_per_image": float(np.median(times)),
           "reference_ssim": {k: float(np.mean([r[k] for r in refs])) for k in refs[0]}, "skipped": skipped}
    if sheet:
        contact_sheet(tiles, sheet)
    return res


def contact_sheet(tiles, path, size: int = 192) -> None:
    """Columns: sketch, hints, output, target; one garment per row."""
    cols = ["sketch", "hints", "output", "target"]
    head = 18
    im = Image.new("RGB", (len(cols) * size, head + len(tiles) * size), "white")
    d = ImageDraw.Draw(im)
    for c, name in enumerate(cols):
        d.text((c * size + 4, 3), name, fill=(0, 0, 0))
    for r, (sk, hint, out, tgt) in enumerate(tiles):
        on_sketch = Image.alpha_composite(sk.convert("RGBA"), hint.convert("RGBA"))
        for c, t in enumerate([sk.convert("RGB"), on_sketch.convert("RGB"), out, tgt]):
            im.paste(t.convert("RGB").resize((size, size)), (c * size, head + r * size))
    with atomic_write(path, "wb") as f:
        im.save(f, format="PNG")


def write_json(res: dict, path) -> None:
    with atomic_write(path) as f:
        json.dump(res, f, indent=2)
        f.write("\n")
