"""Studio renders and drawings for training and validation: what the real photos lack.

The studio gives bags, colour and attribute labels and sketch/photo pairs; XDoG drawings of the
real photos give real garment shapes in the sketch domain. Colour labels are only used on
photos: a black-ink sketch carries no colour (that comes from the user's hints).
"""
from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch

from sketchshop import vocab
from sketchshop.files import atomic_write

from . import data as D

log = logging.getLogger(__name__)


def studio_cache(cfg) -> Path:
    return Path(cfg.workdir) / f"studio_s{cfg.seed}_n{cfg.studio_n}.npz"


def build_studio_cache(cfg, size: int = 256) -> Path:
    """Render cfg.studio_n studio products once (about 1.5 s each) into an npz beside the checkpoints."""
    from tqdm import tqdm
    from sketchshop.studio import generate_products
    path = studio_cache(cfg)
    if path.is_file():
        return path
    imgs, sks, hints, masks, cats, cols, attrs = [], [], [], [], [], [], []
    for p in tqdm(generate_products(cfg.studio_n, seed=cfg.seed + 4242, size=size), total=cfg.studio_n,
                  desc="rendering studio products", unit="product", mininterval=10):
        imgs.append(np.asarray(p.image.convert("RGB")))
        sks.append(np.asarray(p.sketch.convert("RGB")))
        hints.append(np.asarray(p.hints.convert("RGBA")))
        masks.append(np.asarray(p.mask.convert("L")))
        cats.append(D.CAT_INDEX[p.category])
        cols.append(D.COLOUR_INDEX[p.colour])
        attrs.append([vocab.ATTRIBUTES[a].values.index(p.attributes[a]) if a in p.attributes else -1
                      for a in vocab.ATTRIBUTES])
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        np.savez(f, image=np.stack(imgs), sketch=np.stack(sks), hints=np.stack(hints), mask=np.stack(masks),
                 category=np.array(cats), colour=np.array(cols), attributes=np.array(attrs))
    return path


def load_studio(cfg) -> tuple[list[D.Item], list[D.Item], dict]:
    """Studio items split 85/15 (train / studio validation), plus the raw arrays of the validation part."""
    with np.load(build_studio_cache(cfg)) as f:  # each f[key] reads the whole array: read once
        z = {k: f[k] for k in f.files}
    n = len(z["category"])
    idx = list(range(n))
    random.Random(cfg.seed).shuffle(idx)
    cut = int(0.85 * n)
    names = list(vocab.ATTRIBUTES)

    def items(ids):
        return [D.Item(z["image"][i].copy(), int(z["category"][i]), int(z["colour"][i]),
                       {a: int(v) for a, v in zip(names, z["attributes"][i]) if v >= 0},
                       sketch=z["sketch"][i].copy(), source="studio", mask=z["mask"][i].copy()) for i in ids]
    val_ids = idx[cut:]
    raw = {"hints": z["hints"][val_ids], "mask": z["mask"][val_ids]}
    return items(idx[:cut]), items(val_ids), raw


def sketch_of(it: D.Item, rng: random.Random, doodle_p: float = 0.0) -> np.ndarray:
    """A drawing of a training item: a doodle of its outline (share `doodle_p`), else the studio's
    own sketch or XDoG of the photo."""
    if rng.random() < doodle_p:
        from .doodle import doodle, garment_doodle
        d = doodle(it.mask, rng) if it.mask is not None else garment_doodle(it.image, rng)
        if d is not None:
            return d
    if it.sketch is not None and rng.random() < 0.7:
        return it.sketch
    return D.photo_to_sketch(it.image, rng)


@torch.no_grad()
def studio_metrics(model, val_studio, cfg, prefix="studio") -> dict:
    """Colour (head vs measured vs combined), attributes, sketch category and SBIR on studio validation."""
    from .colour import combine_colour, measured_colour
    from .train import predict_items
    model.eval()
    ph = predict_items(model, val_studio, cfg.infer_size)
    sk = predict_items(model, val_studio, cfg.infer_size, sketch=True)
    y_cat = torch.tensor([it.category for it in val_studio])
    y_col = torch.tensor([it.colour for it in val_studio])
    res = {f"{prefix}_category_top1": float((ph["category"].argmax(1) == y_cat).float().mean()),
           f"{prefix}_sketch_category_top1": float((sk["category"].argmax(1) == y_cat).float().mean()),
           f"{prefix}_colour_head_top1": float((ph["colour"].argmax(1) == y_col).float().mean())}
    rgbs = [measured_colour(it.image)[0] for it in val_studio]
    measured = [D.COLOUR_INDEX[vocab.name_colour(rgb)] for rgb in rgbs]
    res[f"{prefix}_colour_measured_top1"] = float(np.mean([m == int(y) for m, y in zip(measured, y_col)]))
    comb = [int(np.argmax(combine_colour(p.numpy(), rgb))) for p, rgb in zip(ph["colour"].softmax(1), rgbs)]
    res[f"{prefix}_colour_combined_top1"] = float(np.mean([c == int(y) for c, y in zip(comb, y_col)]))
    for a in vocab.ATTRIBUTES:
        y = torch.tensor([it.attributes.get(a, -1) if vocab.FINE_CATEGORIES[it.category] in vocab.ATTRIBUTES[a].applies_to
                          else -1 for it in val_studio])
        m = y >= 0
        if m.any():
            res[f"{prefix}_attr_{a}_top1"] = float((ph[f"attr_{a}"][m].argmax(1) == y[m]).float().mean())
            res[f"{prefix}_attr_{a}_sketch_top1"] = float((sk[f"attr_{a}"][m].argmax(1) == y[m]).float().mean())
    res.update(sbir_metrics(sk["embedding"], ph["embedding"], f"{prefix}_sbir"))
    return {k: round(v, 4) for k, v in res.items()}


def sbir_metrics(q: torch.Tensor, g: torch.Tensor, prefix: str) -> dict:
    sims = q @ g.T
    pos = sims.diagonal().unsqueeze(1)
    ranks = (sims > pos).sum(1)
    return {f"{prefix}_acc@1": float((ranks < 1).float().mean()), f"{prefix}_acc@10": float((ranks < 10).float().mean())}


def real_sketch_items(items: list[D.Item], seed: int = 123) -> list[D.Item]:
    """Fixed XDoG drawings of real validation photos (same seed every epoch: comparable numbers)."""
    rng = random.Random(seed)
    return [D.Item(it.image, it.category, sketch=D.photo_to_sketch(it.image, rng)) for it in items]


def real_doodle_items(items: list[D.Item], seed: int = 321) -> list[D.Item]:
    """Fixed doodles of real validation photos (photos whose garment cannot be cut out are left out)."""
    from .doodle import garment_doodle
    rng = random.Random(seed)
    doodles = [(it, garment_doodle(it.image, rng)) for it in items]
    return [D.Item(it.image, it.category, sketch=d) for it, d in doodles if d is not None]
