"""ONNX Runtime inference for the garment detector: the one letterbox and the one decoder.

The server loads a Detector once per process and calls `predict` per photo. Pre- and
post-processing mirror Ultralytics (LetterBox with grey 114 padding, `scale_boxes`, class-aware
NMS for heads that need it) so boxes match Ultralytics' own predictions (tests/test_detector.py).
"""
from __future__ import annotations

import functools
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from sketchshop import vocab
from sketchshop.errors import UserError
from sketchshop.images import convert, load_image

log = logging.getLogger(__name__)

PAD_VALUE = 114
NMS_IOU = 0.7          # Ultralytics' default for heads that need NMS
MAX_DET = 300
CROP_MARGIN = 0.05     # of the box side, each way
# The classifier learnt whole product photos, where the garment fills most of the frame; a detector
# box with 20 % context each way frames a garment alike (coarse top-1 through the pipeline on the
# 341 clothing-small validation photos: margin 0.05 0.924, 0.15-0.3 0.944).
CLASSIFY_MARGIN = 0.2
# In a photo of a person or an outfit (three or more garments found: median five on street photos, 2
# of 341 single-garment photos) the coarse category comes from the detector, trained on such photos,
# unless the classifier is 100x surer of another; the classifier still picks the fine category. On 247
# detected garments of 70 held-out street photos, coarse top-1: classifier 0.52, detector 0.84, both 0.82.
DETECTOR_TRUST = 0.99
SCENE_ITEMS = 3
# A photo of a person (FLIP_ITEMS garments at the serving threshold, after duplicate suppression) is run a
# second time mirrored and the two outputs averaged anchor by anchor: on the 70 held-out street photos mAP50
# 0.613 -> 0.628, mAP50-95 0.343 -> 0.359, for about 3 ms more per street photo. From 3 garments on, it also took 7 of
# the 341 clothing-small validation photos (duplicate boxes of one product) and lost 2 of their searches; from 4,
# none (the same mAP50), so a product shot costs what it did.
SERVE_CONF = 0.25
FLIP_ITEMS = 4
DUP_IOU = 0.6          # same garment found twice: same class, or exclusive classes (dress vs skirt)
DUP_CONTAIN = 0.85     # ...or the smaller box lies this much inside the larger one (same class only)
MAX_ITEMS = 20         # garments returned per photo at most
# A shop shot: the photo's border is plain (this share of its pixels within PLAIN_TOL, RGB, of a smooth
# surface fitted to it). Fires on 118 of 120 studio product renders, on 5 of 114 clothing-small validation
# photos (beds, floors) and on none of 234 street photos of ccp-train (every third).
PLAIN_SHARE, PLAIN_TOL, PRODUCT_TOL = 0.97, 18.0, 30.0
FAINT_TOL = PRODUCT_TOL / 2  # a product's light part (a white sleeve in shade) differs from the backdrop this much
# Classes this detector confuses on a product shot (a sneaker's side view is a cap's): on one plain backdrop, one
# product. It called the second shoe of a pair a hat in most of the product-box misses on studio renders.
LOOKALIKE = {frozenset(("hat", "shoes"))}
# Classes that legitimately overlap on one person: a jacket over a top or a dress.
LAYERED = {frozenset(("outerwear", "top")), frozenset(("outerwear", "dress")),
           frozenset(("top", "skirt")), frozenset(("top", "pants")), frozenset(("top", "shorts")),
           frozenset(("bag", "top")), frozenset(("bag", "outerwear")), frozenset(("bag", "dress"))}


@dataclass
class Letterbox:
    """How an image was fitted into the square network input (Ultralytics LetterBox, centred)."""
    gain_x: float
    gain_y: float
    pad_x: int
    pad_y: int
    width: int
    height: int

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """xyxy boxes in network pixels -> original image pixels, clipped."""
        b = boxes.astype(np.float64).copy()
        b[:, [0, 2]] = ((b[:, [0, 2]] - self.pad_x) / self.gain_x).clip(0, self.width)
        b[:, [1, 3]] = ((b[:, [1, 3]] - self.pad_y) / self.gain_y).clip(0, self.height)
        return b


