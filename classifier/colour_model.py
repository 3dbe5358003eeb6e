"""`sketchshop train classifier --colour-model`: the colour's name learned from labelled photos.

A photo's colour has two pieces of evidence: the colour head's probabilities (trained on studio renders only)
and the garment's measured dominant colour (`colour.measured_colour`). A hand-set rule combined them
(`colour.RULE`), and read real photos poorly where the camera shifts a colour: denim measures as a desaturated
grey-blue, navy as black or grey. This fits a multinomial logistic regression on the same evidence
(`colour.colour_features`) to hand-labelled real photos (`docs/labels/`) and, at a fixed share of the weight,
studio renders with their true colours, so that clean product shots keep what the rule read right. Its weights
are pulled towards the rule's, as strongly as cross-validation on the labelled photos says. The result is a small
JSON beside the weights, bound to them by their sha256 (the head's probabilities are part of the evidence).
Seconds on the 2-core CPU.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sketchshop import vocab
from sketchshop.config import PROJECT_ROOT
from sketchshop.errors import UserError
from sketchshop.files import atomic_write
from sketchshop.registry import sha256

from .colour import RULE, colour_features

log = logging.getLogger(__name__)
FILE = "colour_model.json"  # beside the classifier's weights
RECIPE = {"studio": 300, "studio_seed": 23, "studio_share": 0.3, "l2": [0.03, 0.01, 0.003, 0.001, 0.0003],
          "folds": 5, "steps": 500, "lr": 0.05}


def load_colour_model(weights: Path, weights_sha256: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(W, b) from the colour model beside `weights` (whose sha256 the caller has), or None (the hand-set rule)
    when there is none or it was fitted to other weights."""
    path = Path(weights).with_name(FILE)
    if not path.is_file():
        return None
    try:
        m = json.loads(path.read_text())
        w, b = np.asarray(m["W"], np.float64), np.asarray(m["b"], np.float64)
        fitted_to, colours = m["weights_sha256"], m["colours"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("%s unreadable (%s): colours named by the hand-set rule", path, e)
        return None
    fits = (w.shape, b.shape) == (RULE[0].shape, RULE[1].shape) and colours == list(vocab.COLOURS)
    if not fits or fitted_to != weights_sha256:
        log.warning("%s was fitted to other weights or colours: colours named by the hand-set rule", path)
        return None
    return w, b


def fit(x: np.ndarray, y: np.ndarray, weight: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """Weighted multinomial logistic regression whose W is pulled towards the rule's (L2), so that little data
    changes the rule little (full-batch Adam from the rule: deterministic)."""
    x, y, weight = torch.tensor(x, dtype=torch.float32), torch.tensor(y), torch.tensor(weight, dtype=torch.float32)
    rule_w = torch.tensor(RULE[0], dtype=torch.float32)
    w = rule_w.clone().requires_grad_(True)
    b = torch.tensor(RULE[1], dtype=torch.float32, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=RECIPE["lr"])
    for _ in range(RECIPE["steps"]):
        loss = ((F.cross_entropy(x @ w + b, y, reduction="none") * weight).sum() / weight.sum()
                + l2 * ((w - rule_w) ** 2).sum())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach().double().numpy(), b.detach().double().numpy()


def _accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    w, b = model
    return round(float(((x @ w + b).argmax(1) == y).mean()), 4)


def _evidence(clf, labelled, total: int) -> tuple[np.ndarray, np.ndarray]:
    """(`colour_features`, colour index) of each (image, colour) of the iterable `labelled`, one image at a time
    (a large label set never sits in memory)."""
    from tqdm import tqdm
    x, y = [np.zeros((0, 2 * len(vocab.COLOURS)))], []
    for im, colour in tqdm(labelled, total=total, desc="colour evidence", unit="photo", mininterval=10):
        x.append(colour_features(*clf.colour_evidence([im])))
        y.append(vocab.COLOURS.index(colour))
    return np.concatenate(x), np.array(y, int)


def train_colour_model(cfg, weights: Path, labels_csv: Path, images: Path) -> Path:
    """Fit the colour model of `weights` on the labelled photos (`labels_csv`, files under `images`) and studio
    renders; write it, with its metrics, into cfg.out (where `Classifier.load` finds it beside those weights)."""
    from sketchshop.datasets import read_labels_csv
    from sketchshop.images import WORK_SIDE, load_image
    from sketchshop.studio import generate_products

    from .predict import Classifier
    t0 = time.time()
    least = 5 * RECIPE["folds"]
    labelled = [s for s in read_labels_csv(labels_csv, images) if s.colour]
    if len(labelled) < least:
        raise UserError(f"{labels_csv}: {len(labelled)} photos with a colour; the colour model wants at least {least}")

    def readable():
        for s in labelled:
            try:
                yield load_image(s.path, max_side=WORK_SIDE), s.colour
            except UserError as e:  # one unreadable photo does not stop the fit
                log.warning("left out: %s", e)
    clf = Classifier.load(weights)
    x_real, y_real = _evidence(clf, readable(), len(labelled))
    if len(y_real) < least:
        raise UserError(f"{labels_csv}: {len(y_real)} readable photos with a colour; the colour model wants at least "
                        f"{least}")
    x_studio, y_studio = _evidence(clf, ((p.image, p.colour) for p in generate_products(
        RECIPE["studio"], seed=RECIPE["studio_seed"])), RECIPE["studio"])

    def fit_on(idx, l2):  # real photos idx and every studio render, at studio_share of the real photos' weight
        w = np.r_[np.ones(len(idx)), np.full(len(y_studio), RECIPE["studio_share"] * len(idx) / len(y_studio))]
        return fit(np.r_[x_real[idx], x_studio], np.r_[y_real[idx], y_studio], w, l2)

    folds = np.array_split(np.random.default_rng(cfg.seed).permutation(len(y_real)), RECIPE["folds"])
    cv = {}
    for l2 in RECIPE["l2"]:
        hits = [_accuracy(fit_on(np.concatenate(folds[:k] + folds[k + 1:]), l2), x_real[f], y_real[f]) * len(f)
                for k, f in enumerate(folds)]
        cv[str(l2)] = round(sum(hits) / len(y_real), 4)
    best = max(RECIPE["l2"], key=lambda v: cv[str(v)])
    model = fit_on(np.arange(len(y_real)), best)
    metrics = {"photos": len(y_real), "studio": len(y_studio), "cross_validation_top1": cv, "l2": best,
               "rule_top1": {"photos": _accuracy(RULE, x_real, y_real), "studio": _accuracy(RULE, x_studio, y_studio)},
               "fitted_top1": {"photos": _accuracy(model, x_real, y_real),
                               "studio": _accuracy(model, x_studio, y_studio)},
               "labels": os.path.relpath(labels_csv, PROJECT_ROOT), "images": os.path.relpath(images, PROJECT_ROOT),
               "recipe": RECIPE, "seconds": round(time.time() - t0)}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / FILE
    with atomic_write(path, "w") as f:
        json.dump({"weights_sha256": sha256(weights), "colours": list(vocab.COLOURS),
                   "features": "classifier.colour.colour_features: -dE/10 to each colour, then log p_head/5",
                   "W": model[0].round(6).tolist(), "b": model[1].round(6).tolist(), "metrics": metrics}, f, indent=1)
    path.chmod(0o644)
    log.info("colour model: %s; wrote %s", json.dumps({k: metrics[k] for k in ("cross_validation_top1", "l2",
                                                                               "rule_top1", "fitted_top1")}), path)
    return path
