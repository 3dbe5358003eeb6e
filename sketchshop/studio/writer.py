"""`synth`: write a whole studio dataset (products, sketches, hints, masks, scenes, labels).

The output directory is built beside its target and renamed into place only when complete
(`files.atomic_dir`), so a failure or Ctrl-C never leaves half a dataset. Workers render and
write files in parallel; rows come back in index order, so the output is byte-identical for
a seed whatever the number of workers.
"""
from __future__ import annotations

import csv
import json
import logging
import multiprocessing as mp
import time
from pathlib import Path

import cv2
import numpy as np

from .. import vocab
from ..errors import UserError
from ..files import atomic_dir, atomic_write
from .products import check_size, render_arrays
from .scenes import render_scene_arrays

log = logging.getLogger(__name__)

LABEL_COLUMNS = ("file", "category", "colour", "sleeve", "length", "pattern", "neckline", "sketch", "hints", "mask",
                 "title", "brand", "price", "currency", "seed", "index")
SCENE_SIZE = (640, 640)
JPEG_QUALITY = 92


def scene_seed(seed: int, j: int) -> int:
    """The `render_scene` seed of scene j of a run."""
    return int(np.random.SeedSequence([int(seed), 0x5CE4E, int(j)]).generate_state(1)[0])


def _write(path: Path, arr: np.ndarray, ext: str) -> None:
    if arr.ndim == 3 and arr.shape[2] == 4:      # PIL encodes RGBA about twice as fast as OpenCV
        from PIL import Image
        Image.fromarray(arr, "RGBA").save(path, "PNG", compress_level=1)
        return
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if ext == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, buf = cv2.imencode(ext, arr, params)
    if not ok:
        raise OSError(f"could not encode {path}")
    path.write_bytes(buf.tobytes())


def _product_job(job) -> dict:
    root, seed, index, size = job
    c0 = time.process_time()
    a = render_arrays(seed, index, size=size)
    pid = f"p{index:06d}"
    root = Path(root)
    files = {"file": f"images/{pid}.jpg", "sketch": f"sketches/{pid}.png", "hints": f"hints/{pid}.png",
             "mask": f"masks/{pid}.png"}
    _write(root / files["file"], a["image"], ".jpg")
    _write(root / files["sketch"], a["sketch"], ".png")
    _write(root / files["hints"], a["hints"], ".png")
    _write(root / files["mask"], a["mask"], ".png")
    row = dict(files, category=a["category"], colour=a["colour"], title=a["title"], brand=a["brand"],
               price=f"{a['price']:.2f}", currency=a["currency"], seed=seed, index=index)
    for name in vocab.ATTRIBUTES:
        row[name] = a["attributes"].get(name, "")
    row["_cpu"] = time.process_time() - c0       # CPU seconds in the worker, for the throughput report
    return row


def _scene_job(job):
    root, seed, j = job
    from pycocotools import mask as mask_utils
    image, owner, info = render_scene_arrays(scene_seed(seed, j), None, SCENE_SIZE)
    sid = f"s{j:06d}"
    root = Path(root)
    _write(root / "scenes" / f"{sid}.jpg", image, ".jpg")
    _write(root / "scenes" / "masks" / f"{sid}.png", owner, ".png")
    anns = []
    for k, (cat, col) in enumerate(info, start=1):
        m = owner == k
        ys, xs = np.nonzero(m)
        if not len(xs):
            continue
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        x, y = int(xs.min()), int(ys.min())
        anns.append({"bbox": [x, y, int(xs.max()) + 1 - x, int(ys.max()) + 1 - y], "area": int(m.sum()),
                     "segmentation": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")},
                     "iscrowd": 0, "category": vocab.FINE_TO_COARSE[cat], "fine_label": cat, "colour": col,
                     "mask_value": k})
    h, w = owner.shape
    return {"file_name": f"scenes/{sid}.jpg", "width": w, "height": h, "mask_file": f"scenes/masks/{sid}.png"}, anns


