"""Export a trained checkpoint to the shipped ONNX model, checked against PyTorch, and install it.

Opset 17: the TorchScript exporter Ultralytics uses (dynamo=False; the dynamo exporter has known
silent-mismatch reports, field notes) supports it fully, and ONNX Runtime 1.31 and
onnxruntime-android run it. The graph has a dynamic input size, so the server letterboxes to
the "minimum rectangle" (a portrait photo runs at 320x224) exactly as Ultralytics' own predict.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from sketchshop.config import settings
from sketchshop.errors import UserError
from sketchshop.files import atomic_write, replaced_dir

from .data import STUDIO_SEED
from .train import AUGMENT
from .ultra import ultralytics_offline

log = logging.getLogger(__name__)

OPSET = 17
MAX_ONNX_BYTES = 6 * 1024 * 1024
_LAST_PARITY: dict = {}


def export(checkpoint, out=None, *, imgsz: int = 320, check_images=(), nms_free: bool = True) -> Path:
    """checkpoint (.pt) -> ONNX at `out` (default: beside it). Raises if ONNX disagrees with PyTorch.

    nms_free: export YOLO26's one-to-one head (output (1, 300, 6), no NMS); False exports the
    one-to-many head (output (1, 4 + nc, anchors)), which detector.infer decodes with NMS.
    """
    import tempfile
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise UserError(f"{checkpoint}: checkpoint not found")
    out = Path(out) if out else checkpoint.with_suffix(".onnx")
    ultralytics_offline(2)
    from ultralytics import YOLO
    with tempfile.TemporaryDirectory(prefix="sketchshop-export-") as tmp:
        src = Path(tmp) / checkpoint.name
        shutil.copyfile(checkpoint, src)  # Ultralytics writes next to its input: never over a shipped .onnx
        # nms=False selects the NMS-free one-to-one head (YOLO26 end-to-end); None the one-to-many head
        f = Path(YOLO(str(src)).export(format="onnx", imgsz=imgsz, opset=OPSET, dynamic=True, simplify=True,
                                       nms=False if nms_free else None, half=False, device="cpu", verbose=False))
        check_parity(src, f, imgsz, check_images)
        with atomic_write(out, "wb") as dst, open(f, "rb") as fsrc:
            shutil.copyfileobj(fsrc, dst)
    return out


def check_parity(checkpoint, onnx_path, imgsz: int, images=(), atol_px: float = 0.05, atol_score: float = 1e-4):
    """Run the PyTorch model and the ONNX graph on the same letterboxed inputs; compare detections."""
    import onnxruntime as ort
    import torch
    from PIL import Image

    from .infer import letterbox
    from ultralytics import YOLO
    net = YOLO(str(checkpoint)).model.float().eval()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    e2e = sess.get_outputs()[0].shape[-1] == 6
    net.end2end = e2e  # the head that was exported
    inputs = [letterbox(Image.open(p).convert("RGB"), imgsz)[0] for p in images]
    rng = np.random.default_rng(0)
    inputs += [rng.random((1, 3, imgsz, imgsz), dtype=np.float32), rng.random((1, 3, imgsz, imgsz - 96), dtype=np.float32)]
    worst = [0.0, 0.0]
    for x in inputs:
        with torch.no_grad():
            y = net(torch.from_numpy(x))
        y = (y[0] if isinstance(y, (list, tuple)) else y).numpy()[0]
        z = sess.run(None, {sess.get_inputs()[0].name: x})[0][0]
        if not e2e:  # raw one-to-many output: same anchors in the same order
            if y.shape != z.shape:
                raise RuntimeError(f"ONNX export disagrees with PyTorch: shapes {y.shape} vs {z.shape}")
            worst = [max(worst[0], float(np.abs(y[:4] - z[:4]).max())),
                     max(worst[1], float(np.abs(y[4:] - z[4:]).max()))]
            continue
        # compare above the top-k cut-off: rows tied at the 300th score may legitimately differ
        thr = max(0.05, float(min(y[:, 4].min(), z[:, 4].min())) + 1e-3)
        y, z = y[y[:, 4] > thr], z[z[:, 4] > thr - 1e-3]
        # match each PyTorch detection to the closest ONNX one of its class (near-ties may swap order)
        for row in y:
            same = z[z[:, 5] == row[5]]
            if not len(same):
                raise RuntimeError(f"ONNX export disagrees with PyTorch: a class-{int(row[5])} box is missing")
            d = np.abs(same[:, :4] - row[:4]).max(1)
            j = int(np.argmin(d))
            worst = [max(worst[0], float(d[j])), max(worst[1], float(abs(same[j, 4] - row[4])))]
    if worst[0] > atol_px or worst[1] > atol_score:
        raise RuntimeError(f"ONNX export disagrees with PyTorch: max |box| {worst[0]:.4g} px, |score| {worst[1]:.3g}")
    log.info("ONNX vs PyTorch on %d inputs: max |box| %.2e px, max |score| %.2e", len(inputs), *worst)
    _LAST_PARITY.update(inputs=len(inputs), max_abs_box_px=worst[0], max_abs_score=worst[1])
    return dict(_LAST_PARITY)


def install(checkpoint, *, imgsz: int, data_yaml, products_dir=None, command: str | None = None,
            nms_free: bool = True, product_shots: dict | None = None, copy_paste: int = 0,
            studio_products: int = 0, crawl_data: list[str] = ()) -> Path:
    """Export `checkpoint` into models/detector/: detector.onnx, detector.pt, metrics.json,
    per_class_ap50.png and card.md (metrics measured here, on the held-out split). The folder is replaced
    whole, and only when all of it is written: a failed install leaves the installed model as it was."""
    dest = Path(settings().models_dir) / "detector"
    with replaced_dir(dest, "detector.onnx") as stage:
        _install(Path(checkpoint), stage, imgsz=imgsz, data_yaml=data_yaml, products_dir=products_dir,
                 command=command, nms_free=nms_free, product_shots=product_shots, copy_paste=copy_paste,
                 studio_products=studio_products, crawl_data=crawl_data)
    for f in dest.iterdir():
        f.chmod(0o644)  # atomic_write's temp files are private; these are shipped
    log.info("installed %s", dest / "detector.onnx")
    return dest / "detector.onnx"


def _install(checkpoint: Path, dest: Path, *, imgsz, data_yaml, products_dir, command, nms_free, product_shots,
             copy_paste, studio_products, crawl_data) -> None:
    from sketchshop.registry import sha256

    from .evaluate import evaluate_coco, evaluate_products, plot_per_class, write_json
    val_dir = Path(data_yaml).parent
    val_imgs = sorted((val_dir / "images" / "val").iterdir())[:8]
    onnx_path = export(checkpoint, dest / "detector.onnx", imgsz=imgsz, check_images=val_imgs, nms_free=nms_free)
    parity = _LAST_PARITY.copy()
    size = onnx_path.stat().st_size
    if size > MAX_ONNX_BYTES:
        log.warning("%s is %.2f MiB, over the 6 MiB budget", onnx_path, size / 2**20)
    with atomic_write(dest / "detector.pt", "wb") as dst, open(checkpoint, "rb") as src:
        shutil.copyfileobj(src, dst)
    split = json.loads((val_dir / "split.json").read_text())
    images = Path(split.get("images") or Path(split["source"]).parent)  # the folder the training read
    m = evaluate_coco(val_dir / "val_coco.json", images, weights=onnx_path, threads=1)
    plot_per_class(m, dest / "per_class_ap50.png")
    m.update(sha256=sha256(onnx_path), onnx_bytes=size, opset=OPSET, onnx_vs_pytorch=parity,
             train_seconds=_train_seconds(Path(checkpoint)), val_ids=split["val_ids"], split_seed=split["seed"],
             run_args=_run_args(Path(checkpoint)))
    m["model"] = "models/detector/detector.onnx"
    if products_dir:
        m["products"] = evaluate_products(products_dir, weights=onnx_path)
        m["products"]["model"] = m["model"]
    m["train_command"] = command or "sketchshop train detector --install"
    m["street"] = {"source": split["source"], "images": str(images),
                   "train": sum(1 for _ in (val_dir / "images" / "train").iterdir())}
    m["crawl_data"] = crawl_data  # `dataset detect` outputs added to training
    m["product_shots"] = product_shots  # {"folder", "n"} of the single-product photos added to training
    m["copy_paste"] = copy_paste  # copy-paste scenes added to training
    m["studio_products"] = studio_products  # studio product renders added to training
    m["head"] = "one-to-one (NMS-free), output (1, 300, 6)" if nms_free else \
        "one-to-many, output (1, 4 + nc, anchors), class-aware NMS at IoU 0.7 in detector.infer"
    write_json(m, dest / "metrics.json")
    write_card(dest / "card.md", m)
    log.info("exported %s (sha256 %s)", onnx_path.name, m["sha256"][:12])


def _train_seconds(checkpoint: Path) -> float | None:
    """Wall time of the run from Ultralytics' results.csv (cumulative `time` column)."""
    import csv
    f = checkpoint.parent.parent / "results.csv"
    if not f.is_file():
        return None
    rows = list(csv.DictReader(open(f)))
    key = next((k for k in (rows[0] if rows else {}) if k.strip() == "time"), None)
    return round(float(rows[-1][key])) if key else None


