"""`sketchshop train classifier --worn-head`: a category head for worn garments on a trained network.

A garment the detector cuts out of a photo of a person is not a product shot: the photo head called
46 % of their coarse category right. Training the whole network on street crops cost product photos
(card, session 5). This adds `model.WornHead` on the frozen network's pooled features:
- a street head (the photo head's copy plus a zero-initialised correction, like the sketch head)
  trained on the crops of the detector's training street photos through each box's coarse group;
- a gate, one logistic unit: those street crops against the training product photos;
so served photos get the street head's coarse group where the gate says "worn" and the photo head's
answer elsewhere. Minutes on the 2-core CPU, most of them cropping and computing features.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from sketchshop.files import atomic_write
from sketchshop.registry import sha256

from . import data as D
from .model import GROUPS, WornHead
from .sketch_head import backbone_key, frozen_network, pooled_features, scores, with_head, write_head

log = logging.getLogger(__name__)
# chosen on the street validation crops and the validation photos (card: "Worn-garment head")
STREET_RECIPE = {"epochs": 15, "lr": 1e-3, "weight_decay": 0.05, "dropout": 0.2}
GATE_RECIPE = {"epochs": 30, "lr": 1e-2, "weight_decay": 0.2, "dropout": 0.2, "worn_weight": 0.5}


def _batches(n: int, epochs: int):
    for _ in range(epochs):
        yield from torch.randperm(n).split(256)


def fit_worn_head(base: torch.nn.Linear, temperature: float, street: torch.Tensor, street_coarse: torch.Tensor,
                  photos: torch.Tensor, seed: int = 0) -> WornHead:
    """Street head on (street features, coarse labels), then the gate on street vs product-photo features."""
    torch.manual_seed(seed)
    head = WornHead(base.in_features, base.out_features, temperature)
    head.street.base.load_state_dict(base.state_dict())
    r = STREET_RECIPE
    opt = torch.optim.AdamW(head.street.parameters(), lr=r["lr"], weight_decay=r["weight_decay"])
    head.train()
    for j in _batches(len(street), r["epochs"]):
        log_p = head.street(F.dropout(street[j], r["dropout"])).log_softmax(1)
        loss = F.nll_loss(head.group_log_p(log_p), street_coarse[j])
        opt.zero_grad()
        loss.backward()
        opt.step()
    r = GATE_RECIPE
    x = torch.cat([street, photos])
    y = torch.cat([torch.ones(len(street)), torch.zeros(len(photos))])
    opt = torch.optim.AdamW(head.gate.parameters(), lr=r["lr"], weight_decay=r["weight_decay"])
    for j in _batches(len(x), r["epochs"]):
        logit = head.gate(F.dropout(x[j], r["dropout"])).squeeze(1)
        loss = F.binary_cross_entropy_with_logits(logit, y[j], pos_weight=torch.tensor(r["worn_weight"]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head.eval()


def train_worn_head(cfg, weights: Path, street_json) -> Path:
    """Add (or replace) the worn head of `weights`; write the result and its metrics into cfg.out."""
    from .street import load_street
    from .train import _real_items
    t0 = time.time()
    ck, sd, model = frozen_network(weights, "worn_category")
    size, temperature = int(ck["size"]), float(ck.get("meta", {}).get("category_temperature", 1.0))
    sources = hashlib.sha256(f"{Path(cfg.data).resolve()}|{Path(street_json).resolve()}".encode()).hexdigest()[:8]
    cache = Path(cfg.workdir) / f"worn-head-features-{backbone_key(sd)}-{sources}-{size}.pt"
    def features(items, desc):  # as served: `data.preprocess`
        return pooled_features(model, [it.image for it in items], desc,
                               lambda a: D.preprocess(Image.fromarray(a), size))

    if cache.is_file():  # cropping and computing features is most of the time: reruns start here
        feats = torch.load(cache, weights_only=True)
    else:
        feats = {}
        for split in ("train", "val"):
            items = load_street(street_json, split)
            feats[f"street_{split}"] = (features(items, f"street {split} features"),
                                        torch.tensor([it.category for it in items]),
                                        torch.tensor([it.coarse for it in items]))
        for split in ("train", "validation"):
            items = _real_items(cfg, split)
            fine = torch.tensor([it.category for it in items])
            feats[f"photos_{split}"] = (features(items, f"{split} photo features"), fine,
                                        GROUPS.argmax(0)[fine])
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(cache, "wb") as f:
            torch.save(feats, f)
    xs, _, cs = feats["street_train"]
    head = fit_worn_head(model.category, temperature, xs, cs, feats["photos_train"][0], seed=cfg.seed)
    metrics = {}
    with torch.no_grad():
        for name, split in (("street_val_crops", "street_val"), ("validation_photos", "photos_validation")):
            f, fine, coarse = feats[split]
            fine = fine if bool((fine >= 0).all()) else None  # street boxes may lack a fine label
            photo = (model.category(f) / temperature).log_softmax(1)
            metrics[name] = {"n": len(f), "photo_head": scores(photo, fine, coarse),
                             "street_head": scores(head.street(f), fine, coarse),
                             "served": scores(head(f, model.category(f)), fine, coarse),
                             "gate_worn_share": round(float((torch.sigmoid(head.gate(f)) > 0.5).float().mean()), 4)}
    ck["state_dict"] = with_head(sd, "worn_category", head)
    recipe = {"street_crops": len(xs), "photos": len(feats["photos_train"][0]),
              "street": {**STREET_RECIPE, "hidden": head.street.fix[0].out_features},
              "gate": GATE_RECIPE, "seed": cfg.seed, "street_json": str(street_json), "data": str(cfg.data),
              "from_weights_sha256": sha256(weights), "seconds": round(time.time() - t0)}
    ck["meta"] = {**ck.get("meta", {}), "worn_head": {"recipe": recipe, "validation": metrics}}
    path = write_head(ck, cfg.out, "worn_head")
    log.info("worn head: %s; wrote %s", json.dumps(metrics), path)
    return path