def letterbox(image: Image.Image, size: int, stride: int | None = 32) -> tuple[np.ndarray, Letterbox]:
    """RGB PIL image -> float32 NCHW tensor in [0, 1], and the mapping back to the image.

    The long side becomes `size`; with `stride` the short side is padded only up to a multiple of
    it (Ultralytics' "minimum rectangle" letterbox, as its PyTorch predict does: a portrait photo
    costs 320x224 instead of 320x320); stride=None pads to a `size` square.
    """
    import cv2
    a = np.asarray(convert(image, "RGB"))
    h, w = a.shape[:2]
    r = min(size / h, size / w)
    nw, nh = max(round(w * r), 1), max(round(h * r), 1)
    if (w, h) != (nw, nh):
        a = cv2.resize(a, (nw, nh), interpolation=cv2.INTER_LINEAR)
    dw, dh = size - nw, size - nh
    if stride:
        dw, dh = dw % stride, dh % stride
    out_w, out_h = nw + dw, nh + dh
    dw, dh = dw / 2, dh / 2
    top, bottom, left, right = round(dh - 0.1), round(dh + 0.1), round(dw - 0.1), round(dw + 0.1)
    a = cv2.copyMakeBorder(a, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    x = np.ascontiguousarray(a.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
    return x, Letterbox(nw / w, nh / h, round((out_w - nw) / 2 - 0.1), round((out_h - nh) / 2 - 0.1), w, h)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes a (N,4) and b (M,4)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS within each class (as Ultralytics does); indices kept, best first.

    OpenCV's C++ loop: at the evaluation's 0.001 threshold about 1000 boxes pass, and the
    numpy loop it replaces took 5-12 ms per image for the same indices."""
    import cv2
    if not len(boxes):
        return np.zeros(0, np.int64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1).astype(np.float64)
    keep = cv2.dnn.NMSBoxesBatched(xywh, scores.astype(np.float32), classes.astype(np.int32), 0.0, iou)
    return np.asarray(keep, np.int64).reshape(-1)


def decode(output: np.ndarray, conf: float, nc: int) -> np.ndarray:
    """Raw network output -> (K, 6) rows [x1, y1, x2, y2, score, class] in network pixels.

    Two layouts: NMS-free end-to-end heads (YOLO26) give (1, 300, 6) already decoded;
    YOLOv8/11 heads give (1, 4 + nc, anchors) of xywh + class scores and need NMS.
    """
    out = output[0]
    if out.ndim == 2 and out.shape[-1] == 6 and out.shape[0] != 4 + nc:
        det = out[out[:, 4] > conf]
        return det[np.argsort(-det[:, 4], kind="stable")][:MAX_DET]
    p = out.T  # anchors, 4 + nc
    scores = p[:, 4:4 + nc]
    cls = scores.argmax(1)
    best = scores[np.arange(len(p)), cls]
    m = best > conf
    p, cls, best = p[m], cls[m], best[m]
    xy, wh = p[:, :2], p[:, 2:4]
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1)
    keep = nms(boxes, best, cls, NMS_IOU)[:MAX_DET]
    return np.concatenate([boxes[keep], best[keep, None], cls[keep, None].astype(np.float32)], 1)


@functools.lru_cache(maxsize=16)
def _mirrored_anchors(shape: tuple, h: int, w: int, nc: int) -> np.ndarray | None:
    """For a (1, 4 + nc, anchors) output of an h x w input: the anchor at the mirrored grid cell of each
    anchor (levels of stride 8, 16, 32, row-major as Ultralytics lays them out); None for other heads."""
    if len(shape) != 3 or shape[1] != 4 + nc:
        return None
    idx, offset = [], 0
    for s in (8, 16, 32):
        gh, gw = h // s, w // s
        idx.append(offset + np.arange(gh * gw).reshape(gh, gw)[:, ::-1].ravel())
        offset += gh * gw
    return np.concatenate(idx) if offset == shape[2] else None


def suppress_duplicates(items: list[dict], max_items: int = MAX_ITEMS) -> list[dict]:
    """Drop a weaker box that repeats a stronger one on the same garment; keep at most `max_items`.

    Same class overlapping (IoU >= DUP_IOU, or the smaller mostly inside the larger), or two
    classes that cannot be worn on the same spot (dress vs skirt, pants vs shorts) overlapping
    (IoU >= DUP_IOU). Layered pairs (outerwear over a top, ...) are kept.
    """
    items = sorted(items, key=lambda d: -d["confidence"])
    if not items:
        return []
    b = np.asarray([it["box"] for it in items], dtype=np.float64)
    iou = box_iou(b, b)
    area = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    inter = iou * (area[:, None] + area[None, :]) / (1 + iou)
    contain = inter / np.maximum(np.minimum(area[:, None], area[None, :]), 1e-9)
    cats = [it["category"] for it in items]
    kept: list[int] = []
    for i in range(len(items)):
        dup = False
        for k in kept:
            if cats[i] == cats[k]:
                dup = iou[i, k] >= DUP_IOU or contain[i, k] >= DUP_CONTAIN
            else:
                dup = iou[i, k] >= DUP_IOU and frozenset((cats[i], cats[k])) not in LAYERED
            if dup:
                break
        if not dup:
            kept.append(i)
            if len(kept) == max_items:
                break
    return [items[i] for i in kept]


def foreground_box(image: Image.Image, tol: float = 30.0) -> tuple[int, int, int, int]:
    """Bounding box of what differs from the background, estimated from the image border.

    For sketches and shop shots on a plain background; returns the whole image when nothing
    stands out. Tolerant to noise: a row/column counts only if enough pixels in it differ.
    """
    a = np.asarray(convert(image, "RGB").reduce(max(1, max(image.size) // 256)), dtype=np.float32)
    h, w = a.shape[:2]
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    bg = np.median(border, axis=0)
    diff = np.sqrt(((a - bg) ** 2).sum(-1)) > tol
    rows = np.flatnonzero(diff.sum(1) > max(1, 0.01 * w))
    cols = np.flatnonzero(diff.sum(0) > max(1, 0.01 * h))
    W, H = image.size
    if rows.size == 0 or cols.size == 0:
        return 0, 0, W, H
    sx, sy = W / w, H / h
    return (int(cols[0] * sx), int(rows[0] * sy), min(W, int(np.ceil((cols[-1] + 1) * sx))),
            min(H, int(np.ceil((rows[-1] + 1) * sy))))


@functools.lru_cache(maxsize=16)
def _backdrop_terms(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For an (h, w) image: the mask of its outer 3 %, and the quadratic terms (1, x, y, xy, x^2, y^2) of
    the pixels in it (float64, for the fit) and of every pixel (float32, for the surface)."""
    b = max(1, round(0.03 * min(h, w)))
    ring = np.ones((h, w), bool)
    ring[b:-b, b:-b] = False
    y, x = np.mgrid[0:h, 0:w]
    x, y = (x / w - 0.5).ravel(), (y / h - 0.5).ravel()
    terms = np.stack([np.ones_like(x), x, y, x * y, x * x, y * y], axis=1)
    on_ring = terms[ring.ravel()]
    terms = terms.astype(np.float32)
    for a in (ring, on_ring, terms):
        a.flags.writeable = False  # shared by every image of that size
    return ring, on_ring, terms


class Backdrop:
    """A plain background fitted to a photo's border, and how far each pixel lies from it (at about 128 px).

    Plain: per channel a quadratic surface in x and y, fitted to the border twice (the second time without
    the pixels the first fit leaves far off, such as a hanger's hook), so that a backdrop lit unevenly (a
    vignette, a softbox's falloff) is still one plain background."""

    def __init__(self, distance: np.ndarray, scale: tuple[float, float]):
        self.distance, self.scale = distance, scale

    @classmethod
    def fit(cls, image: Image.Image) -> "Backdrop | None":
        """The photo's backdrop, or None when its border is not plain."""
        a = np.asarray(convert(image, "RGB").reduce(max(1, max(image.size) // 128)), dtype=np.float32)
        h, w = a.shape[:2]
        ring, on_ring, terms = _backdrop_terms(h, w)
        border, use = a[ring], slice(None)
        for _ in range(2):
            t = on_ring[use]
            coef = np.linalg.solve(t.T @ t, t.T @ border[use])  # least squares; 6 unknowns, so the normal equations
            near = ((border - on_ring @ coef) ** 2).sum(1) < PLAIN_TOL ** 2
            if near.sum() < 4 * len(coef):
                break
            use = near
        if near.mean() < PLAIN_SHARE:
            return None
        backdrop = (terms @ coef.astype(np.float32)).reshape(h, w, 3)
        return cls(np.sqrt(((a - backdrop) ** 2).sum(2)), (image.size[0] / w, image.size[1] / h))

    def box(self, tol: float = PRODUCT_TOL, within=None) -> tuple[float, float, float, float] | None:
        """The box (original pixels) of what stands out by more than `tol`, in blobs of at least 0.5 % of
        the photo; only inside the box `within` if given. None when nothing does."""
        import cv2
        fg = (self.distance > tol).astype(np.uint8)
        if within is not None:
            sx, sy = self.scale
            keep = np.zeros_like(fg)
            x1, y1 = max(0, int(within[0] / sx)), max(0, int(within[1] / sy))
            keep[y1:int(np.ceil(within[3] / sy)), x1:int(np.ceil(within[2] / sx))] = 1
            fg &= keep
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # specks and the odd shadow edge
        stats = cv2.connectedComponentsWithStats(fg, connectivity=8)[2]
        big = stats[1:][stats[1:, cv2.CC_STAT_AREA] >= 0.005 * fg.size]
        if not len(big):
            return None
        (sx, sy), (h, w) = self.scale, fg.shape
        return (float(big[:, 0].min() * sx), float(big[:, 1].min() * sy),
                float(min(w * sx, (big[:, 0] + big[:, 2]).max() * sx)), float(min(h * sy, (big[:, 1] + big[:, 3]).max() * sy)))


def plain_background_box(image: Image.Image) -> tuple[float, float, float, float] | None:
    """The box of everything that is not background when the background is plain, else None."""
    backdrop = Backdrop.fit(image)
    return None if backdrop is None else backdrop.box()


def _share_inside(a, b) -> float:
    """Share of box a's area inside box b."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy / max(1e-9, (a[2] - a[0]) * (a[3] - a[1]))


def snap_to_product(image: Image.Image, items: list[dict]) -> list[dict]:
    """On a plain background, one product's box is its whole silhouette.

    A detector trained on street photos frames one shoe of a pair, a cap without its brim, a bag
    without its handle, or a box far beyond the product. When the background is plain, the
    strongest box and the product area lie mostly one inside the other, and every garment found
    inside the area is the strongest one's class (or overlaps it, or is a `LOOKALIKE` of it), the strongest box
    becomes that area and the others inside it go. A flat-lay of several garments (other classes beside it) stays as found.
    A box over bare backdrop (nothing in it stands out even faintly: a blank wall, an empty table) is no garment.
    """
    if not items or items[0]["whole_image"]:
        return items
    backdrop = Backdrop.fit(image)
    if backdrop is None:
        return items
    faint = [(it, backdrop.box(FAINT_TOL, within=it["box"])) for it in items]  # what stands out in each box
    faint = [(it, f) for it, f in faint if f is not None]
    items = [it for it, _ in faint]
    area = backdrop.box()
    if not items or area is None:
        return items
    top, top_faint = faint[0]
    if max(_share_inside(top["box"], area), _share_inside(area, top["box"])) < 0.7:
        return items
    inside, outside = [], []
    for it in items[1:]:
        (inside if _share_inside(it["box"], area) >= 0.7 else outside).append(it)
    if any(it["category"] != top["category"] and frozenset((it["category"], top["category"])) not in LOOKALIKE
           and float(box_iou(np.asarray([it["box"]]), np.asarray([top["box"]]))[0, 0]) < 0.3 for it in inside):
        return items
    return [dict(top, box=_product_box(top_faint, area))] + outside


def _product_box(faint, area) -> list[float]:
    """The product's box from what stands out `faint`ly inside the detector's box and the non-background `area`. Light parts of a product
    can pass for background (a white sleeve in shade), so the box reaches as far as what stands out faintly
    inside the detector's box; the detector's own edge counts for nothing (on 800 studio renders its box
    reached beyond the product as often as not: trusting it within a fifth of the area's size framed
    0.91-0.925 of them within IoU 0.8 of their mask's box, this 0.955-0.97)."""
    return [min(faint[0], area[0]), min(faint[1], area[1]), max(faint[2], area[2]), max(faint[3], area[3])]


def crop_rect(size: tuple[int, int], box, margin: float = CROP_MARGIN) -> tuple[int, int, int, int]:
    """The pixel rectangle `crop` cuts: `box` grown by `margin` of its sides each way, inside the image."""
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    W, H = size
    c = (max(0, int(x1 - mx)), max(0, int(y1 - my)), min(W, int(np.ceil(x2 + mx))), min(H, int(np.ceil(y2 + my))))
    return c if c[2] > c[0] and c[3] > c[1] else (0, 0, W, H)


def crop(image: Image.Image, box, margin: float = CROP_MARGIN) -> Image.Image:
    return image.crop(crop_rect(image.size, box, margin))


def detector_prior(category: str | None, trust: float = DETECTOR_TRUST) -> dict[str, float] | None:
    if category not in vocab.COARSE_CATEGORIES:
        return None
    rest = (1.0 - trust) / (len(vocab.COARSE_CATEGORIES) - 1)
    return {c: trust if c == category else rest for c in vocab.COARSE_CATEGORIES}


def classifier_inputs(image: Image.Image, found: list[dict]) -> tuple[list[Image.Image], list, list]:
    """What the classifier sees of each found garment, the detector's coarse prior for it, and
    where in that crop the garment's box lies (None for the whole image): its colour is read there."""
    scene = len(found) >= SCENE_ITEMS
    crops, boxes = [], []
    for it in found:
        if it["whole_image"]:
            crops.append(it["crop"])
            boxes.append(None)
            continue
        c = crop_rect(image.size, it["box"], CLASSIFY_MARGIN)
        crops.append(image.crop(c))
        x1, y1, x2, y2 = it["box"]
        boxes.append((x1 - c[0], y1 - c[1], x2 - c[0], y2 - c[1]))
    return crops, [detector_prior(it["category"]) if scene else None for it in found], boxes


class Detector:
    """A garment detector session. Build it with `Detector.load`, once per process."""

    _cache: dict[tuple, "Detector"] = {}
    _lock = threading.Lock()

    def __init__(self, session, path: Path, imgsz: int, names: list[str], stride: int | None, threads: int = 1):
        self.session, self.path, self.imgsz, self.names, self.threads = session, path, imgsz, names, threads
        self.stride = stride  # None: fixed square input; else any multiple of stride (dynamic export)
        self.input_name = session.get_inputs()[0].name

    @classmethod
    def load(cls, path=None, *, threads: int | None = None) -> "Detector":
        """Open the ONNX model (default: the shipped models/detector/detector.onnx), cached per process.

        `threads`: ONNX Runtime intra-op threads (default SKETCHSHOP_DETECTOR_THREADS, else
        OMP_NUM_THREADS, else every core). `sketchshop serve` sets OMP_NUM_THREADS=1: several
        single-threaded workers give a better tail latency than one two-threaded one.
        """
        from sketchshop.registry import weights_path
        p = weights_path("detector", path).resolve()
        threads = int(threads or os.environ.get("SKETCHSHOP_DETECTOR_THREADS") or os.environ.get("OMP_NUM_THREADS")
                      or os.cpu_count() or 1)
        key = (str(p), p.stat().st_mtime_ns, threads)
        with cls._lock:
            if key not in cls._cache:
                cls._cache[key] = cls._open(p, threads)
            return cls._cache[key]

    @classmethod
    def _open(cls, p: Path, threads: int) -> "Detector":
        import onnxruntime as ort

        from sketchshop.accel import session_options
        try:
            sess = ort.InferenceSession(str(p), session_options(threads), providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise UserError(f"{p}: not a usable ONNX detector ({str(e).splitlines()[0][:200]})") from None
        meta = sess.get_modelmeta().custom_metadata_map
        shape = sess.get_inputs()[0].shape
        dynamic = not isinstance(shape[-1], int)
        imgsz = int(json.loads(meta.get("imgsz", "[320]"))[-1]) if dynamic else int(shape[-1])
        stride = int(meta.get("stride", 32)) if dynamic else None
        names = _names(meta.get("names"))
        out = sess.get_outputs()[0].shape
        if len(shape) != 4 or shape[1] != 3 or len(out) != 3 or not (out[1] == 4 + len(names) or out[-1] == 6):
            raise UserError(f"{p}: not a YOLO garment detector (input {shape}, first output {out}; a detector "
                            f"takes an image and gives boxes)")
        bad = [n for n in names if n not in vocab.COARSE_CATEGORIES]
        if bad:
            raise UserError(f"{p}: model classes {bad} are not coarse categories of the vocabulary")
        log.info("detector %s: %d px, %d classes, %d thread(s)", p.name, imgsz, len(names), threads)
        return cls(sess, p, imgsz, names, stride, threads)

    def with_imgsz(self, imgsz: int) -> "Detector":
        """The same session at another input size (only for a dynamic-shape export)."""
        if imgsz == self.imgsz:
            return self
        if self.stride is None or imgsz % self.stride:
            raise UserError(f"{self.path.name} takes {self.imgsz} px only" if self.stride is None
                            else f"image size must be a multiple of {self.stride}")
        return type(self)(self.session, self.path, imgsz, self.names, self.stride, self.threads)

    def raw(self, image: Image.Image, conf: float = SERVE_CONF, mirror: bool = True) -> np.ndarray:
        """(K, 6) [x1, y1, x2, y2, score, class] in original pixels, before duplicate suppression.

        `mirror`: a photo of a person gets a second, mirrored pass (FLIP_ITEMS); False gives the one pass that
        matches Ultralytics' own predict."""
        x, lb = letterbox(image, self.imgsz, self.stride)
        out = self.session.run(None, {self.input_name: x})[0]
        det = self._decode(out, conf, lb)
        flip = _mirrored_anchors(out.shape, x.shape[2], x.shape[3], len(self.names)) if mirror else None
        if flip is not None:
            served = det if conf == SERVE_CONF else self._decode(out, SERVE_CONF, lb)
            if len(suppress_duplicates(self._items(served))) >= FLIP_ITEMS:
                flipped = self.session.run(None, {self.input_name: np.ascontiguousarray(x[..., ::-1])})[0][:, :, flip]
                flipped[:, 0] = x.shape[3] - flipped[:, 0]  # box centre x back to the unmirrored input
                det = self._decode((out + flipped) / 2, conf, lb)
        return det

    def _decode(self, out: np.ndarray, conf: float, lb: Letterbox) -> np.ndarray:
        det = decode(out, conf, len(self.names))
        if len(det):
            det[:, :4] = lb.to_original(det[:, :4])
        return det

    def _items(self, det: np.ndarray) -> list[dict]:
        """Rows of `raw` as garment dicts, degenerate boxes dropped."""
        return [{"box": [float(v) for v in r[:4]], "category": self.names[int(r[5])], "confidence": float(r[4]),
                 "whole_image": False} for r in det if r[2] - r[0] >= 1 and r[3] - r[1] >= 1]

    def predict(self, image, conf: float = SERVE_CONF) -> list[dict]:
        """Every garment in `image` (PIL image, path or bytes) as dicts, strongest first.

        {"box": [x1, y1, x2, y2] (pixels of the upright image), "category": coarse name or None,
        "confidence": float, "crop": PIL image with a small margin, "whole_image": bool}.
        On a plain background the strongest box covers the whole product (`snap_to_product`).
        When nothing is found, the single item is the whole image trimmed to its non-background
        content, flagged whole_image=True, category None and confidence 0.0.
        """
        image = _as_image(image)
        items = snap_to_product(image, suppress_duplicates(self._items(self.raw(image, conf))))
        if not items:
            items = [{"box": [float(v) for v in foreground_box(image)], "category": None,
                      "confidence": 0.0, "whole_image": True}]
        for it in items:
            it["crop"] = crop(image, it["box"], 0.0 if it["whole_image"] else CROP_MARGIN)
        return items


def _as_image(image) -> Image.Image:
    if isinstance(image, Image.Image):
        if image.width < 1 or image.height < 1:
            raise UserError("empty image")
        return convert(ImageOps.exif_transpose(image), "RGB")
    return load_image(image)


def _names(meta_names) -> list[str]:
    """Class names from Ultralytics' ONNX metadata (a Python dict literal) or the vocabulary."""
    if not meta_names:
        return list(vocab.COARSE_CATEGORIES)
    import ast
    try:
        d = ast.literal_eval(meta_names)
        return [d[i] for i in sorted(d)]
    except (ValueError, SyntaxError, KeyError, TypeError):
        raise UserError(f"unreadable class names in model metadata: {meta_names[:100]!r}") from None
