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


def masked_garments(coco, ids=None, desc: str = "garments", root=None):
    """(photo record, annotation, coarse category, its box (x, y, w, h) in whole pixels, the garment's pixels
    in that box as a bool mask) for every box of a COCO json whose images name a `mask_file` label map with `fine_label_names` (Clothing
    Co-Parsing): a person's annotation of the garment, not a segmenter's guess. The mask is None when the
    box's fine label is not in the list. `ids`: only these image ids (e.g. the detector's held-out photos);
    `root`: the folder the json's file names are relative to (default: the json's)."""
    from tqdm import tqdm
    coco = Path(coco)
    try:
        data = json.loads(coco.read_text())
        names, cats = data["fine_label_names"], {c["id"]: c["name"] for c in data["categories"]}
        images = {im["id"]: im for im in data["images"] if ids is None or im["id"] in ids}
        boxes = sorted((a for a in data["annotations"] if a["image_id"] in images), key=lambda a: a["image_id"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{coco}: not a COCO json with fine_label_names and mask_file ({e})") from None
    labels, labels_of, root = None, None, Path(root or coco.parent)
    for a in tqdm(boxes, desc=desc, unit="box"):
        im = images[a["image_id"]]
        if labels_of != im["id"]:  # one label map per photo, however many garments it has
            try:
                labels, labels_of = np.asarray(Image.open(root / im["mask_file"])), im["id"]
            except (OSError, KeyError) as e:
                raise UserError(f"{coco}: image {im['id']}: no readable mask_file ({e})") from None
            if labels.ndim != 2:  # a label map is one channel of class indices (a JPEG would blur them anyway)
                raise UserError(f"{coco}: image {im['id']}: mask_file {im['mask_file']} is not a one-channel label map")
        x, y, w, h = (int(round(v)) for v in a["bbox"])
        mask = labels[y:y + h, x:x + w] == names.index(a["fine_label"]) if a.get("fine_label") in names else None
        yield im, a, vocab.coarse(cats[a["category_id"]]), (x, y, w, h), mask


def worn_dataset(out_dir, coco, ids=None, min_side: int = 48, root=None) -> dict:
    """Crops of annotated garments as the search crops them, with a labels CSV (file, category, colour)
    for `sketchshop eval classifier [--detect]`: colour on a person, where the border model's foreground
    also holds skin, hair and the other garments. The colour label is the name of the dominant colour of
    the garment's own annotated pixels, measured like the product measures (`colour.measured_colour`
    with the mask), so it tests which pixels are read, not how they are named."""
    import csv

    from detector.infer import CLASSIFY_MARGIN, crop_rect
    from sketchshop.files import replaced_dir

    from .colour import dominant_colour
    out = Path(out_dir)
    root, rows, skipped, photo, photo_of = Path(root or Path(coco).parent), [], 0, None, None
    with replaced_dir(out, "labels.csv") as tmp:  # the whole set or nothing
        for im, a, category, (x, y, w, h), mask in masked_garments(coco, ids, "worn garments", root):
            if mask is None or max(w, h) < min_side or mask.sum() < min_side ** 2 / 4:
                skipped += 1
                continue
            if photo_of != im["id"]:
                try:
                    photo, photo_of = Image.open(root / im["file_name"]).convert("RGB"), im["id"]
                except OSError as e:
                    raise UserError(f"{root / im['file_name']}: cannot read ({e})") from None
            c = crop_rect(photo.size, (x, y, x + w, y + h), CLASSIFY_MARGIN)
            piece = photo.crop(c)
            inside = np.zeros((c[3] - c[1], c[2] - c[0]), bool)
            inside[y - c[1]: y - c[1] + mask.shape[0], x - c[0]: x - c[0] + mask.shape[1]] = mask
            colour, _ = dominant_colour(piece, inside)
            name = f"{im['id']:04d}_{a['id']}.jpg"
            piece.save(tmp / name, quality=95)
            rows.append((name, category, colour))
        if not rows:
            raise UserError(f"no garment could be cut out of the input ({skipped} skipped; see the warnings above)")
        with open(tmp / "labels.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "category", "colour"])
            w.writerows(rows)
    return {"garments": len(rows), "skipped": skipped, "labels": str(out / "labels.csv")}
