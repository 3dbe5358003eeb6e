"""Training sets built from the catalogue.

- `build_classify`: ImageFolder (`train|val/<category>/<sha>.<ext>`) plus `labels.csv` with every
  label (category, colour, attributes, shop, product, url), split by product, never by image, and
  near-duplicate images kept in one split so validation never sees a copy of a training photo.
- `build_detect`: YOLO format. Single-product shop photos get their box from foreground
  segmentation (background colour from the border, GrabCut when that fails); multi-item scenes
  are composited from product cut-outs on varied backgrounds, with boxes of the visible parts;
  `preview.png` shows some of them with their boxes.

Outputs are built in a temp directory and renamed into place (`files.replaced_dir`): no half dataset, and
never over a file or a folder that is not an earlier output.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import os
import random
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from sketchshop import vocab
from sketchshop.errors import UserError
from sketchshop.files import replaced_dir

log = logging.getLogger(__name__)
CSV_COLUMNS = ["file", "split", "category", "colour", *vocab.ATTRIBUTES, "shop", "external_id", "product_id",
               "url", "sha256", "other_labels"]   # other_labels: the shop's labels outside the vocabulary, name=raw;...


def _split(key: str, val_fraction: float, seed: int) -> str:
    h = int(hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < val_fraction else "train"


def _products(cat, shop):
    """Products with a category and at least one stored image; split key groups near-duplicates."""
    out = []
    for p in cat.iter_products(shop=shop):
        if p["category"] not in vocab.FINE_CATEGORIES or not p["images"]:
            continue
        p["group"] = p["images"][0]["duplicate_of"] or p["images"][0]["sha256"]
        out.append(p)
    if not out:
        shops = sorted(cat.stats()["by_shop"])
        if shop and shop not in shops:
            raise UserError(f"no shop named {shop!r} in the catalogue (shops: {', '.join(shops) or 'none yet'})")
        raise UserError(f"the catalogue has no labelled products with images{f' from {shop}' if shop else ''} "
                        "(crawl a shop first)")
    return out


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def build_classify(out, *, val_fraction: float = 0.15, shop: str | None = None, seed: int = 0, catalog=None) -> dict:
    """Write the classification dataset to `out`; returns counts."""
    from tqdm import tqdm

    from catalog import open_catalog
    if not 0 <= val_fraction < 1:
        raise UserError("--val must be in [0, 1)")
    cat = catalog or open_catalog()
    products = _products(cat, shop)
    counts = {"train": 0, "val": 0}
    out = Path(out)
    with replaced_dir(out, "labels.csv") as tmp, open(tmp / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, CSV_COLUMNS)
        w.writeheader()
        for p in tqdm(products, desc="dataset classify", unit="product", disable=None):
            split = _split(p["group"], val_fraction, seed)
            for im in p["images"]:
                src = cat.images.path(im["sha256"], im["path"])
                if src is None:
                    log.warning("image %s of product %s is missing from the store", im["sha256"], p["id"])
                    continue
                rel = f"{split}/{p['category']}/{im['sha256']}{src.suffix}"
                _place(src, tmp / rel)
                w.writerow({"file": rel, "split": split, "category": p["category"], "colour": p["colour"] or "",
                            **{a: p["attributes"].get(a, "") for a in vocab.ATTRIBUTES}, "shop": p["shop"],
                            "external_id": p["external_id"], "product_id": p["id"], "url": p["url"],
                            "sha256": im["sha256"],
                            "other_labels": ";".join(f"{x['name']}={x['raw']}" for x in p["labels"] if x["value"] is None)})
                counts[split] += 1
    return {"products": len(products), "images": counts["train"] + counts["val"], **counts,
            "labels_csv": str(out / "labels.csv")}


# ---------------------------------------------------------------- detection

def foreground_mask(im: Image.Image) -> np.ndarray | None:
    """Boolean mask of the garment in a single-product photo, or None when no clear foreground."""
    import cv2
    a = np.asarray(im.convert("RGB"))
    h, w = a.shape[:2]
    scale = 256 / max(h, w)
    small = cv2.resize(a, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    border = np.concatenate([lab[:3].reshape(-1, 3), lab[-3:].reshape(-1, 3), lab[:, :3].reshape(-1, 3),
                             lab[:, -3:].reshape(-1, 3)])
    bg = np.median(border, axis=0)
    spread = np.median(np.linalg.norm(border - bg, axis=1))
    dist = np.linalg.norm(lab - bg, axis=2)
    m = (dist > max(18.0, 4 * spread)).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    m = cv2.morphologyEx(cv2.morphologyEx(m, cv2.MORPH_CLOSE, k, iterations=2), cv2.MORPH_OPEN, k)
    frac = m.mean()
    if not 0.02 < frac < 0.95:   # plain-background assumption failed: GrabCut from an inset rectangle
        gm = np.zeros(small.shape[:2], np.uint8)
        sh, sw = small.shape[:2]
        rect = (int(sw * 0.05), int(sh * 0.05), int(sw * 0.9), int(sh * 0.9))
        try:
            cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), gm, rect, np.zeros((1, 65)), np.zeros((1, 65)),
                        4, cv2.GC_INIT_WITH_RECT)
        except cv2.error:
            return None
        m = np.isin(gm, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
        if not 0.02 < m.mean() < 0.95:
            return None
    n, lbl, stats, _ = cv2.connectedComponentsWithStats(m)
    if n <= 1:
        return None
    biggest = stats[1:, cv2.CC_STAT_AREA].max()
    keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= 0.15 * biggest]   # shoes come in pairs
    m = np.isin(lbl, keep)
    return cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)


def mask_box(m: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(m)
    if not len(xs):
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _yolo_line(cls: int, box, w: int, h: int) -> str:
    x0, y0, x1, y1 = box
    return f"{cls} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} {(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}"


def _background(rng: random.Random, size: int) -> Image.Image:
    """Varied backgrounds: flat, gradient, noise texture, stripes, checks (seeded)."""
    kind = rng.choice(("flat", "gradient", "noise", "stripes", "checks"))
    c1 = np.array([rng.randint(0, 255) for _ in range(3)], np.float32)
    c2 = np.array([rng.randint(0, 255) for _ in range(3)], np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == "flat":
        t = np.zeros((size, size), np.float32)
    elif kind == "gradient":
        ang = rng.random() * np.pi
        t = (np.cos(ang) * xx + np.sin(ang) * yy)
        t = (t - t.min()) / max(1e-6, t.max() - t.min())
    elif kind == "noise":
        g = np.random.default_rng(rng.randint(0, 2**31)).random((size // 16 + 1, size // 16 + 1)).astype(np.float32)
        t = np.asarray(Image.fromarray((g * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC),
                       np.float32) / 255
    elif kind == "stripes":
        t = ((xx * rng.randint(4, 20)) % 1 < 0.5).astype(np.float32) * 0.6
    else:
        n = rng.randint(4, 12)
        t = (((xx * n).astype(int) + (yy * n).astype(int)) % 2).astype(np.float32) * 0.5
    a = c1 * (1 - t[..., None]) + c2 * t[..., None]
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def _scene(rng: random.Random, cutouts: list[tuple[Image.Image, np.ndarray, int]], size: int):
    """Paste 2-5 cut-outs onto a background; boxes of parts still at least 40 % visible."""
    canvas = _background(rng, size)
    owner = np.full((size, size), -1, np.int16)
    placed = []
    for i, (im, m, cls) in enumerate(cutouts):
        box = mask_box(m)
        crop, mcrop = im.crop(box), Image.fromarray(m[box[1]:box[3], box[0]:box[2]].astype(np.uint8) * 255)
        s = rng.uniform(0.22, 0.5) * size / max(crop.size)
        cw, ch = max(8, round(crop.size[0] * s)), max(8, round(crop.size[1] * s))
        crop, mcrop = crop.resize((cw, ch), Image.Resampling.LANCZOS), mcrop.resize((cw, ch), Image.Resampling.NEAREST)
        x, y = rng.randint(0, size - cw), rng.randint(0, size - ch)
        canvas.paste(crop, (x, y), mcrop)
        mm = np.asarray(mcrop) > 127
        owner[y:y + ch, x:x + cw][mm] = i
        placed.append((cls, int(mm.sum())))
    lines = []
    for i, (cls, area) in enumerate(placed):
        vis = owner == i
        if area and vis.sum() >= 0.4 * area:
            lines.append(_yolo_line(cls, mask_box(vis), size, size))
    return canvas, lines


def _preview(root: Path, names: list[str], n: int = 12, tile: int = 256) -> None:
    """preview.png: a grid of training images with their boxes drawn, to check the labels by eye."""
    from PIL import ImageDraw
    imgs = sorted((root / "images" / "train").glob("scene_*"))[: n // 2]
    imgs += sorted(p for p in (root / "images" / "train").iterdir() if not p.name.startswith("scene_"))[: n - len(imgs)]
    if not imgs:
        return
    cols = 4
    sheet = Image.new("RGB", (cols * tile, -(-len(imgs) // cols) * tile), "white")
    for i, path in enumerate(imgs):
        im = Image.open(path).convert("RGB")
        im.thumbnail((tile, tile))
        d = ImageDraw.Draw(im)
        for line in (root / "labels" / "train" / f"{path.stem}.txt").read_text().split("\n"):
            if line.strip():
                c, cx, cy, w, h = line.split()
                W, H = im.size
                x0, y0 = (float(cx) - float(w) / 2) * W, (float(cy) - float(h) / 2) * H
                d.rectangle([x0, y0, x0 + float(w) * W, y0 + float(h) * H], outline=(255, 0, 0), width=2)
                d.text((x0 + 3, y0 + 2), names[int(c)], fill=(255, 0, 0))
        sheet.paste(im, ((i % cols) * tile, (i // cols) * tile))
    sheet.save(root / "preview.png")


def build_detect(out, *, scenes: int = 500, val_fraction: float = 0.15, shop: str | None = None, seed: int = 0,
                 size: int = 640, catalog=None) -> dict:
    """Write the YOLO detection dataset to `out`; returns counts."""
    from tqdm import tqdm

    from catalog import open_catalog
    from sketchshop.images import load_image
    if scenes < 0 or size < 64:
        raise UserError("--scenes must be >= 0 and --size >= 64")
    cat = catalog or open_catalog()
    products = _products(cat, shop)
    names = list(vocab.COARSE_CATEGORIES)
    rng = random.Random(seed)
    res = {"singles": 0, "scenes": 0, "boxes": 0, "skipped": 0}
    pools: dict[str, list] = {"train": [], "val": []}
    with replaced_dir(out, "data.yaml") as tmp:
        for split in ("train", "val"):
            (tmp / "images" / split).mkdir(parents=True)
            (tmp / "labels" / split).mkdir(parents=True)
        for p in tqdm(products, desc="dataset detect: photos", unit="product", disable=None):
            split = _split(p["group"], val_fraction, seed)
            cls = names.index(vocab.coarse(p["category"]))
            im_info = p["images"][0]
            src = cat.images.path(im_info["sha256"], im_info["path"])
            try:
                im = load_image(src) if src else None
            except UserError:
                im = None
            m = foreground_mask(im) if im is not None else None
            if m is None:
                res["skipped"] += 1
                continue
            stem = im_info["sha256"]
            _place(src, tmp / "images" / split / f"{stem}{src.suffix}")
            (tmp / "labels" / split / f"{stem}.txt").write_text(_yolo_line(cls, mask_box(m), *im.size) + "\n")
            res["singles"] += 1
            res["boxes"] += 1
            if len(pools[split]) < 400:   # cut-outs kept in memory for the scenes
                pools[split].append((im, m, cls))
        for k in tqdm(range(scenes), desc="dataset detect: scenes", unit="scene", disable=None):
            split = "val" if rng.random() < val_fraction and len(pools["val"]) >= 2 else "train"
            pool = pools[split] if len(pools[split]) >= 2 else pools["train"] + pools["val"]
            if len(pool) < 2:
                break
            picks = rng.sample(pool, min(len(pool), rng.randint(2, 5)))
            canvas, lines = _scene(rng, picks, size)
            canvas.save(tmp / "images" / split / f"scene_{k:06d}.jpg", quality=90)
            (tmp / "labels" / split / f"scene_{k:06d}.txt").write_text("\n".join(lines) + "\n")
            res["scenes"] += 1
            res["boxes"] += len(lines)
        _preview(tmp, names)
        (tmp / "data.yaml").write_text(
            f"# YOLO dataset built by `sketchshop dataset detect` from the catalogue\n"
            f"path: {Path(out).resolve()}\ntrain: images/train\nval: images/val\n"
            f"names:\n" + "".join(f"  {i}: {n}\n" for i, n in enumerate(names)))
    return res
