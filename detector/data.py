"""Training data for the detector in Ultralytics' YOLO layout, built under the data directory.

Source photos are symlinked, never copied: the real data stays in ../shared/data and nothing
derived from it enters the repository. The validation split is chosen by photo id with a fixed
seed, so every run (and `train detector` reproducing the shipped model) sees the same split.
"""
from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path

from sketchshop import vocab
from sketchshop.datasets import read_coco
from sketchshop.errors import UserError
from sketchshop.files import atomic_dir, atomic_write

log = logging.getLogger(__name__)

NAMES = list(vocab.COARSE_CATEGORIES)  # YOLO class index -> coarse name
VAL_SEED = 0
VAL_N = 70
STUDIO_SEED = 5  # studio products for training; the product-box figures use seeds 11, 23 and 31


def split_ids(ids, val_n: int = VAL_N, seed: int = VAL_SEED) -> tuple[list[int], list[int]]:
    """(train ids, val ids): `val_n` ids drawn with random.Random(seed) from the sorted ids."""
    ids = sorted(ids)
    if len(ids) <= val_n:
        raise UserError(f"only {len(ids)} images: cannot hold out {val_n} for validation")
    val = set(random.Random(seed).sample(ids, val_n))
    return [i for i in ids if i not in val], sorted(val)


def yolo_line(cls: int, box, width: float, height: float) -> str:
    """One YOLO label line `cls cx cy w h` (normalised) for an xyxy pixel box."""
    x1, y1, x2, y2 = box
    return (f"{cls} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
            f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}")


def yolo_lines(im) -> list[str]:
    """Label lines for one CocoImage; boxes clipped to the image."""
    out = []
    for (x, y, w, h), lab in zip(im.boxes, im.labels):
        x1, y1 = max(0.0, x), max(0.0, y)
        x2, y2 = min(float(im.width), x + w), min(float(im.height), y + h)
        if x2 - x1 < 1 or y2 - y1 < 1:
            continue
        out.append(yolo_line(NAMES.index(lab), (x1, y1, x2, y2), im.width, im.height))
    return out


def _write_split(root: Path, split: str, images) -> None:
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    for im in images:
        if not im.path.is_file():
            raise UserError(f"{im.path}: image listed in the COCO json is missing")
        stem = f"{im.id:06d}"
        os.symlink(im.path.resolve(), root / "images" / split / f"{stem}{im.path.suffix.lower()}")
        (root / "labels" / split / f"{stem}.txt").write_text("\n".join(yolo_lines(im)) + "\n")


def subset_coco(coco_json: Path, ids, out: Path) -> Path:
    """Write the COCO json restricted to image `ids` (for `eval detector` on the held-out split)."""
    data = json.loads(Path(coco_json).read_text())
    keep = set(ids)
    data["images"] = [im for im in data["images"] if im["id"] in keep]
    data["annotations"] = [a for a in data.get("annotations", []) if a["image_id"] in keep]
    with atomic_write(out) as f:
        json.dump(data, f)
    return out


def build_ccp(coco_json, images_dir, out_dir, *, val_n: int = VAL_N, seed: int = VAL_SEED,
              extra_train: list[Path] = ()) -> Path:
    """Build `out_dir/{images,labels}/{train,val}` plus `data.yaml`; returns the yaml path.

    `extra_train` are further YOLO image folders (e.g. composited scenes) added to training only.
    """
    coco_json, out_dir = Path(coco_json), Path(out_dir)
    images = read_coco(coco_json, images_dir)
    if not images:
        raise UserError(f"{coco_json}: no images")
    train_ids, val_ids = split_ids([im.id for im in images], val_n, seed)
    split = {"seed": seed, "val_n": val_n, "val_ids": val_ids, "source": str(coco_json.resolve()),
             "images": str(Path(images_dir).resolve())}
    old = out_dir / "split.json"
    if old.is_file() and json.loads(old.read_text()) == split and (out_dir / "images" / "train").is_dir():
        write_yaml(out_dir, extra_train)  # same data and split: keep it (a running training may use it)
        return out_dir / "data.yaml"
    by_id = {im.id: im for im in images}
    with atomic_dir(out_dir) as tmp:
        _write_split(tmp, "train", [by_id[i] for i in train_ids])
        _write_split(tmp, "val", [by_id[i] for i in val_ids])
        (tmp / "split.json").write_text(json.dumps(split, indent=1))
        subset_coco(coco_json, val_ids, tmp / "val_coco.json")
    write_yaml(out_dir, extra_train)
    log.info("YOLO dataset in %s: %d train, %d val photos", out_dir, len(train_ids), len(val_ids))
    return out_dir / "data.yaml"


