"""The query pipeline: a photo or a sketch in, ranked catalogue products per garment out.

photo:  detect -> classify each crop -> search
sketch: colourise (when it has hints) -> classify sketch and colourised image -> search

`describe_photo` is also what the index builder runs on every product image, so index-time
and query-time preprocessing are one code path. Models load once per process (`Searcher.load`).
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from classifier.data import drawing_frame
from detector.infer import classifier_inputs
from sketchshop import vocab
from sketchshop.config import settings
from sketchshop.images import as_drawing, require_ink

from .index import Filters, Query, SearchIndex

log = logging.getLogger(__name__)

DESCRIBE_VERSION = 11  # part of the index builder's cache key: bump when describe_photo changes


@dataclass
class Described:
    """One garment as the models see it."""
    box: list[float] | None          # x1, y1, x2, y2 in the input image; None for a whole sketch
    whole_image: bool
    detector_category: str | None
    detector_confidence: float | None
    prediction: dict                  # Classifier.predict output for the crop
    crop: Image.Image | None = None

    def query(self) -> Query:
        p = self.prediction
        attrs = {k: (v["value"], float(v["p"])) for k, v in p.get("attributes", {}).items()}
        return Query(np.asarray(p["embedding"], np.float32), p["category"], float(p["category_p"]),
                     p.get("colour"), float(p.get("colour_p", 0.0)), attrs,
                     {c: float(q) for c, q in p.get("topk", [])})


@dataclass
class Timer:
    ms: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - t) * 1000


def sketch_likeness(image: Image.Image) -> float:
    """Share of near-white pixels: line drawings are mostly empty canvas, photos are not."""
    a = np.asarray(image.convert("L").resize((64, 64)), dtype=np.uint8)
    return float((a > 235).mean())


def hint_layer(hints, size: tuple[int, int]) -> Image.Image | None:
    """JSON hint points [{"x", "y", "rgb"}] as the RGBA layer the classifier reads; layers pass through."""
    if hints is None or isinstance(hints, Image.Image):
        return hints
    from PIL import ImageDraw
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    r = max(3, round(max(size) / 100))
    for p in hints:
        draw.ellipse((p["x"] - r, p["y"] - r, p["x"] + r, p["y"] + r), fill=tuple(p["rgb"]) + (255,))
    return layer


def crop_hints(hints, size: tuple[int, int], box) -> Image.Image | list | None:
    """Hints (a layer for a canvas of `size`, or JSON points) for the crop `box` of that canvas."""
    if hints is None:
        return None
    if isinstance(hints, Image.Image):
        return (hints if hints.size == size else hints.resize(size, Image.NEAREST)).crop(box)
    return [{**p, "x": p["x"] - box[0], "y": p["y"] - box[1]} for p in hints]


def guess_kind(image: Image.Image) -> str:
    return "sketch" if sketch_likeness(as_drawing(image, paper=False)) > 0.80 else "photo"


class Searcher:
    def __init__(self, classifier, detector=None, colorizer=None, index: SearchIndex | None = None):
        self.classifier, self.detector, self.colorizer, self.index = classifier, detector, colorizer, index

    @classmethod
    def load(cls, *, with_index: bool = True, with_colorizer: bool = True) -> "Searcher":
        """Load every model once. Raises UserError naming what is missing or corrupt."""
        from classifier import Classifier
        from detector import Detector
        clf = Classifier.load()
        det = Detector.load()
        col = None
        if with_colorizer:
            from colorizer import Colorizer
            col = Colorizer.load()
        idx = SearchIndex.open(settings().data_dir / "index") if with_index else None
        return cls(clf, det, col, idx)

    def warm_up(self) -> None:
        """Run every model once on a drawn garment, photo and sketch, so that the first user's request does
        not pay for ONNX Runtime's first runs (about 100 ms of a photo search's first 130 ms)."""
        from PIL import ImageDraw
        drawing = Image.new("RGB", (256, 256), "white")
        ImageDraw.Draw(drawing).polygon([(70, 40), (186, 40), (220, 110), (186, 120), (186, 220), (70, 220),
                                         (70, 120), (36, 110)], outline="black", width=3)
        photo = drawing.copy()
        ImageDraw.Draw(photo).polygon([(72, 42), (184, 42), (184, 218), (72, 218)], fill=(180, 40, 40))
        self.describe_photo(photo)
        self.describe_sketch(drawing, [{"x": 128, "y": 130, "rgb": [180, 40, 40]}])

    # ---- describing ----
    def describe_photo(self, image: Image.Image, timer: Timer | None = None) -> list[Described]:
        timer = timer or Timer()
        with timer.stage("detect"):
            found = self.detector.predict(image)
        with timer.stage("classify"):
            crops, priors, boxes = classifier_inputs(image, found)
            preds = self.classifier.predict(crops, kind="photo", priors=priors, boxes=boxes) if found else []
        return [Described([float(v) for v in f["box"]], bool(f.get("whole_image")), f.get("category"),
                          f.get("confidence"), p, f["crop"]) for f, p in zip(found, preds)]

    def describe_sketch(self, image: Image.Image, hints=None, timer: Timer | None = None,
                        category: str | None = None) -> tuple[Described, Image.Image | None]:
        timer = timer or Timer()
        image = require_ink(as_drawing(image))
        box = drawing_frame(image)
        if box is not None:  # colourise and classify the strokes at the scale the models learnt drawings at
            image, hints = image.crop(box), crop_hints(hints, image.size, box)
        coloured = None
        if hints is not None and self.colorizer is not None:
            with timer.stage("colorize"):
                coloured = self.colorizer.colorize(image, hints=hints, category=category, square=True)
        with timer.stage("classify"):
            layer = hint_layer(hints, image.size)
            if coloured is None:
                (pred,) = self.classifier.predict([image], kind="sketch", hints=[layer])
            else:  # the colourised image runs in int8 where that pays. Both take the hints' colour (no measuring).
                pred, photo = self.classifier.predict([image, coloured], kind=["sketch", "colourised"],
                                                      hints=[layer, layer])
                pred = merge_predictions(pred, photo)
        return Described(None, True, None, None, pred, image), coloured

    # ---- searching ----
    def search(self, image: Image.Image, *, kind: str | None = None, hints=None, top_k: int = 10,
               filters: Filters | None = None) -> dict:
        timer = Timer()
        t0 = time.perf_counter()
        kind = kind or guess_kind(image)
        if kind == "sketch":
            items = [self.describe_sketch(image, hints, timer)[0]]
        else:
            items = self.describe_photo(image, timer)
        with timer.stage("search"):
            index = self.index
            results = [(d, index.search(d.query(), top_k, filters)) for d in items]
        timer.ms["total"] = (time.perf_counter() - t0) * 1000
        return {"kind": kind, "items": results, "timing_ms": {k: round(v, 2) for k, v in timer.ms.items()}}


def merge_predictions(sketch: dict, photo: dict) -> dict:
    """Sketch and colourised-image predictions averaged; the colour stays the hints' colour."""
    out = dict(sketch)
    if photo["category"] == sketch["category"]:
        out["category_p"] = (sketch["category_p"] + photo["category_p"]) / 2
    elif photo["category_p"] > sketch["category_p"]:
        out["category"], out["category_p"] = photo["category"], photo["category_p"] / 2
        out["attributes"] = {a: v for a, v in photo.get("attributes", {}).items()
                             if a in vocab.attributes_for(out["category"])}
    e = np.asarray(sketch["embedding"], np.float32) + np.asarray(photo["embedding"], np.float32)
    out["embedding"] = e / (np.linalg.norm(e) or 1.0)
    return out
