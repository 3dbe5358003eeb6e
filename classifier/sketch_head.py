"""`sketchshop train classifier --sketch-head`: a category head for drawings on a trained network.

One head read photos and drawings alike, and a quick outline doodle (classifier/doodle.py) lost to
a detailed drawing of the same garment: training the whole network on doodles (card, run B) cost
photos and drawings accuracy. This head is trained on the frozen network's pooled features of
drawings only: XDoG drawings and two outline doodles of every training photo, the studio's
sketches and doodles of its masks. It starts as the photo head (its `base`) plus a zero-initialised
correction, and serves `kind="sketch"` inputs; photos, colour, attributes and the embedding are
untouched. Minutes on the 2-core CPU, most of them drawing and computing features.
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sketchshop.files import atomic_write
from sketchshop.registry import DEFAULT_WEIGHTS, sha256

from . import data as D
from .model import GROUPS, GarmentNet, SketchHead, read_checkpoint

log = logging.getLogger(__name__)
WHITE = (255, 255, 255)
RECIPE = {"epochs": 10, "lr": 1e-3, "weight_decay": 0.05, "dropout": 0.2, "label_smoothing": 0.1}


def _training_drawings(args) -> list[np.ndarray]:
    """An XDoG drawing and two outline doodles of one photo, augmented like training drawings."""
    from .doodle import garment_doodle
    i, image, size = args
    rng = random.Random(1000 + i)
    drawings = [D.photo_to_sketch(image, rng)] + [garment_doodle(image, rng) for _ in range(2)]
    return [np.asarray(D.augment(d, rng, size, fill=WHITE)) for d in drawings if d is not None]


@torch.no_grad()
def pooled_features(model: GarmentNet, images: list[np.ndarray], desc: str, prep=None, batch: int = 32) -> torch.Tensor:
    """The frozen network's pooled features of `images` (arrays), each made a tensor by `prep`
    (default: already letterboxed to the served size)."""
    from tqdm import tqdm
    prep = prep or (lambda a: D.to_tensor(Image.fromarray(a)))
    out = []
    for i in tqdm(range(0, len(images), batch), desc=desc, unit="batch", mininterval=10):
        x = torch.stack([prep(a) for a in images[i:i + batch]])
        out.append(model.backbone(x.contiguous(memory_format=torch.channels_last)).float())
    return torch.cat(out) if out else torch.zeros(0, model.category.in_features)


def frozen_network(weights: Path, head: str) -> tuple[dict, dict, GarmentNet]:
    """(checkpoint, its state_dict less `head`, the network without `head` in eval mode): what a head
    trainer starts from."""
    ck = read_checkpoint(weights)
    sd = {k: v for k, v in ck["state_dict"].items() if k.split(".")[0] != head}
    model = GarmentNet.from_checkpoint(ck, without=(head,)).to(memory_format=torch.channels_last).eval()
    return ck, sd, model


def with_head(sd: dict, head: str, module: torch.nn.Module) -> dict:
    """`sd` plus `module`'s weights under `head`, contiguous for saving."""
    return {k: v.contiguous() for k, v in {**sd, **{f"{head}.{k}": v for k, v in module.state_dict().items()}}.items()}


def backbone_key(state_dict: dict) -> str:
    """Names the backbone's weights: cached features stay valid while it is unchanged (heads may change)."""
    return hashlib.sha256(b"".join(v.numpy().tobytes() for k, v in state_dict.items()
                                   if k.startswith("backbone."))).hexdigest()[:16]


def drawing_set(cfg, size: int) -> tuple[list[np.ndarray], list[int]]:
    """Training drawings (letterboxed arrays) and their fine category indices."""
    from tqdm import tqdm

    from .doodle import doodle
    from .studio_data import load_studio
    from .train import _real_items
    photos = _real_items(cfg, "train")
    with Pool(2) as pool:
        jobs = pool.imap(_training_drawings, [(i, it.image, size) for i, it in enumerate(photos)], chunksize=16)
        drawn = list(tqdm(jobs, total=len(photos), desc="drawing the training photos", unit="photo", mininterval=10))
    images = [a for ds in drawn for a in ds]
    labels = [it.category for it, ds in zip(photos, drawn) for _ in ds]
    rng = random.Random(cfg.seed + 7)
    for it in load_studio(cfg)[0]:
        for d in (it.sketch, doodle(it.mask, rng)):
            if d is not None:
                images.append(np.asarray(D.augment(d, rng, size, fill=WHITE)))
                labels.append(it.category)
    return images, labels


