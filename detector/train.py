"""Train the YOLO garment detector on the CPU with Ultralytics, resumable, all state under var/.

The recipe (model yaml, image size, epochs, augmentation) lives in DEFAULTS so that
`sketchshop train detector` with no options reproduces the shipped model.
"""
from __future__ import annotations

import logging
from pathlib import Path

from sketchshop.config import settings
from sketchshop.errors import UserError

from .ultra import ultralytics_offline

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
MODELS = ("lite0-yolo26", "yolo26n", "yolo11n", "yolov8n")
# lite0-yolo26 (detector/lite0-yolo26.yaml): YOLO26 neck/head on a frozen ImageNet EfficientNet-Lite0
# trunk (see backbone.py); the others are Ultralytics' own yamls, trained from scratch.
# The CPU share a shared 2-core machine gives a nice-10 job is small, so the recipe buys as many
# optimizer steps per CPU-second as it can: 256 px, batch 8 with an optimizer step every batch
# (nbs=batch; Ultralytics otherwise accumulates to 64 images), no 100-iteration warm-up, AdamW.
DEFAULTS = dict(model="lite0-yolo26", imgsz=256, epochs=18, batch=8, seed=0, warmup_epochs=0.0)
OPTIM = dict(optimizer="AdamW", lr0=0.002, lrf=0.1, weight_decay=0.0005)
# Augmentation: Ultralytics' mosaic + HSV + flips + scale; no vertical flip (garments have an up).
AUGMENT = dict(mosaic=1.0, close_mosaic=1, hsv_h=0.015, hsv_s=0.7, hsv_v=0.4, fliplr=0.5, flipud=0.0,
               scale=0.5, translate=0.1, degrees=0.0, mixup=0.0)


def run_dir(name: str) -> Path:
    return settings().path("detector", "runs", name, "x").parent


def train(data_yaml, *, name: str = "default", model: str = DEFAULTS["model"], imgsz: int = DEFAULTS["imgsz"],
          epochs: int = DEFAULTS["epochs"], batch: int = DEFAULTS["batch"], seed: int = DEFAULTS["seed"],
          warmup_epochs: float = DEFAULTS["warmup_epochs"], hours: float | None = None, threads: int = 2,
          workers: int = 0, resume: bool = True, init: Path | None = None, train_trunk: bool = False,
          **overrides) -> Path:
    """Train (or resume) run `name`; returns the path of its best.pt.

    `hours`: a wall-time budget (Ultralytics `time`): training stops mid-epoch when it runs out,
    validates and saves, so a starved CPU still yields a checkpoint at a known deadline.
    """
    if model not in MODELS:
        raise UserError(f"unknown detector model {model!r} (choose from {', '.join(MODELS)})")
    if not Path(data_yaml).is_file():
        raise UserError(f"{data_yaml}: dataset yaml not found")
    if init is not None and not Path(init).is_file():
        raise UserError(f"{init}: initial weights not found")
    ultralytics_offline(threads)
    from ultralytics import YOLO

    from .backbone import install
    install()

    out = run_dir(name)
    last = out / "weights" / "last.pt"
    if resume and last.is_file():
        if _finished(last):  # Ultralytics would start a new run on its own defaults (coco8: a download)
            print(f"run {name!r} has finished its training: nothing to resume; --fresh trains it again from the "
                  f"start, --name a new run (its best weights: {out / 'weights' / 'best.pt'})")
            return out / "weights" / "best.pt"
        log.info("resuming %s", last)
        try:
            YOLO(str(last)).train(resume=True, workers=workers)
        except AssertionError as e:  # Ultralytics: "... training to N epochs is finished, nothing to resume"
            log.info("nothing to resume: %s", e)
        return out / "weights" / "best.pt"
    args = dict(AUGMENT, **OPTIM, nbs=batch)
    if model == "lite0-yolo26" and not train_trunk:
        args["freeze"] = 1  # the pretrained trunk (layer 0) stays as it is
    args.update(overrides)
    cfg = str(HERE / f"{model}.yaml") if (HERE / f"{model}.yaml").is_file() else f"{model}.yaml"
    YOLO(str(init) if init else cfg).train(
        data=str(data_yaml), epochs=epochs, imgsz=imgsz, batch=batch, seed=seed, deterministic=False,
        device="cpu", workers=workers, project=str(out.parent), name=out.name, exist_ok=True,
        plots=False, amp=False, cache="ram", patience=100, val=True, verbose=True,
        warmup_epochs=warmup_epochs, time=hours, **args)
    return out / "weights" / "best.pt"


def _finished(last: Path) -> bool:
    """Whether a run's last.pt is final: Ultralytics strips the optimizer and sets epoch -1 when training ends."""
    import torch
    try:
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 (a torn file: let the resume say what it says)
        log.warning("%s: unreadable (%s)", last, e)
        return False
    return ckpt.get("optimizer") is None or ckpt.get("epoch", -1) == -1
