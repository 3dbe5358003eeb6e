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
            a1.plot(ep, [h.get(k, np.nan) for h in hist], marker="o", label=f"{stage}: {k[6:]}")
        for k in sorted({k for h in hist for k in h if k.endswith("_top1") or k.startswith("sbir")}):
            a2.plot(ep, [h.get(k, np.nan) for h in hist], marker="o", label=f"{stage}: {k}")
        x0 = ep[-1]
    a1.set(title="training losses", xlabel="epoch (stages in sequence)")
    a2.set(title="validation (EMA weights)", xlabel="epoch (stages in sequence)", ylim=(0, 1))
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


def write_artifacts(cfg, model, histories: dict, val_items, extra_metrics: dict | None = None,
                    train_seconds: float | None = None) -> Path:
    """Evaluate the final model on the validation photos and write everything into cfg.out."""
    from .train import checkpoint_dict, predict_items
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    logits = predict_items(model, val_items, cfg.size)["category"]
    ms = (time.time() - t0) * 1000 / max(len(val_items), 1)
    y = [it.category for it in val_items]
    p = logits.argmax(1).tolist()
    cats = list(vocab.FINE_CATEGORIES)
    present = sorted(set(y))
    conf = confusion(y, p, len(cats))
    per_class = {cats[i]: round(float(conf[i, i] / max(conf[i].sum(), 1)), 4) for i in present}
    top1 = float(np.mean([a == b for a, b in zip(y, p)]))
    metrics = {"validation_photos": {"n": len(y), "category_top1": round(top1, 4), "per_class": per_class,
                                     "confusion_labels": cats, "confusion": conf.tolist(),
                                     "ms_per_image_batched": round(ms, 2)},
               **(extra_metrics or {}),
               "history": histories, "config": {k: (list(v) if isinstance(v, tuple) else v)
                                                 for k, v in asdict(cfg).items()}}
    meta = {"trained": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "train_seconds": train_seconds,
            "val_category_top1": round(top1, 4), "torch": torch.__version__, "machine": platform.machine()}
    weights = out / DEFAULT_WEIGHTS["classifier"]
    with atomic_write(weights, "wb") as f:
        torch.save(checkpoint_dict(model, cfg, meta), f)
    metrics["weights_sha256"] = sha256(weights)
    metrics["weights_mb"] = round(weights.stat().st_size / 2**20, 2)
    metrics["train_seconds"] = train_seconds
    with atomic_write(out / "metrics.json", "w") as f:
        json.dump(metrics, f, indent=1)
    plot_curves(histories, out / "curves.png")
    keep = present + [i for i in range(len(cats)) if i not in present and conf[:, i].any()]
    keep.sort()
    plot_confusion(conf[np.ix_(keep, keep)], [cats[i] for i in keep], out / "confusion.png",
                   f"validation photos: top-1 {top1:.3f} (n={len(y)})")
    log.info("wrote %s (val category top-1 %.4f, sha256 %s)", weights, top1, metrics["weights_sha256"][:16])
    return weights
