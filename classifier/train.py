"""Fine-tuning in resumable stages, sized for a 2-core CPU.

Stage "photo": full fine-tune of the backbone on real single-garment photos (category).
Stage "joint": shorter, from the photo checkpoint: real photos + their XDoG line drawings +
studio renders and sketches (bag, colour, attributes), with an InfoNCE loss that pulls a
sketch's embedding onto its photo's. Every epoch writes a checkpoint; rerunning the same command
resumes from it, and a finished stage is skipped.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sketchshop import vocab
from sketchshop.errors import UserError
from sketchshop.files import atomic_write

from . import data as D
from .model import GarmentNet

log = logging.getLogger(__name__)
FORMAT = "sketchshop-classifier/1"


@dataclass
class TrainConfig:
    data: str = "../shared/data/clothing-small"     # ImageFolder with train/ and validation/
    backbone: str = "efficientnet_lite0"
    epochs: int = 14                                 # photo stage
    joint_epochs: int = 4                            # sketch/studio stage
    batch: int = 32
    lr: float = 6e-4                                 # backbone; heads get 5x
    weight_decay: float = 0.02
    label_smoothing: float = 0.1
    ema: float = 0.995
    drop_path: float = 0.1
    patience: int = 4                                # early stop: epochs without val improvement
    size: int = D.SIZE
    studio_n: int = 600                              # studio products for the joint stage
    seed: int = 0
    workdir: str = "var/train/classifier"
    out: str = "models/classifier"
    stages: tuple[str, ...] = ("photo", "joint")


# ------------------------------------------------------------------ helpers shared by stages

class EMA:
    """Exponential moving average of all weights and BN buffers (evaluated and shipped)."""

    def __init__(self, model, decay):
        self.decay, self.model = decay, copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model):
        for e, m in zip(self.model.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(self.decay).add_(m.detach(), alpha=1 - self.decay)
            else:
                e.copy_(m)


def multitask_loss(out: dict, batch: dict, smoothing: float) -> tuple[torch.Tensor, dict]:
    """Sum of the heads' losses; a label of -1 (missing, or not applicable to the category) is masked."""
    parts = {}
    for key, target in (("category", batch["category"]), ("colour", batch["colour"]),
                        *((f"attr_{a}", batch["attributes"][a]) for a in vocab.ATTRIBUTES)):
        m = target >= 0
        if m.any():
            parts[key] = F.cross_entropy(out[key][m], target[m], label_smoothing=smoothing if key == "category" else 0.0)
    total = sum(parts.values()) if parts else out["category"].sum() * 0
    return total, {k: float(v) for k, v in parts.items()}


def collate(items: list[D.Item], images: list, device="cpu") -> dict:
    x = torch.stack([D.to_tensor(im) for im in images]).contiguous(memory_format=torch.channels_last)
    attrs = {a: torch.tensor([it.attributes.get(a, -1) for it in items]) for a in vocab.ATTRIBUTES}
    # attributes that do not apply to the item's category are masked even if labelled
    for a, t in attrs.items():
        app = vocab.ATTRIBUTES[a].applies_to
        for i, it in enumerate(items):
            if it.category >= 0 and vocab.FINE_CATEGORIES[it.category] not in app:
                t[i] = -1
    return {"x": x, "category": torch.tensor([it.category for it in items]),
            "colour": torch.tensor([it.colour for it in items]), "attributes": attrs}


@torch.no_grad()
def predict_items(model, items: list[D.Item], size: int, batch: int = 64, sketch: bool = False) -> dict:
    """Logits of every head for cached items, with the exact preprocessing of inference."""
    from PIL import Image
    model.eval()
    outs: dict[str, list] = {}
    for i in range(0, len(items), batch):
        chunk = items[i:i + batch]
        ims = [Image.fromarray(it.sketch if sketch else it.image) for it in chunk]
        x = torch.stack([D.preprocess(im, size) for im in ims]).contiguous(memory_format=torch.channels_last)
        for k, v in model(x).items():
            outs.setdefault(k, []).append(v)
    return {k: torch.cat(v) for k, v in outs.items()}


def _save(obj, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def _optimizer(model, cfg, steps_total, warmup):
    head_params = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    bb = [p for n, p in model.named_parameters() if n.startswith("backbone.")]
    opt = torch.optim.AdamW([{"params": bb, "lr": cfg.lr}, {"params": head_params, "lr": cfg.lr * 5}],
                            weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, s / max(1, steps_total)))))
    return opt, sched


def _real_items(cfg, split: str):
    from sketchshop.datasets import read_imagefolder
    root = Path(cfg.data) / split
    if not root.is_dir():
        raise UserError(f"{root}: not found (--data must hold train/ and validation/ class folders)")
    return D.load_items(read_imagefolder(root), desc=f"loading {split}")


# ------------------------------------------------------------------ the stages

