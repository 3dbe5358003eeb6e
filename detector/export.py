"""Export a trained checkpoint to the shipped ONNX model, checked against PyTorch, and install it.

Opset 17: the TorchScript exporter Ultralytics uses (dynamo=False; the dynamo exporter has known
silent-mismatch reports, field notes) supports it fully, and ONNX Runtime 1.31 and
onnxruntime-android run it. The graph has a dynamic input size, so the server letterboxes to
the "minimum rectangle" (a portrait photo runs at 320x224) exactly as Ultralytics' own predict.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from sketchshop.config import settings
from sketchshop.errors import UserError
from sketchshop.files import atomic_write

from .ultra import ultralytics_offline

log = logging.getLogger(__name__)

OPSET = 17
MAX_ONNX_BYTES = 6 * 1024 * 1024


def export(checkpoint, out=None, *, imgsz: int = 320, check_images=()) -> Path:
    """checkpoint (.pt) -> ONNX at `out` (default: beside it). Raises if ONNX disagrees with PyTorch."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise UserError(f"{checkpoint}: checkpoint not found")
    ultralytics_offline(2)
    from ultralytics import YOLO
    model = YOLO(str(checkpoint))
    f = Path(model.export(format="onnx", imgsz=imgsz, opset=OPSET, dynamic=True, simplify=True,
                          nms=False, half=False, device="cpu", verbose=False))
    check_parity(checkpoint, f, imgsz, check_images)
    if out:
        out = Path(out)
        with atomic_write(out, "wb") as dst, open(f, "rb") as src:
            shutil.copyfileobj(src, dst)
        f = out
    return f


def check_parity(checkpoint, onnx_path, imgsz: int, images=(), atol_px: float = 0.05, atol_score: float = 1e-4):
    """Run the PyTorch model and the ONNX graph on the same letterboxed inputs; compare detections."""
    import onnxruntime as ort
    import torch
    from PIL import Image

    from .infer import letterbox
    from ultralytics import YOLO
    net = YOLO(str(checkpoint)).model.float().eval()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inputs = [letterbox(Image.open(p).convert("RGB"), imgsz)[0] for p in images]
    rng = np.random.default_rng(0)
    inputs += [rng.random((1, 3, imgsz, imgsz), dtype=np.float32), rng.random((1, 3, imgsz, imgsz - 96), dtype=np.float32)]
    worst = [0.0, 0.0]
    for x in inputs:
        with torch.no_grad():
            y = net(torch.from_numpy(x))
        y = (y[0] if isinstance(y, (list, tuple)) else y).numpy()[0]
        z = sess.run(None, {sess.get_inputs()[0].name: x})[0][0]
        keep = y[:, 4] > 0.01
        y, z = y[keep], z[: keep.sum()]
        if y.shape != z.shape or (len(y) and (y[:, 5] != z[:, 5]).any()):
            raise RuntimeError(f"ONNX export disagrees with PyTorch: classes or counts differ ({onnx_path})")
        if len(y):
            worst = [max(worst[0], float(np.abs(y[:, :4] - z[:, :4]).max())),
                     max(worst[1], float(np.abs(y[:, 4] - z[:, 4]).max()))]
    if worst[0] > atol_px or worst[1] > atol_score:
        raise RuntimeError(f"ONNX export disagrees with PyTorch: max |box| {worst[0]:.4g} px, |score| {worst[1]:.3g}")
    log.info("ONNX vs PyTorch on %d inputs: max |box| %.2e px, max |score| %.2e", len(inputs), *worst)
    return {"inputs": len(inputs), "max_abs_box_px": worst[0], "max_abs_score": worst[1]}


def install(checkpoint, *, imgsz: int, data_yaml, products_dir=None, train_seconds=None) -> Path:
    """Export `checkpoint` into models/detector/ with metrics.json, a per-class AP50 plot and card.md."""
    from sketchshop.registry import sha256

    from .evaluate import evaluate_coco, plot_per_class, write_json
    dest = Path(settings().models_dir) / "detector"
    dest.mkdir(parents=True, exist_ok=True)
    val_dir = Path(data_yaml).parent
    val_imgs = sorted((val_dir / "images" / "val").iterdir())[:8]
    onnx_path = export(checkpoint, dest / "detector.onnx", imgsz=imgsz, check_images=val_imgs)
    if onnx_path.stat().st_size > MAX_ONNX_BYTES:
        log.warning("%s is %.1f MB, over the 6 MB budget", onnx_path, onnx_path.stat().st_size / 2**20)
    with atomic_write(dest / "detector.pt", "wb") as dst, open(checkpoint, "rb") as src:
        shutil.copyfileobj(src, dst)
    split = json.loads((val_dir / "split.json").read_text())
    m = evaluate_coco(val_dir / "val_coco.json", Path(split["source"]).parent, weights=onnx_path)
    plot_per_class(m, dest / "per_class_ap50.png")
    m["sha256"] = sha256(onnx_path)
    m["onnx_bytes"] = onnx_path.stat().st_size
    if train_seconds:
        m["train_seconds"] = round(train_seconds)
    write_json(m, dest / "metrics.json")
    log.info("installed %s (sha256 %s)", onnx_path, m["sha256"][:12])
    return onnx_path