def _init_worker():
    cv2.setNumThreads(1)


def _run(func, jobs, workers: int, desc: str):
    """Yield func(job) in job order, in a pool when workers > 1, with a progress bar."""
    from tqdm import tqdm
    bar = tqdm(total=len(jobs), desc=desc, unit="item", dynamic_ncols=True, disable=None)
    try:
        if workers <= 1 or len(jobs) < 2:
            for j in jobs:
                yield func(j)
                bar.update()
        else:
            # not "fork": a parent that already used OpenCV's thread pool can deadlock its forked children
            # (scripts calling synth(workers > 1) need the usual `if __name__ == "__main__":` guard)
            if "forkserver" in mp.get_all_start_methods():
                ctx = mp.get_context("forkserver")
                ctx.set_forkserver_preload(["sketchshop.studio.writer"])
            else:
                ctx = mp.get_context("spawn")
            with ctx.Pool(min(workers, len(jobs)), initializer=_init_worker) as pool:
                for r in pool.imap(func, jobs, chunksize=max(1, min(16, len(jobs) // (workers * 8)))):
                    yield r
                    bar.update()
    finally:
        bar.close()


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out}: directory is not empty (pass --overwrite to replace it)")


def synth(n: int, out, seed: int = 0, *, scenes: int | None = None, size=384, workers: int = 2,
          overwrite: bool = False) -> dict:
    """Render `n` products and `scenes` scenes (default n // 5, at least 1) into `out`.

    Returns counts, timings and products/s. Raises UserError for bad arguments or an
    unusable output directory before anything is written.
    """
    try:
        n, seed, workers = int(n), int(seed), int(workers)
    except (TypeError, ValueError):
        raise UserError("n, seed and workers must be integers") from None
    if n <= 0:
        raise UserError(f"--n must be a positive number of products (got {n})")
    if seed < 0:
        raise UserError(f"--seed must be >= 0 (got {seed})")
    if workers < 1:
        raise UserError(f"--workers must be >= 1 (got {workers})")
    size = check_size(size)
    scenes = max(1, n // 5) if scenes is None else int(scenes)
    if scenes < 0:
        raise UserError(f"--scenes must be >= 0 (got {scenes})")
    out = Path(out)
    _check_out(out, overwrite)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        coco = _synth_into(out, n, seed, scenes, size, workers, t0)
    except OSError as e:    # unwritable place, disk full: atomic_dir has already removed the partial output
        raise UserError(f"{out}: cannot write ({e.strerror or e})") from None
    seconds = time.perf_counter() - t0
    t_products, t_scenes, cpu = coco.pop("_timing")
    result = {"out": str(out), "products": n, "scenes": scenes, "annotations": len(coco["annotations"]),
              "seconds": round(seconds, 2), "product_seconds": round(t_products, 2),
              "products_per_s": round(n / t_products, 2) if t_products > 0 else None,
              "scenes_per_s": round(scenes / t_scenes, 2) if scenes and t_scenes > 0 else None,
              "cpu_ms_per_product": round(cpu / n * 1000, 1),
              "main_process_cpu_s": round(time.process_time() - c0, 2), "workers": workers, "size": size,
              "seed": seed}
    log.info("synth: %s", result)
    return result


def _synth_into(out: Path, n, seed, scenes, size, workers, t0) -> dict:
    with atomic_dir(out) as tmp:
        for d in ("images", "sketches", "hints", "masks", "scenes/masks"):
            (tmp / d).mkdir(parents=True, exist_ok=True)
        rows = list(_run(_product_job, [(str(tmp), seed, i, size) for i in range(n)], workers, "products"))
        t_products = time.perf_counter() - t0
        cpu = sum(r.pop("_cpu") for r in rows)
        with open(tmp / "labels.csv", "w", newline="", encoding="utf-8") as f:
            wr = csv.DictWriter(f, fieldnames=LABEL_COLUMNS)
            wr.writeheader()
            wr.writerows(rows)
        t1 = time.perf_counter()
        coco = {"info": {"description": "sketchshop studio scenes", "seed": seed},
                "images": [], "annotations": [],
                "categories": [{"id": i + 1, "name": c, "supercategory": "garment"}
                               for i, c in enumerate(vocab.COARSE_CATEGORIES)]}
        cat_id = {c: i + 1 for i, c in enumerate(vocab.COARSE_CATEGORIES)}
        for j, (im, anns) in enumerate(_run(_scene_job, [(str(tmp), seed, j) for j in range(scenes)], workers,
                                            "scenes")):
            im["id"] = j + 1
            coco["images"].append(im)
            for a in anns:
                a["id"] = len(coco["annotations"]) + 1
                a["image_id"] = im["id"]
                a["category_id"] = cat_id[a.pop("category")]
                coco["annotations"].append(a)
        (tmp / "scenes_coco.json").write_text(json.dumps(coco, separators=(",", ":")))
        t_scenes = time.perf_counter() - t1
    coco["_timing"] = (t_products, t_scenes, cpu)
    return coco


# ---------------------------------------------------------------- contact sheet

def contact_sheet(path, seed: int = 0, *, size: int = 384, per_category: int = 3, tile: int = 150) -> Path:
    """A PNG to look at: per category, products as photo | sketch | hints; then two scenes with boxes."""
    from .products import render_product
    from .scenes import render_scene
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise UserError(f"{path}: the contact sheet is written as PNG (use a .png name)")
    cats = vocab.FINE_CATEGORIES
    cols = per_category * 3
    scene_w = cols * tile // 2
    sheet = np.full((len(cats) * (tile + 14) + scene_w + 10, cols * tile, 3), 255, np.uint8)
    for r, cat in enumerate(cats):
        for k in range(per_category):
            p = render_product(seed, r * per_category + k, category=cat, size=size)
            sk = np.asarray(p.sketch, np.float32)
            hint = np.asarray(p.hints, np.float32)
            a = hint[..., 3:] / 255
            faded = 255 - (255 - sk) * 0.35
            overlay = (faded * (1 - a) + hint[..., :3] * a).astype(np.uint8)
            y = r * (tile + 14)
            for c, im in enumerate((np.asarray(p.image), np.asarray(p.sketch), overlay)):
                x = (k * 3 + c) * tile
                sheet[y:y + tile, x:x + tile] = cv2.resize(im, (tile, tile), interpolation=cv2.INTER_AREA)
            attrs = " ".join(v for a_, v in p.attributes.items() if v not in ("solid",))
            cv2.putText(sheet, f"{cat} {p.colour} {attrs}"[:42], (k * 3 * tile + 3, y + tile + 11),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.36, (40, 40, 40), 1, cv2.LINE_AA)
    y0 = len(cats) * (tile + 14) + 5
    for j in range(2):
        img, owner, info = render_scene_arrays(scene_seed(seed, j), None, SCENE_SIZE)
        img = img.copy()
        for k, (cat, _col) in enumerate(info, start=1):
            ys, xs = np.nonzero(owner == k)
            if len(xs):
                cv2.rectangle(img, (int(xs.min()), int(ys.min())), (int(xs.max()), int(ys.max())), (255, 40, 40), 2)
                cv2.putText(img, vocab.FINE_TO_COARSE[cat], (int(xs.min()) + 3, int(ys.min()) + 16),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 0), 2, cv2.LINE_AA)
        sheet[y0:y0 + scene_w, j * scene_w:(j + 1) * scene_w] = cv2.resize(img, (scene_w, scene_w),
                                                                          interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    try:
        with atomic_write(path, "wb") as f:
            f.write(buf.tobytes())
        path.chmod(0o644)
    except OSError as e:
        raise UserError(f"{path}: cannot write ({e.strerror or e})") from None
    return path