def write_yaml(root: Path, extra_train=()) -> Path:
    import yaml
    train = [str((root / "images" / "train").resolve())] + [str(Path(p).resolve()) for p in extra_train]
    doc = {"path": str(root.resolve()), "train": train if len(train) > 1 else train[0],
           "val": str((root / "images" / "val").resolve()), "names": dict(enumerate(NAMES))}
    with atomic_write(root / "data.yaml") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    return root / "data.yaml"


def is_built(out_dir: Path, stamp: dict) -> bool:
    """Whether `out_dir` was written by `write_folder` from these same inputs."""
    f = Path(out_dir) / "stamp.json"
    return f.is_file() and json.loads(f.read_text()) == stamp


def write_folder(out_dir, stamp: dict, samples, *, desc: str, total: int) -> Path:
    """A YOLO image folder (`images/`, `labels/`) written atomically from `samples`, which yield
    (image file name, put(path) writing or linking the image there, label lines), and stamped with
    `stamp` for `is_built`. Returns the images folder."""
    from tqdm import tqdm
    out_dir, n = Path(out_dir), 0
    with atomic_dir(out_dir) as tmp:
        (tmp / "images").mkdir()
        (tmp / "labels").mkdir()
        for name, put, lines in tqdm(samples, total=total, desc=desc, unit="img"):
            put(tmp / "images" / name)
            (tmp / "labels" / f"{Path(name).stem}.txt").write_text("".join(line + "\n" for line in lines))
            n += 1
        (tmp / "stamp.json").write_text(json.dumps(stamp))
    log.info("%s: %d images in %s", desc, n, out_dir)
    return out_dir / "images"


def build_products(folder, out_dir, n: int = 600, seed: int = VAL_SEED) -> Path:
    """A YOLO image folder of single-product photos (class folders), one box each: the product.

    Shop and catalogue images are one garment on a plain background; street photos alone teach
    the detector nothing about them (it found no box in 297 of 341 product shots). The box is the
    GrabCut foreground box, the same definition `eval detector --products` scores against; `n`
    photos are drawn evenly across the class folders with a fixed seed. Returns the images folder.
    """
    from sketchshop.datasets import IMAGE_EXTS
    from sketchshop.images import load_image

    from .evaluate import foreground_box_grabcut
    folder = Path(folder)
    photos = []
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        try:
            cls = NAMES.index(vocab.coarse(d.name))
        except vocab.VocabError:
            raise UserError(f"{d}: folder name is not a garment category") from None
        photos += [(p, cls) for p in sorted(d.iterdir()) if p.suffix.lower() in IMAGE_EXTS]
    if not photos:
        raise UserError(f"{folder}: no class folders with images")
    photos = sorted(random.Random(seed).sample(photos, min(n, len(photos))))
    stamp = {"source": str(folder.resolve()), "n": len(photos), "seed": seed}
    if is_built(out_dir, stamp):
        return Path(out_dir) / "images"

    def samples():
        for i, (p, cls) in enumerate(photos):
            im = load_image(p)
            yield (f"p{i:05d}{p.suffix.lower()}", lambda path, p=p: os.symlink(p.resolve(), path),
                   [yolo_line(cls, foreground_box_grabcut(im), *im.size)])
    return write_folder(out_dir, stamp, samples(), desc="product boxes (GrabCut)", total=len(photos))


def build_studio_products(out_dir, n: int = 400, seed: int = STUDIO_SEED) -> Path:
    """A YOLO image folder of `n` studio product renders, one box each: the bounding box of the render's mask.

    Shop photos of patterned garments (plaid, stripes, prints) on a plain backdrop got no box at all from a
    detector that saw only the home photos of `build_products`; the studio paints every pattern and colour
    on shop backdrops, with exact masks. The seed is kept apart from the studio sets the product-box figures
    are measured on (the detector card). Returns the images folder.
    """
    import numpy as np

    from sketchshop.studio import generate_products
    stamp = {"source": "studio", "n": n, "seed": seed}
    if is_built(out_dir, stamp):
        return Path(out_dir) / "images"

    def samples():
        for p in generate_products(n, seed):
            ys, xs = np.nonzero(np.asarray(p.mask) > 127)
            if len(xs):
                box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
                yield (f"{p.id}.jpg", lambda path, im=p.image: im.save(path, quality=92),
                       [yolo_line(NAMES.index(p.coarse), box, *p.image.size)])
    return write_folder(out_dir, stamp, samples(), desc="studio products", total=n)
