"""Garments cut out of street photos (a COCO json with coarse boxes and their `fine_label`, like ccp-train).

Product photos alone left the classifier at 0.52 coarse top-1 on garments the detector finds in street
photos, and it had never seen a real bag. Each box is cropped the way the search crops a detected
garment (`detector.infer.crop` with `CLASSIFY_MARGIN`). Labels go through the shared vocabulary; when
the dataset's own coarse class disagrees with it (a "vest" is a top there, outerwear here) or names no
fine category ("top", "bodysuit"), the item keeps only its coarse label and trains the category head
through the summed probability of that coarse group.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from sketchshop import vocab
from sketchshop.errors import UserError

from . import data as D

log = logging.getLogger(__name__)
MIN_SIDE = 16  # px; smaller boxes (a far-away shoe) are not worth a training view
COARSE_INDEX = {c: i for i, c in enumerate(vocab.COARSE_CATEGORIES)}


def labels_of(fine_label: str, coarse: str) -> tuple[int, int]:
    """(fine index or -1, coarse index) for one box."""
    try:
        fine = vocab.category(fine_label, allow_coarse=False)
    except vocab.VocabError:
        fine = None
    if fine is None or vocab.coarse(fine) != coarse:
        fine = coarse if coarse in vocab.FINE_CATEGORIES else None  # coarse == fine except for tops
    return (D.CAT_INDEX[fine] if fine else -1), COARSE_INDEX[coarse]


def load_street(coco_json, split: str = "train", images_dir=None) -> list[D.Item]:
    """Crops of the `split` photos ("train" or "val": the detector's held-out ids, never trained on)."""
    from tqdm import tqdm

    from detector.data import split_ids
    from detector.infer import CLASSIFY_MARGIN, crop
    coco_json = Path(coco_json)
    if not coco_json.is_file():
        raise UserError(f"{coco_json}: street COCO json not found")
    try:
        d = json.loads(coco_json.read_text())
        cats = {c["id"]: c["name"] for c in d["categories"]}
        images = {im["id"]: im for im in d["images"]}
        anns = d["annotations"]
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{coco_json}: not a COCO json with categories, images and annotations ({e})") from None
    train_ids, val_ids = split_ids(sorted(images))
    keep = set(val_ids if split == "val" else train_ids)
    root = Path(images_dir) if images_dir else coco_json.parent
    by_image: dict[int, list] = {}
    for a in anns:
        if a["image_id"] in keep and cats.get(a["category_id"]) in COARSE_INDEX:
            by_image.setdefault(a["image_id"], []).append(a)
    out, skipped = [], 0
    for image_id in tqdm(sorted(by_image), desc=f"street crops ({split})", unit="photo", mininterval=5):
        name = images[image_id]["file_name"]
        path = root / name if (root / name).is_file() else root / "photos" / Path(name).name
        try:
            photo = Image.open(path).convert("RGB")
        except OSError as e:
            log.warning("skipping %s: %s", path, e)
            continue
        for a in by_image[image_id]:
            x, y, w, h = a["bbox"]
            if min(w, h) < MIN_SIDE:
                skipped += 1
                continue
            im = crop(photo, (x, y, x + w, y + h), CLASSIFY_MARGIN)
            im.thumbnail((D.CACHE_SIDE, D.CACHE_SIDE), Image.BILINEAR)
            fine, coarse = labels_of(a.get("fine_label", ""), cats[a["category_id"]])
            out.append(D.Item(np.asarray(im), fine, coarse=coarse, source="street"))
    log.info("%d street crops (%s), %d boxes under %d px skipped", len(out), split, skipped, MIN_SIDE)
    return out