def fit_head(base: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float,
             weight_decay: float, dropout: float, label_smoothing: float, seed: int = 0) -> SketchHead:
    torch.manual_seed(seed)
    head = SketchHead(base.in_features, base.out_features)
    head.base.load_state_dict(base.state_dict())
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        head.train()
        for j in torch.randperm(len(x)).split(256):
            loss = F.cross_entropy(head(F.dropout(x[j], dropout)), y[j], label_smoothing=label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head.eval()


def scores(logits: torch.Tensor, fine: torch.Tensor | None, coarse: torch.Tensor | None = None) -> dict:
    """Fine top-1 (when `fine` labels are given), and coarse top-1 of the top fine class (as `sketchshop
    eval classifier` judges a coarse label) against `coarse` (default: the fine labels' groups)."""
    pred = logits.argmax(1)
    res = {} if fine is None else {"top1": round(float((pred == fine).float().mean()), 4)}
    coarse = GROUPS.argmax(0)[fine] if coarse is None else coarse
    res["coarse_top1"] = round(float((GROUPS.argmax(0)[pred] == coarse).float().mean()), 4)
    return res


def train_sketch_head(cfg, weights: Path) -> Path:
    """Add (or replace) the sketch head of `weights`; write the result and its metrics into cfg.out."""
    from .report import fit_temperature
    from .studio_data import real_doodle_items, real_sketch_items
    from .train import _real_items
    t0 = time.time()
    ck, sd, model = frozen_network(weights, "sketch_category")
    size = int(ck["size"])
    cache = Path(cfg.workdir) / f"sketch-head-features-{backbone_key(sd)}-{size}-{cfg.studio_n}-{cfg.seed}.pt"
    if cache.is_file():  # drawing and computing features is most of the time: reruns start here
        feats = torch.load(cache, weights_only=True)
    else:
        images, labels = drawing_set(cfg, size)
        feats = {"train": (pooled_features(model, images, "drawing features"), torch.tensor(labels))}
        val = _real_items(cfg, "validation")
        for name, items in (("xdog_drawings", real_sketch_items(val)), ("outline_doodles", real_doodle_items(val))):
            arrays = [np.asarray(D.letterbox(Image.fromarray(it.sketch), size, WHITE)) for it in items]
            feats[name] = (pooled_features(model, arrays, f"validation {name}"), torch.tensor([it.category for it in items]))
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(cache, "wb") as f:
            torch.save(feats, f)
    x, y = feats["train"]
    head = fit_head(model.category, x, y, **RECIPE, seed=cfg.seed)
    metrics, val_logits, val_y = {}, [], []
    with torch.no_grad():
        for name in ("xdog_drawings", "outline_doodles"):
            f, yv = feats[name]
            metrics[name] = {"n": len(yv), "photo_head": scores(model.category(f), yv),
                             "sketch_head": scores(head(f), yv)}
            val_logits.append(head(f))
            val_y.append(yv)
    cal = fit_temperature(torch.cat(val_logits), torch.cat(val_y))
    ck["state_dict"] = with_head(sd, "sketch_category", head)
    recipe = {"drawings": len(y), "hidden": head.fix[0].out_features, **RECIPE, "seed": cfg.seed,
              "studio_n": cfg.studio_n, "data": str(cfg.data), "from_weights_sha256": sha256(weights),
              "seconds": round(time.time() - t0)}
    ck["meta"] = {**ck.get("meta", {}), "sketch_temperature": cal["temperature"],
                  "sketch_head": {"recipe": recipe, "validation": metrics, "calibration": cal}}
    path = write_head(ck, cfg.out, "sketch_head")
    log.info("sketch head: %s; wrote %s", json.dumps(metrics), path)
    return path


def write_head(ck: dict, out, name: str) -> Path:
    """Write weights with a new head into `out`, and the head's `meta[name]` into its metrics.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path, mpath = out / DEFAULT_WEIGHTS["classifier"], out / "metrics.json"
    with atomic_write(path, "wb") as f:
        torch.save(ck, f)
    m = json.loads(mpath.read_text()) if mpath.is_file() else {}
    m[name] = ck["meta"][name]
    m["weights_sha256"] = sha256(path)
    with atomic_write(mpath, "w") as f:
        json.dump(m, f, indent=1)
    for p in (path, mpath):
        p.chmod(0o644)  # shipped files
    return path
