"""The fixed image sets for parity checks and int8 calibration.

Parity uses held-out images (clothing-small/validation, the detector's own ccp-train validation
split); calibration uses training images (clothing-small/train, the ccp-train training split),
so an int8 model is never judged on the images it was calibrated on. Drawings come from the
studio (sketches with hints) and from the classifier's own photo-to-sketch function.

When the real data is absent, photos are replaced by studio renders and the manifest says so
(`"calibration": "studio renders (real data absent)"`): static int8 ranges from synthetic photos
are a fallback, not a recommendation.
"""
from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from sketchshop.config import PROJECT_ROOT

log = logging.getLogger(__name__)

STUDIO_SEED = 8008  # a seed of its own: these renders are not the classifier's training products


def shared_data(root: str | os.PathLike | None = None) -> Path | None:
    """The real data root (../shared/data or SKETCHSHOP_SHARED_DATA), or None when absent."""
    p = Path(root or os.environ.get("SKETCHSHOP_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
    return p if p.is_dir() else None


@dataclass
class ImageSet:
    """Images with a description of where they came from (goes into the manifest)."""
    images: list = field(default_factory=list)     # PIL images or model-specific records
    source: list[str] = field(default_factory=list)

    def add(self, items, what: str):
        items = list(items)
        if items:
            self.images += items
            self.source.append(f"{len(items)} {what}")

    def describe(self) -> str:
        return ", ".join(self.source)


def _spread(paths: list[Path], n: int) -> list[Path]:
    """`n` paths spread evenly over a sorted list (deterministic, covers every class folder)."""
    paths = sorted(paths)
    if len(paths) <= n:
        return paths
    step = len(paths) / n
    return [paths[int(i * step)] for i in range(n)]


def _per_class(root: Path, per_class: int) -> list[Path]:
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        out += _spread([p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")], per_class)
    return out


def clothing_photos(split: str, per_class: int, data=None) -> list[tuple[Path, Image.Image]]:
    root = shared_data(data)
    folder = root / "clothing-small" / split if root else None
    if not folder or not folder.is_dir():
        return []
    from sketchshop.images import load_image
    return [(p, load_image(p)) for p in _per_class(folder, per_class)]


def studio(n: int, offset: int = 0, size: int = 320):
    from sketchshop.studio import render_product
    return [render_product(STUDIO_SEED, offset + i, size=size) for i in range(n)]


def xdog_sketch(image: Image.Image, seed: int) -> Image.Image:
    """A line drawing of a photo, made by the classifier's own training-time sketcher."""
    import numpy as np
    from classifier.data import photo_to_sketch
    return Image.fromarray(photo_to_sketch(np.asarray(image.convert("RGB")), random.Random(seed)))


def classifier_images(purpose: str, data=None) -> ImageSet:
    """Photos and drawings for the classifier: 'parity' (held out) or 'calibration' (training)."""
    s = ImageSet()
    # parity: 250 photos + 60 drawings, so that the 98 % int8 agreement bar is judged on more than a
    # handful of flips (at 140 items one flip moved it by 0.7 points, a third of the margin)
    split, per_class, n_sketch, offset = (("validation", 25, 30, 0) if purpose == "parity"
                                          else ("train", 10, 24, 100))
    photos = clothing_photos(split, per_class, data)
    if photos:
        s.add([im for _, im in photos], f"clothing-small/{split} photos")
        s.add([xdog_sketch(im, i) for i, (_, im) in enumerate(photos[::max(1, len(photos) // n_sketch)][:n_sketch])],
              f"XDoG drawings of clothing-small/{split} photos")
    else:
        s.add([p.image for p in studio(40, offset)], "studio renders (real data absent)")
    s.add([p.sketch for p in studio(n_sketch, offset + 50)], "studio sketches")
    return s


def detector_photos(purpose: str, n: int, data=None) -> ImageSet:
    """ccp-train photos with ground truth: the detector's fixed validation split for parity,
    its training split for calibration. Records are (image id, PIL image, truth (M, 5) xyxy+class)."""
    import numpy as np
    s = ImageSet()
    root = shared_data(data)
    coco = root / "ccp-train" / "annotations_coco.json" if root else None
    if coco and coco.is_file():
        from detector.data import NAMES, split_ids
        from sketchshop.datasets import read_coco
        from sketchshop.images import load_image
        images = {im.id: im for im in read_coco(coco, coco.parent)}
        train_ids, val_ids = split_ids(list(images))
        ids = val_ids[:n] if purpose == "parity" else _spread(train_ids, n)
        recs = []
        for i in ids:
            im = images[i]
            truth = np.array([[x, y, x + w, y + h, NAMES.index(lab)] for (x, y, w, h), lab in zip(im.boxes, im.labels)],
                             np.float64).reshape(-1, 5)
            recs.append((i, load_image(im.path), truth))
        s.add(recs, f"ccp-train {'validation' if purpose == 'parity' else 'training'} split photos "
                    "(detector.data.split_ids)")
    else:
        recs = [(i, p.image, None) for i, p in enumerate(studio(n, 200 if purpose == "parity" else 300, 416))]
        s.add(recs, "studio renders (real data absent)")
    return s


def colorizer_inputs(purpose: str, size: int, data=None) -> ImageSet:
    """(sketch L uint8 HxW, hints RGBA HxWx4, category index) records at the colouriser's size.

    Real photos are cut out and sketched exactly as the colouriser's trainer and eval do
    (segment_garment, make_sketch without randomness, sample_hints); studio products bring
    their own drawn sketch and hints.
    """
    import numpy as np
    from colorizer.data import make_sketch, sample_hints, segment_garment, to_canvas
    from colorizer.pairs import category_index
    s = ImageSet()
    split, per_class, n_studio, offset = (("validation", 1, 6, 400) if purpose == "parity"
                                          else ("train", 2, 12, 500))
    recs = []
    for i, (p, im) in enumerate(clothing_photos(split, per_class, data)):
        target, mask = segment_garment(im, size)
        sk = np.asarray(make_sketch(target, mask), np.uint8)
        hints = np.asarray(sample_hints(target, mask, n=30, rng=i), np.uint8)
        recs.append((sk, hints, category_index(p.parent.name)))
    s.add(recs, f"clothing-small/{split} photos (cut out, sketched, 30 hint dots)")
    recs = []
    for p in studio(n_studio, offset, 320):
        sk = to_canvas(np.asarray(p.sketch.convert("L")), size, 255)
        hints = to_canvas(np.asarray(p.hints), size, 0, interp=0)  # nearest: keep hint colours exact
        recs.append((sk, hints, category_index(p.category)))
    s.add(recs, "studio sketches with hints")
    return s
