"""Stage 2: sketches and studio renders, from the photo checkpoint.

Each step mixes real photos with XDoG drawings of the same photos (category + InfoNCE pairs) and
studio products with their own sketches (bag, colour, attributes + InfoNCE pairs). Colour labels
are only used on photos: a black-ink sketch carries no colour (that comes from the user's hints).
"""
from __future__ import annotations

import logging
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sketchshop import vocab
from sketchshop.files import atomic_write

from . import data as D

log = logging.getLogger(__name__)
TEMPERATURE = 0.07


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
    z = np.load(build_studio_cache(cfg))
    n = len(z["category"])
    idx = list(range(n))
    random.Random(cfg.seed).shuffle(idx)
    cut = int(0.85 * n)
    names = list(vocab.ATTRIBUTES)

    def items(ids):
        return [D.Item(z["image"][i], int(z["category"][i]), int(z["colour"][i]),
                       {a: int(v) for a, v in zip(names, z["attributes"][i]) if v >= 0},
                       sketch=z["sketch"][i], source="studio") for i in ids]
    val_ids = idx[cut:]
    raw = {"hints": z["hints"][val_ids], "mask": z["mask"][val_ids]}
    return items(idx[:cut]), items(val_ids), raw


def info_nce(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE: row i of `a` (sketch) should match row i of `b` (photo) among the batch."""
    logits = a @ b.T / TEMPERATURE
    y = torch.arange(len(a))
    return (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y)) / 2


def sketch_of(it: D.Item, rng: random.Random) -> np.ndarray:
    """A drawing of a training item: the studio's own sketch, or XDoG of the photo."""
    if it.sketch is not None and rng.random() < 0.7:
        return it.sketch
    return D.photo_to_sketch(it.image, rng)


def _batches(real, studio, cfg, n_real=10, n_studio=6):
    """Each batch: [real photos | studio photos | real sketches | studio sketches], pairs aligned."""
    steps = len(real) // (2 * n_real)

    def make(epoch, rng, count_only=False):
        r, s = list(range(len(real))), list(range(len(studio)))
        rng.shuffle(r)
        rng.shuffle(s)
        for k in range(steps):
            if count_only:
                yield None
                continue
            items = [real[j] for j in r[k * n_real:(k + 1) * n_real]] + \
                    [studio[j % len(studio)] for j in s[k * n_studio:(k + 1) * n_studio]]
            photos = [D.augment(it.image, rng, cfg.size) for it in items]
            sk_items = [D.Item(it.image, it.category, -1, it.attributes, source="sketch") for it in items]
            sketches = []
            for it in items:
                a = sketch_of(it, rng)
                sketches.append(D.augment(a, rng, cfg.size, fill=(255, 255, 255)))
            npair = len(items)

            def extra(out, npair=npair):
                e = out["embedding"]
                return info_nce(e[npair:], e[:npair])
            yield items + sk_items, photos + sketches, extra
    return make


@torch.no_grad()
def studio_metrics(model, val_studio, raw, cfg, prefix="studio") -> dict:
    """Colour (head vs measured vs combined), attributes, sketch category and SBIR on studio validation."""
    from .colour import dominant_colour
    from .train import predict_items
    ph = predict_items(model, val_studio, cfg.size)
    sk = predict_items(model, val_studio, cfg.size, sketch=True)
    y_cat = torch.tensor([it.category for it in val_studio])
    y_col = torch.tensor([it.colour for it in val_studio])
    res = {f"{prefix}_category_top1": float((ph["category"].argmax(1) == y_cat).float().mean()),
           f"{prefix}_sketch_category_top1": float((sk["category"].argmax(1) == y_cat).float().mean()),
           f"{prefix}_colour_head_top1": float((ph["colour"].argmax(1) == y_col).float().mean())}
    measured = [D.COLOUR_INDEX[dominant_colour(it.image)[0]] for it in val_studio]
    res[f"{prefix}_colour_measured_top1"] = float(np.mean([m == int(y) for m, y in zip(measured, y_col)]))
    comb = ph["colour"].softmax(1) * 0.5
    comb[torch.arange(len(measured)), torch.tensor(measured)] += 0.5
    res[f"{prefix}_colour_combined_top1"] = float((comb.argmax(1) == y_col).float().mean())
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


def joint_stage(cfg, model, train_items, val_items, run_stage):
    from .train import _val_fn, predict_items
    studio_train, studio_val, raw = load_studio(cfg)
    val_sk = real_sketch_items(val_items)
    photo_eval = _val_fn(val_items, cfg)

    def evaluate(m):
        t0 = time.time()
        rec = photo_eval(m)
        sk = predict_items(m, val_sk, cfg.size, sketch=True)
        ph = predict_items(m, val_sk, cfg.size)
        y = torch.tensor([it.category for it in val_sk])
        rec["val_xdog_sketch_category_top1"] = round(float((sk["category"].argmax(1) == y).float().mean()), 4)
        rec.update({k: round(v, 4) for k, v in sbir_metrics(sk["embedding"], ph["embedding"], "val_xdog_sbir").items()})
        rec.update(studio_metrics(m, studio_val, raw, cfg))
        rec["eval_s"] = round(time.time() - t0, 1)
        return rec
    ema_model, hist = run_stage("joint", cfg, model, cfg.joint_epochs, _batches(train_items, studio_train, cfg),
                                evaluate, lr_scale=0.5)
    model.load_state_dict(ema_model.state_dict())
    return model, hist
