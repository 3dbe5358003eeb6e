"""Copy-paste scenes: training photos with garments cut from other training photos pasted in.

The street photos hold few shorts (41 boxes), hats (79) and skirts (110). Pasting instances cut
out along their pixel masks (Ghiasi et al., "Simple Copy-Paste", 2021) gives the detector more of
them in new surroundings and partly hidden, without inventing anything a real photo could not
show. Rare classes are drawn more often (weight 1/sqrt(count)). A garment keeps its height in the
frame (hats stay high, shoes low) and moves sideways. Every box of the scene is recomputed from
what stays visible, and a garment mostly covered by a pasted one loses its box.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sketchshop import vocab
from sketchshop.errors import UserError

from .data import NAMES, is_built, write_folder, yolo_line

MIN_VISIBLE = 0.35  # a garment with less of its pixels left visible loses its box
MIN_PIXELS = 150    # the dataset's own threshold for a blob to get a box


@dataclass
class Instance:
    image_id: int
    cls: int
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive)
    mask: np.ndarray                # bool, the box's size


def instance(ann: dict, labels: np.ndarray, coarse_of: dict[int, str], fine_ids: dict[str, int]) -> Instance | None:
    """The annotation's pixels: its fine label inside its box (how the dataset drew the box)."""
    x, y, w, h = (int(round(v)) for v in ann["bbox"])
    x1, y1 = max(0, x), max(0, y)
    x2, y2 = min(labels.shape[1], x + w + 1), min(labels.shape[0], y + h + 1)
    fine = fine_ids.get(ann.get("fine_label", ""))
    if fine is None or x2 <= x1 or y2 <= y1:
        return None
    mask = labels[y1:y2, x1:x2] == fine
    if mask.sum() < MIN_PIXELS:
        return None
    return Instance(ann["image_id"], NAMES.index(coarse_of[ann["category_id"]]), (x1, y1, x2, y2), mask)


def _load(data: dict, images_dir: Path, ids: set[int]):
    from PIL import Image
    fine_ids = {n: i for i, n in enumerate(data["fine_label_names"])}
    coarse_of = {c["id"]: vocab.coarse(c["name"]) for c in data["categories"]}
    by_image: dict[int, list[dict]] = {}
    for a in data["annotations"]:
        if a["image_id"] in ids:
            by_image.setdefault(a["image_id"], []).append(a)
    photos, insts = {}, {}
    for im in data["images"]:
        if im["id"] not in ids:
            continue
        labels = np.asarray(Image.open(images_dir / im["mask_file"]))
        photos[im["id"]] = images_dir / im["file_name"]
        insts[im["id"]] = [i for a in by_image.get(im["id"], []) if (i := instance(a, labels, coarse_of, fine_ids))]
    return photos, insts


def compose(base: np.ndarray, base_insts: list[Instance], pasted: list[tuple[Instance, np.ndarray]],
            rng: random.Random) -> tuple[np.ndarray, list[tuple[int, tuple[int, int, int, int]]]]:
    """Paste each (instance, its source photo) into `base`; returns the image and (class, box) pairs."""
    import cv2
    h, w = base.shape[:2]
    out = base.copy()
    owner = np.full((h, w), -1, np.int32)  # which instance each pixel shows
    every = list(base_insts)
    for k, inst in enumerate(base_insts):
        x1, y1, x2, y2 = inst.box
        owner[y1:y2, x1:x2][inst.mask] = k
    for inst, src in pasted:
        x1, y1, x2, y2 = inst.box
        patch, mask = src[y1:y2, x1:x2], inst.mask
        s = rng.uniform(0.8, 1.2)
        pw, ph = max(1, round((x2 - x1) * s)), max(1, round((y2 - y1) * s))
        if pw >= w or ph >= h:
            continue
        patch = cv2.resize(patch, (pw, ph), interpolation=cv2.INTER_LINEAR)
        mask = cv2.resize(mask.astype(np.uint8), (pw, ph), interpolation=cv2.INTER_NEAREST).astype(bool)
        if rng.random() < 0.5:
            patch, mask = patch[:, ::-1], mask[:, ::-1]
        nx = rng.randrange(0, w - pw)
        ny = min(max(0, y1 + round(rng.uniform(-0.1, 0.1) * h)), h - ph)
        alpha = cv2.GaussianBlur(mask.astype(np.float32), (3, 3), 0)[..., None]  # a soft 1-px edge
        region = out[ny:ny + ph, nx:nx + pw].astype(np.float32)
        out[ny:ny + ph, nx:nx + pw] = (alpha * patch + (1 - alpha) * region).round().astype(np.uint8)
        owner[ny:ny + ph, nx:nx + pw][mask] = len(every)
        every.append(Instance(-1, inst.cls, (nx, ny, nx + pw, ny + ph), mask))
    boxes = []
    for k, inst in enumerate(every):
        x1, y1, x2, y2 = inst.box
        visible = owner[y1:y2, x1:x2] == k
        n = int(visible.sum())
        if n < MIN_PIXELS or n < MIN_VISIBLE * inst.mask.sum():
            continue
        ys, xs = np.nonzero(visible)
        boxes.append((inst.cls, (x1 + int(xs.min()), y1 + int(ys.min()), x1 + int(xs.max()) + 1, y1 + int(ys.max()) + 1)))
    return out, boxes


def build_copy_paste(coco_json, images_dir, train_ids, out_dir, n: int = 600, per_scene: tuple[int, int] = (1, 3),
                     seed: int = 0) -> Path:
    """A YOLO image folder of `n` copy-paste scenes made from the `train_ids` photos only; returns it.

    Needs the dataset's pixel masks (`mask_file` and `fine_label_names` in the COCO json, as in
    Clothing Co-Parsing). Rebuilt only when its inputs change.
    """
    from PIL import Image
    coco_json, images_dir, out_dir = Path(coco_json), Path(images_dir), Path(out_dir)
    data = json.loads(coco_json.read_text())
    if "fine_label_names" not in data or not all("mask_file" in im for im in data["images"]):
        raise UserError(f"{coco_json}: copy-paste needs pixel masks (mask_file per image, fine_label_names); "
                        "train without it with --copy-paste 0")
    stamp = {"source": str(coco_json.resolve()), "n": n, "per_scene": list(per_scene), "seed": seed,
             "train_ids": sorted(train_ids)}
    if is_built(out_dir, stamp):
        return out_dir / "images"
    photos, insts = _load(data, images_dir, set(train_ids))
    bank = [i for v in insts.values() for i in v]
    counts = np.bincount([i.cls for i in bank], minlength=len(NAMES))
    weights = [1 / np.sqrt(counts[i.cls]) for i in bank]
    rng = random.Random(seed)
    base_ids = sorted(photos)

    def samples():
        for j in range(n):
            base_id = rng.choice(base_ids)
            chosen = [i for i in rng.choices(bank, weights, k=rng.randint(*per_scene)) if i.image_id != base_id]
            base = np.asarray(Image.open(photos[base_id]).convert("RGB"))
            pasted = [(i, np.asarray(Image.open(photos[i.image_id]).convert("RGB"))) for i in chosen]
            img, boxes = compose(base, insts[base_id], pasted, rng)
            h, w = img.shape[:2]
            yield (f"cp{j:05d}.jpg", lambda path, img=img: Image.fromarray(img).save(path, quality=92),
                   [yolo_line(c, b, w, h) for c, b in boxes])
    return write_folder(out_dir, stamp, samples(), desc="copy-paste scenes", total=n)
