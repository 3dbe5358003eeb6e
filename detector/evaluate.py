"""Detector evaluation through the shipped inference path (ONNX Runtime + detector.infer).

- COCO-style mAP with pycocotools' COCOeval (the standard matching: IoU 0.50 and 0.50:0.95,
  101-point interpolated precision, up to 100 detections per image), per-class AP50, ms per image.
- Single-product photos: is the top box the product? IoU of the most confident detection with a
  foreground box from GrabCut (initialised with a 4% border as background), counted per photo.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sketchshop import vocab
from sketchshop.datasets import IMAGE_EXTS, Skipped, read_coco
from sketchshop.errors import UserError
from sketchshop.files import atomic_write
from sketchshop.images import load_image

from .infer import Detector, box_iou

log = logging.getLogger(__name__)

EVAL_CONF = 0.001  # mAP needs the whole precision/recall curve, as Ultralytics' validator does


def evaluate_coco(coco_json, images_dir=None, *, weights=None, imgsz: int | None = None,
                  limit: int | None = None, threads: int | None = None, one_pass: bool = False) -> dict:
    """mAP of the detector on a COCO json whose category names are coarse categories, as served (photos of
    people mirrored too) or, with `one_pass`, as Ultralytics' own predict would detect."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco_json = Path(coco_json)
    images = read_coco(coco_json, images_dir)  # validates the json and the category names
    if limit:
        images = images[:limit]
    if not images:
        raise UserError(f"{coco_json}: no images to evaluate")
    if not any(im.boxes for im in images):  # COCO's mAP would be its "no ground truth" sentinel, -1
        raise UserError(f"{coco_json}: no annotated boxes{' in the first ' + str(limit) + ' images' if limit else ''}")
    det = Detector.load(weights, threads=threads)
    if imgsz:
        det = det.with_imgsz(imgsz)
    raw = json.loads(coco_json.read_text())
    name_to_id = {vocab.coarse(c["name"]): c["id"] for c in raw["categories"]}
    ids = {im.id for im in images}
    gt = {"images": [i for i in raw["images"] if i["id"] in ids],
          "annotations": [dict(a, iscrowd=a.get("iscrowd", 0), area=a.get("area", a["bbox"][2] * a["bbox"][3]))
                          for a in raw.get("annotations", []) if a["image_id"] in ids],
          "categories": raw["categories"]}
    for k, a in enumerate(gt["annotations"]):
        a.setdefault("id", k + 1)
    dets, times, cpu = [], [], []
    for im in tqdm(images, desc="eval detector", unit="img"):
        pil = load_image(im.path)
        t0, c0 = time.perf_counter(), time.process_time()
        rows = det.raw(pil, conf=EVAL_CONF, mirror=not one_pass)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        for x1, y1, x2, y2, score, c in rows:
            name = det.names[int(c)]
            if name in name_to_id:
                dets.append({"image_id": im.id, "category_id": name_to_id[name], "score": float(score),
                             "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]})
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = gt
        cg.createIndex()
        cd = cg.loadRes(dets) if dets else None
    out = {"n_images": len(images), "map50": 0.0, "map50_95": 0.0, "per_class_ap50": {},
           "ms_per_image": round(1000 * float(np.mean(times)), 2),
           # CPU time per image: what the latency would be on an idle core (wall time above
           # includes waiting for the CPU when other jobs share the machine)
           "cpu_ms_per_image": round(1000 * float(np.mean(cpu)), 2),
           "ms_per_image_median": round(1000 * float(np.median(times)), 2), "imgsz": det.imgsz,
           "threads": det.threads, "model": str(det.path), "matching": "pycocotools COCOeval (bbox)",
           "one_pass": one_pass}
    if cd is None:
        out["per_class_ap50"] = {n: 0.0 for n in name_to_id}
        return out
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(cg, cd, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    out["map50_95"], out["map50"] = round(float(ev.stats[0]), 4), round(float(ev.stats[1]), 4)
    prec = ev.eval["precision"]  # [iou, recall, class, area, maxdet]
    present = {a["category_id"] for a in gt["annotations"]}
    for k, cid in enumerate(ev.params.catIds):
        name = vocab.coarse(cg.cats[cid]["name"])
        p = prec[0, :, k, 0, -1]
        out["per_class_ap50"][name] = round(float(p[p > -1].mean()), 4) if cid in present and (p > -1).any() else None
    return out


def foreground_box_grabcut(image, border: float = 0.04, size: int = 200) -> tuple[int, int, int, int]:
    """Product box in a single-product photo: GrabCut from a rectangle, largest component's box."""
    import cv2
    W, H = image.size
    s = min(1.0, size / max(W, H))
    a = np.asarray(image.convert("RGB").resize((max(1, round(W * s)), max(1, round(H * s)))))[:, :, ::-1].copy()
    h, w = a.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    rect = (int(w * border), int(h * border), max(1, int(w * (1 - 2 * border))), max(1, int(h * (1 - 2 * border))))
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    cv2.grabCut(a, mask, rect, bgd, fgd, 4, cv2.GC_INIT_WITH_RECT)
    fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(fg)
    if n <= 1:
        return 0, 0, W, H
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, bw, bh = stats[k, :4]
    return int(x / s), int(y / s), min(W, int(np.ceil((x + bw) / s))), min(H, int(np.ceil((y + bh) / s)))


def evaluate_products(folder, *, weights=None, imgsz: int | None = None, conf: float = 0.25,
                      limit: int | None = None, threads: int | None = None, iou_min: float = 0.8) -> dict:
    """Share of single-product photos whose most confident box has IoU >= iou_min with the product.

    A photo with no detection counts as a miss (the whole-image fallback is not credited); the share with
    the fallback credited, as the API's first item, is reported beside it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a directory")
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if limit:
        paths = paths[:: max(1, len(paths) // limit)][:limit]
    if not paths:
        raise UserError(f"{folder}: no images")
    det = Detector.load(weights, threads=threads)
    if imgsz:
        det = det.with_imgsz(imgsz)
    ious, item_ious, none, skipped = [], [], 0, Skipped()
    per_class: dict[str, list[float]] = {}
    for p in tqdm(paths, desc="eval products", unit="img"):
        try:
            im = load_image(p)
        except UserError as e:  # one unreadable photo is skipped and named, as every eval does
            skipped.add(p, e)
            continue
        fg = np.asarray([foreground_box_grabcut(im)], dtype=np.float64)
        top = det.predict(im, conf=conf)[0]
        item_ious.append(float(box_iou(np.asarray([top["box"]]), fg)[0, 0]))
        iou = 0.0 if top["whole_image"] else item_ious[-1]
        none += top["whole_image"]
        ious.append(iou)
        per_class.setdefault(p.parent.name, []).append(iou)
    skipped.check(len(ious), len(paths))
    ious, item_ious = np.asarray(ious), np.asarray(item_ious)
    return {"n_images": len(ious), "skipped": skipped, "top_box_iou_ge_%.2g" % iou_min: round(float((ious >= iou_min).mean()), 4),
            # what /v1/detect answers: the trimmed whole image where nothing was detected
            "top_item_iou_ge_%.2g" % iou_min: round(float((item_ious >= iou_min).mean()), 4),
            "mean_iou": round(float(ious.mean()), 4), "no_detection": int(none), "conf": conf,
            "per_folder_iou_ge": {k: round(float((np.asarray(v) >= iou_min).mean()), 4) for k, v in per_class.items()},
            "foreground": "GrabCut, 4% border initialised as background, largest component",
            "imgsz": det.imgsz, "model": str(det.path)}


def write_json(obj: dict, path) -> Path:
    with atomic_write(Path(path)) as f:
        json.dump(obj, f, indent=2)
    return Path(path)


def plot_per_class(metrics: dict, png) -> Path:
    """Bar chart of per-class AP50 (a picture people read faster than the JSON)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(metrics["per_class_ap50"])
    vals = [metrics["per_class_ap50"][n] or 0.0 for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    ax.bar(names, vals, color="#4a7ab5")
    ax.axhline(metrics["map50"], color="k", ls="--", lw=1, label=f"mAP50 {metrics['map50']:.3f}")
    ax.set_ylim(0, 1)
    ax.set_ylabel("AP50")
    ax.set_title(f"detector per-class AP50 ({metrics['n_images']} images, {metrics['imgsz']} px)")
    ax.legend(loc="upper right")
    plt.xticks(rotation=30)
    fig.tight_layout()
    with atomic_write(Path(png), "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)
    return Path(png)
