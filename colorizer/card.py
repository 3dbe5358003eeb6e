"""The model card: what the weights are, how they were trained and what they measured."""
from __future__ import annotations

from sketchshop.files import atomic_write


def plot_history(history: list[dict], path) -> None:
    """Training curves: L1 (train crops and holdout) and SSIM (train crops and holdout), per epoch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ep = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    a1.plot(ep, [h["l1"] for h in history], label="train L1")
    a1.plot(ep, [h["holdout_l1"] for h in history], label="holdout L1")
    a2.plot(ep, [1 - h["ssim"] for h in history], label="train SSIM")
    a2.plot(ep, [h["holdout_ssim_full_canvas"] for h in history], label="holdout SSIM (whole canvas)")
    full = [h["epoch"] for h in history if h.get("full_size")]
    for a in (a1, a2):
        if full:
            a.axvspan(full[0] - 0.5, full[-1] + 0.5, color="grey", alpha=0.15, label="full-canvas epochs")
        a.set(xlabel="epoch")
        a.grid(alpha=.3)
        a.legend(fontsize=8)
    a1.set(title="L1 (images in [-1, 1])")
    a2.set(title="SSIM")
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)

TEMPLATE = """# Colouriser (pix2pix) — model card

Turns a garment sketch (dark strokes on white) plus a few colour hints into a garment image on
white. Load with `colorizer.Colorizer.load()`; file `colorizer.pt` ({size_mb:.1f} MB, fp32).

## Model
- Generator: U-Net `unet-s`, {params:,} parameters, {gflops} GFLOPs per {size} px image. Input 9
  channels at {size}x{size}: sketch ink, hint RGB, hint mask, hint colours spread by multi-scale
  normalised convolution, inside-the-outline mask (`colorizer.data.encode`); optional garment
  category embedding at the bottleneck (trained with the category hidden 30% of the time).
  The output is a residual on a base image (spread hint colours inside the outline, white outside);
  its last layer starts at zero.
- Discriminator (training only): PatchGAN, 3 stride-2 layers, LSGAN loss.
- Losses: {l1} x L1 + {ssim} x (1 - SSIM) + {adv} x adversarial.
- Determinism: batch-norm uses its running statistics (eval mode) and is folded into the convs at
  load; there is no dropout. The same input gives the same output, and an export of the eval
  graph is exactly what was evaluated (the pix2pix test-time batch-statistics trap is avoided on purpose).

## Training data and run
- Photos: {data}{subset}. Garments cut out with GrabCut initialised from a border colour model
  (`colorizer.data.segment_garment`), padded to a square on white, {size} px.
- Sketch: XDoG edges thinned to one-pixel skeletons plus the traced outline, re-rendered every draw
  with random stroke width (1-3 px), wobble, pen lifts, dropped folds and blur.
- Hints: 0 (10%) or 1-60 dots of radius 1-3 px, about a third as short strokes in uniform areas,
  colours from the photo; resampled every draw. Random horizontal flips.
- Run: {epochs} epochs of up to {epoch_size} pairs ({steps} steps, batch {batch}); {n_crop} on random {crop} px
  crops around the garment, {n_full} on the full canvas; Adam lr {lr} (constant for half the run, then linearly down to 5 %), beta1 0.5; {minutes:.0f} min wall on the
  2-core CPU.
- Per-epoch holdout (24 training photos, full canvas, eval mode): `metrics.json` `history`, `curves.png`.

{evals}
## Limits
{limits}
"""


def write_card(path, meta: dict, weights_mb: float, gflops: float, evals: str = "", limits: str = "") -> None:
    h = meta.get("history") or [{}]
    text = TEMPLATE.format(
        size_mb=weights_mb, params=meta.get("params", 0), gflops=f"{gflops:.2f}", size=meta.get("size", 256),
        l1=meta["losses"]["l1"], ssim=meta["losses"]["ssim"], adv=meta["losses"]["adv_lsgan"],
        data=", ".join(meta.get("data", [])),
        subset=f" (a seeded random {meta['max_photos']} of them)" if meta.get("max_photos") else "",
        epochs=len(meta.get("history") or []), epoch_size=meta.get("epoch_size", "all"), steps=meta.get("steps"),
        batch=meta.get("batch"), crop=meta.get("crop"),
        n_full=sum(1 for e in h if e.get("full_size")), n_crop=sum(1 for e in h if not e.get("full_size")), lr=meta.get("lr"), minutes=h[-1].get("minutes", 0.0),
        evals=evals or "## Evaluation\nNot evaluated yet: run `sketchshop eval colorizer`.\n",
        limits=limits or "- See the evaluation above.")
    with atomic_write(path) as f:
        f.write(text)