RUN_KEYS = ("model", "epochs", "imgsz", "batch", "optimizer", "lr0", "lrf", "freeze", "time")


def _run_args(checkpoint: Path) -> dict:
    """The recipe as Ultralytics recorded it for the run (args.yaml): what the card states."""
    import yaml
    f = checkpoint.parent.parent / "args.yaml"
    if not f.is_file():
        return {}
    args = yaml.safe_load(f.read_text()) or {}
    return {k: args.get(k) for k in RUN_KEYS + tuple(AUGMENT)}


def write_card(path: Path, m: dict) -> None:
    per = "\n".join(f"| {k} | {'n/a' if v is None else f'{v:.3f}'} |" for k, v in m["per_class_ap50"].items())
    prod = m.get("products")
    prod_txt = (f"- Single-product photos ({prod['n_images']} photos, clothing-small/validation): top box IoU >= 0.8 "
                f"with the GrabCut foreground box in {prod['top_box_iou_ge_0.8']:.1%} of photos (target 95%); "
                f"no detection in {prod['no_detection']}. Command: `sketchshop eval detector --products "
                f"../shared/data/clothing-small/validation --json products.json`\n" if prod else
                "- Single-product photos: not measured for this model (see the report).\n")
    t = m.get("train_seconds")
    shots = m.get("product_shots")
    folder = shots and os.path.relpath(shots["folder"], settings().models_dir.parent)
    shots_txt = (f"- Plus {shots['n']} single-product photos of `{folder}` (a seeded sample across its class "
                 "folders), one box each: the GrabCut foreground box, labelled with the folder's coarse category "
                 "(`detector.data.build_products`). They teach the shop-photo case the street photos lack.\n"
                 if shots else "")
    cp = m.get("copy_paste")
    cp_txt = (f"- Plus {cp} copy-paste scenes: training photos with 1-3 garments cut along their pixel masks from "
              "other training photos pasted in, rare classes drawn more often; every box recomputed from what "
              "stays visible (`detector.copypaste`).\n" if cp else "")
    st = m.get("studio_products")
    st_txt = (f"- Plus {st} studio product renders (`sketchshop.studio`, seed {STUDIO_SEED}: every category, colour and "
              "pattern on shop backdrops), one box each: the bounding box of the render's mask "
              "(`detector.data.build_studio_products`).\n" if st else "")
    unused = "" if st else "- Not used yet: studio products.\n"
    street = m.get("street") or {"source": "../shared/data/ccp-train/annotations_coco.json", "train": 632}
    n_val = len(m["val_ids"])
    crawl_txt = "".join(f"- Plus the training images of `{d}` (`sketchshop dataset detect` from the catalogue: product "
                        "shots boxed by segmentation and composited scenes).\n" for d in m.get("crawl_data") or ())
    run = m.get("run_args") or {}
    trunk = "frozen" if run.get("freeze") else "fine-tuned"
    init = run.get("model", "")
    trunk += "" if str(init).endswith(".yaml") else f"; started from `{init}`"
    recipe = {k: run.get(k) for k in RUN_KEYS if k not in ("model", "freeze")}
    augment = {k: run.get(k) for k in AUGMENT}
    text = f"""# Garment detector (models/detector)

YOLO26 neck and head (Ultralytics {_ultralytics_version()}; exported head: {m["head"]}) on an ImageNet-pretrained
EfficientNet-Lite0 trunk (stages to stride 16, {trunk}, batch-norm statistics frozen), 9 coarse classes
({", ".join(m["per_class_ap50"])}). Architecture: `detector/lite0-yolo26.yaml` + `detector/backbone.py`.

## Files
- `detector.onnx`: fp32, opset {m["opset"]}, dynamic input (letterbox long side {m["imgsz"]} px, short side padded to
  a multiple of 32). {m["onnx_bytes"] / 2**20:.2f} MiB ({m["onnx_bytes"] / 1e6:.2f} MB),
  sha256 `{m["sha256"]}`.
- `detector.pt`: the Ultralytics checkpoint it was exported from (EMA weights, fp16).
- `metrics.json`, `per_class_ap50.png`: the numbers below.

## Data
- Train: {street["train"]} photos of `{street["source"]}` (the shipped model: `../shared/data/ccp-train`, Clothing
  Co-Parsing street photos, Apache-2.0), boxes from that COCO json.
{shots_txt}{st_txt}{cp_txt}{crawl_txt}- Validation: {n_val} photos held out by id: `random.Random({m["split_seed"]}).sample(sorted(ids), {n_val})`
  (`detector/data.py`; ids: {m["val_ids"]}).
{unused}
## Recipe (installed by `{m["train_command"]}`; the run's own settings below)
- {recipe}; augmentation {augment}; trunk {trunk}.
- Ultralytics offline (YOLO_OFFLINE, no auto-install, settings and runs under the data directory, plots and AMP off).
- Training wall time: {f"{t / 60:.0f} min" if t else "n/a"} on the 2-core CPU.

## Metrics (held-out {n_val} photos, through ONNX Runtime, pycocotools COCOeval)
Command: `sketchshop eval detector --coco var/detector/ccp/val_coco.json --images {street.get("images", "../shared/data/ccp-train")} --json val.json --plot ap.png`
- mAP50 **{m["map50"]:.3f}**, mAP50-95 {m["map50_95"]:.3f} (target mAP50 0.70: not reached).
- {m["ms_per_image"]:.1f} ms per image wall time (median {m["ms_per_image_median"]:.1f}), {m["cpu_ms_per_image"]:.1f} ms of CPU
  time per image (letterbox + ONNX Runtime, 1 thread + decode; a 550x832 photo runs at
  {m["imgsz"]}x{(m["imgsz"] * 550 // 832 + 31) // 32 * 32} px) on the 2-core CPU (target 20 ms).
{prod_txt}- ONNX vs PyTorch (export check): max |box| {m["onnx_vs_pytorch"].get("max_abs_box_px", float("nan")):.2e} px,
  max |score| {m["onnx_vs_pytorch"].get("max_abs_score", float("nan")):.2e} on {m["onnx_vs_pytorch"].get("inputs", 0)} inputs.

| class | AP50 |
|---|---|
{per}

## Limits
Trained for {f"{t / 3600:.1f} h" if t else "a few hours"} of CPU or less, on {street["train"]} street photos of one fashion style plus product shots:
expect misses on flat-lays, mirror selfies and small items (hats, shoes, bags); with no box the server
falls back to the whole image, trimmed.
"""
    with atomic_write(path) as f:
        f.write(text)


def _ultralytics_version() -> str:
    import importlib.metadata  # not the import itself: it patches PIL.Image.open (detector.ultra)
    return importlib.metadata.version("ultralytics")