def run_stage(name: str, cfg: TrainConfig, model: GarmentNet, epochs: int, make_batches, evaluate,
              lr_scale: float = 1.0) -> tuple[GarmentNet, list[dict]]:
    """Generic resumable epoch loop: make_batches(epoch, rng) yields (items, images, extra) batches."""
    from tqdm import tqdm
    work = Path(cfg.workdir) / name
    ckpt = work / "last.pt"
    steps_per_epoch = sum(1 for _ in make_batches(0, random.Random(0), count_only=True))
    c2 = copy.copy(cfg)
    c2.lr = cfg.lr * lr_scale
    opt, sched = _optimizer(model, c2, steps_per_epoch * epochs, warmup=max(1, steps_per_epoch // 2))
    ema = EMA(model, cfg.ema)
    history, start, best, bad = [], 0, -1.0, 0
    if ckpt.is_file():
        st = torch.load(ckpt, map_location="cpu", weights_only=False)
        model.load_state_dict(st["model"])
        ema.model.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        history, start, best, bad = st["history"], st["epoch"], st["best"], st["bad"]
        log.info("%s: resuming after epoch %d", name, start)
    if st_done := (start >= epochs or (ckpt.is_file() and bad >= cfg.patience)):
        log.info("%s: already finished (%d epochs)", name, start)
    for epoch in range(start, epochs if not st_done else start):
        model.train()
        rng = random.Random(cfg.seed * 1000 + epoch)
        t0, n, run = time.time(), 0, {}
        bar = tqdm(make_batches(epoch, rng), total=steps_per_epoch, desc=f"{name} epoch {epoch + 1}/{epochs}",
                   unit="batch", mininterval=20)
        for items, images, extra in bar:
            b = collate(items, images)
            out = model(b["x"])
            loss, parts = multitask_loss(out, b, cfg.label_smoothing)
            if extra is not None:
                parts["infonce"] = float(l2 := extra(out))
                loss = loss + l2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            ema.update(model)
            n += 1
            for k, v in parts.items():
                run[k] = run.get(k, 0.0) + v
            bar.set_postfix(loss=f"{float(loss):.3f}")
        rec = {"epoch": epoch + 1, "train_s": round(time.time() - t0, 1),
               **{f"train_{k}": round(v / max(n, 1), 4) for k, v in run.items()}}
        rec.update(evaluate(ema.model))
        history.append(rec)
        score = rec.get("val_category_top1", 0.0)
        best, bad = (score, 0) if score > best else (best, bad + 1)
        log.info("%s epoch %d: %s", name, epoch + 1, json.dumps(rec))
        _save({"model": model.state_dict(), "ema": ema.model.state_dict(), "opt": opt.state_dict(),
               "sched": sched.state_dict(), "history": history, "epoch": epoch + 1, "best": best, "bad": bad,
               "config": asdict(cfg)}, ckpt)
        if bad >= cfg.patience:
            log.info("%s: early stop, no val improvement for %d epochs", name, bad)
            break
    return ema.model, history


def _photo_batches(items, cfg):
    def make(epoch, rng, count_only=False):
        order = list(range(len(items)))
        rng.shuffle(order)
        for i in range(0, len(order) - cfg.batch + 1, cfg.batch):
            if count_only:
                yield None
                continue
            chunk = [items[j] for j in order[i:i + cfg.batch]]
            yield chunk, [D.augment(it.image, rng, cfg.size) for it in chunk], None
    return make


def _val_fn(val_items, cfg, prefix="val"):
    def evaluate(model):
        t0 = time.time()
        out = predict_items(model, val_items, cfg.size)
        y = torch.tensor([it.category for it in val_items])
        logits = out["category"]
        return {f"{prefix}_category_top1": round(float((logits.argmax(1) == y).float().mean()), 4),
                f"{prefix}_loss": round(float(F.cross_entropy(logits, y)), 4),
                f"{prefix}_s": round(time.time() - t0, 1)}
    return evaluate


def train(cfg: TrainConfig) -> Path:
    """Run the configured stages, then write the shipped artefacts into cfg.out."""
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    torch.set_num_threads(2)
    train_items = _real_items(cfg, "train")
    val_items = _real_items(cfg, "validation")
    model = GarmentNet(cfg.backbone, pretrained=True, drop_path_rate=cfg.drop_path)
    model = model.to(memory_format=torch.channels_last)
    histories = {}
    if "photo" in cfg.stages:
        ema_model, histories["photo"] = run_stage("photo", cfg, model, cfg.epochs,
                                                  _photo_batches(train_items, cfg), _val_fn(val_items, cfg))
        model.load_state_dict(ema_model.state_dict())
    if "joint" in cfg.stages:
        from .joint import joint_stage
        model, histories["joint"] = joint_stage(cfg, model, train_items, val_items, run_stage)
    return finish(cfg, model, histories, train_items, val_items)


def checkpoint_dict(model: GarmentNet, cfg: TrainConfig, meta: dict) -> dict:
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    return {"format": FORMAT, "backbone": model.backbone_name, "embed_dim": model.embed[-1].out_features,
            "size": cfg.size, "mean": D._MEAN.tolist(), "std": D._STD.tolist(),
            "categories": list(vocab.FINE_CATEGORIES), "colours": list(vocab.COLOURS),
            "attributes": {a.name: list(a.values) for a in vocab.ATTRIBUTES.values()},
            "state_dict": sd, "meta": meta}


def finish(cfg, model, histories, train_items, val_items) -> Path:
    """Ship: weights, metrics.json, curves.png, confusion.png, card.md (via report module)."""
    from .report import write_artifacts
    return write_artifacts(cfg, model, histories, val_items)
