"""pix2pix training: L1 (x100) + SSIM + LSGAN PatchGAN loss, resumable, with per-epoch sample grids
and curves; learning rate constant for half the run (epochs, or the time budget), then decaying.

CPU budget drives the recipe: most epochs train on random crops around the garment (same pixel
scale as inference, a quarter of the cost) and the last epochs on the full canvas so
batch-norm statistics and global context match inference. Sketches are re-rendered and hints
re-sampled every time a pair is drawn.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sketchshop.config import settings
from sketchshop.errors import UserError
from sketchshop.files import atomic_write
from sketchshop.registry import sha256

from .card import plot_history, write_card
from .data import encode, render_sketch, sample_hints
from .pairs import PairStore

log = logging.getLogger(__name__)

FORMAT = "sketchshop-colorizer/1"


def run_dir() -> Path:
    return settings().path("train", "colorizer", "x").parent


class PairDataset:
    """Draws (input, target, category) from cached pairs with fresh sketch/hint/augmentation each time."""

    def __init__(self, pairs: PairStore, crop: int | None, seed: int, cat_drop: float = 0.3):
        self.p, self.crop, self.seed, self.cat_drop = pairs, crop, seed, cat_drop
        self.epoch = 0

    def __len__(self):
        return len(self.p)

    def __getitem__(self, i):
        import torch
        rng = np.random.default_rng((self.seed, self.epoch, i))
        r = self.p.get(i)
        while r is None:  # unreadable photo: draw another one
            i = int(rng.integers(len(self.p)))
            r = self.p.get(i)
        t, m, ln, cat = r
        if rng.random() < 0.5:
            t, m, ln = t[:, ::-1], m[:, ::-1], ln[:, ::-1]
        t, m, ln = (np.ascontiguousarray(a) for a in (t, m, ln))
        sk = np.asarray(render_sketch(ln, m, rng))
        n = 0 if rng.random() < 0.1 else int(rng.integers(1, 61))
        hints = np.asarray(sample_hints(t, m, n, rng, strokes=True, radius=int(rng.choice([1, 2, 2, 3]))))
        x = encode(sk, hints)
        y = t.astype(np.float32).transpose(2, 0, 1) / 127.5 - 1.0
        if self.crop and self.crop < t.shape[0]:
            c, s = self.crop, t.shape[0]
            ys, xs = np.nonzero(m)
            if len(ys):
                j = rng.integers(len(ys))
                y0 = int(np.clip(ys[j] - c // 2, 0, s - c))
                x0 = int(np.clip(xs[j] - c // 2, 0, s - c))
            else:
                y0 = x0 = (s - c) // 2
            x, y = x[:, y0:y0 + c, x0:x0 + c], y[:, y0:y0 + c, x0:x0 + c]
        cat = 0 if rng.random() < self.cat_drop else cat
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y)), cat


def lr_factor(progress: float) -> float:
    """pix2pix's schedule: constant for the first half of the run, then linear decay to 5 %."""
    return 1.0 if progress < 0.5 else max(0.05, 1.0 - (progress - 0.5) * 2 * 0.95)


def ssim_loss(a, b):
    """1 - SSIM (gaussian 11x11, sigma 1.5) on images in [-1, 1], mean over channels and pixels."""
    import torch
    import torch.nn.functional as F
    a, b = (a + 1) / 2, (b + 1) / 2
    g = torch.exp(-((torch.arange(11, dtype=a.dtype) - 5) ** 2) / (2 * 1.5 ** 2))
    g = (g / g.sum())
    w = (g[:, None] * g[None, :]).expand(a.shape[1], 1, 11, 11).contiguous()
    f = lambda z: F.conv2d(z, w, padding=5, groups=a.shape[1])  # noqa: E731
    mu_a, mu_b = f(a), f(b)
    saa, sbb, sab = f(a * a) - mu_a ** 2, f(b * b) - mu_b ** 2, f(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    return 1 - s.mean()


def save_grid(path, xs, ys, outs, n=6):
    """Rows: sketch, hints (on white), output, target."""
    def im(t):
        return Image.fromarray(((t.permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8))
    n = min(n, len(xs))
    s = xs.shape[-1]
    grid = Image.new("RGB", (n * s, 4 * s), "white")
    for i in range(n):
        x = xs[i].numpy()
        sk = Image.fromarray((255 - x[0] * 255).clip(0, 255).astype(np.uint8)).convert("RGB")
        hm = x[4] > 0.5
        h = np.full((s, s, 3), 255, np.uint8)
        h[hm] = ((x[1:4].transpose(1, 2, 0)[hm] + 1) * 127.5).clip(0, 255).astype(np.uint8)
        for r, tile in enumerate([sk, Image.fromarray(h), im(outs[i]), im(ys[i])]):
            grid.paste(tile, (i * s, r * s))
    d = ImageDraw.Draw(grid)
    for r, name in enumerate(["sketch", "hints", "output", "target"]):
        d.text((3, r * s + 3), name, fill=(200, 0, 0))
    with atomic_write(path, "wb") as f:
        grid.save(f, format="PNG")


def gflops(gen, size: int) -> float:
    """Forward GFLOPs of one image (counted by torch, not estimated)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from .model import IN_CHANNELS
    was = gen.training
    gen.eval()
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        gen(torch.zeros(1, IN_CHANNELS, size, size), torch.zeros(1, dtype=torch.long))
    gen.train(was)
    return fc.get_total_flops() / 1e9


def save_weights(path, gen, meta: dict):
    """The shipped format: fp32 eval-mode state dict plus what `Colorizer.load` needs to rebuild it."""
    import torch
    sd = {k: v.detach().float().cpu().clone() for k, v in gen.state_dict().items()}
    with atomic_write(path, "wb") as f:
        torch.save({"format": FORMAT, "arch": "unet-s", "kwargs": {"widths": list(gen.widths)},
                    "size": meta.get("size", 256), "meta": meta, "state_dict": sd}, f)


def train(data: list[str], *, size: int = 256, epochs: int = 12, crop: int = 128, full_epochs: int = 2,
          batch: int = 16, lr: float = 2e-4, l1: float = 100.0, ssim: float = 10.0, adv: float = 1.0,
          epoch_size: int | None = None, max_minutes: float | None = None, workers: int = 0,
          threads: int = 2, seed: int = 0, out: str | None = None, resume: bool = True,
          max_photos: int | None = None, studio: int = 0, init: str | None = None) -> dict:
    """Train (or resume) the generator; returns the metrics dict also written to metrics.json.

    `init`: a colouriser weights file whose generator a new run starts from (its discriminator starts afresh).
    """
    import torch
    from torch.utils.data import DataLoader, Subset

    from .model import PatchDiscriminator, UNetGenerator, n_params

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rd = run_dir()
    if studio:  # the studio's renders: exact masks, every category and colour
        from .pairs import studio_photos
        data = list(data) + [str(studio_photos(studio, seed))]
    pairs = PairStore.from_dirs(data, size, limit=max_photos, seed=seed)
    # a fixed holdout of the training photos for the per-epoch grid and loss (the real
    # validation folder is kept for `eval colorizer`, never used to pick anything)
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_hold = min(24, len(pairs) // 5)
    hold, tr = order[:n_hold], order[n_hold:]
    if len(tr) < batch:
        raise UserError(f"only {len(tr)} training pairs in {', '.join(map(str, data))}: need at least {batch}")
    log.info("%d training pairs, %d holdout", len(tr), len(hold))

    gen, disc = UNetGenerator(), PatchDiscriminator()
    opt_g = torch.optim.Adam(gen.parameters(), lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr, betas=(0.5, 0.999))
    ckpt = rd / "checkpoint.pt"
    history, start, step = [], 0, 0
    # what a checkpoint must have been trained with to be resumed (more epochs may be asked for)
    config = {"data": [str(Path(d).resolve()) for d in data], "size": size, "crop": crop, "full_epochs": full_epochs,
              "batch": batch, "lr": lr, "losses": [l1, ssim, adv], "epoch_size": epoch_size,
              "max_photos": max_photos, "seed": seed, "init": str(init) if init else None}
    if resume and ckpt.is_file():
        st = torch.load(ckpt, map_location="cpu", weights_only=False)
        theirs = st.get("config", config)  # checkpoints from before the check carry none
        if theirs != config:
            differ = ", ".join(k for k in config if theirs.get(k) != config[k])
            raise UserError(f"{ckpt}: checkpoint of another configuration ({differ} differ); pass --no-resume to "
                            "start afresh, or set SKETCHSHOP_DATA_DIR to keep both runs")
        if st["epoch"] >= epochs and (rd / "metrics.json").is_file():
            log.info("%s: already trained for %d of %d epochs; nothing to do (ask for more --epochs to go on)",
                     ckpt, st["epoch"], epochs)
            return json.loads((rd / "metrics.json").read_text())
        gen.load_state_dict(st["gen"]), disc.load_state_dict(st["disc"])
        opt_g.load_state_dict(st["opt_g"]), opt_d.load_state_dict(st["opt_d"])
        history, start, step = st["history"], st["epoch"], st["step"]
        log.info("resumed from %s at epoch %d", ckpt, start)
    elif init:
        try:
            gen.load_state_dict(torch.load(init, map_location="cpu", weights_only=True)["state_dict"])
        except Exception as e:  # noqa: BLE001 - a missing, foreign or corrupt file
            raise UserError(f"--init {init}: not colouriser weights of this model ({type(e).__name__})") from None
        log.info("generator initialised from %s", init)
    log.info("generator %.2f M params, discriminator %.2f M", n_params(gen) / 1e6, n_params(disc) / 1e6)

    hold_ds = PairDataset(pairs, None, seed + 1, cat_drop=0.0)
    hold_batch = [hold_ds[int(i)] for i in hold]
    hx = torch.stack([b[0] for b in hold_batch])
    hy = torch.stack([b[1] for b in hold_batch])
    hc = torch.tensor([b[2] for b in hold_batch])
    t0 = time.time()
    spent = history[-1]["minutes"] if history else 0.0

    def minutes():
        return spent + (time.time() - t0) / 60

    from tqdm import tqdm
    mse = torch.nn.MSELoss()
    epoch = start
    while epoch < epochs:
        # with a time budget, keep the last 30% of it for full-canvas epochs
        late = bool(max_minutes) and minutes() > 0.7 * max_minutes
        if late and epoch < epochs - full_epochs:
            log.info("time budget: skipping to the full-canvas epochs")
            epoch = epochs - full_epochs
        full = epoch >= epochs - full_epochs
        ds = PairDataset(pairs, None if full else crop, seed)
        ds.epoch = epoch
        idx = tr if not epoch_size else np.random.default_rng((seed, epoch)).choice(tr, min(epoch_size, len(tr)), replace=False)
        bs = max(2, batch // 4) if full else batch
        dl = DataLoader(Subset(ds, idx.tolist()), batch_size=bs, shuffle=True, num_workers=workers,
                        drop_last=True, generator=torch.Generator().manual_seed(seed * 1000 + epoch),
                        persistent_workers=False)
        gen.train(), disc.train()
        sums = {"l1": 0.0, "ssim": 0.0, "g_adv": 0.0, "d": 0.0}
        nb = 0
        bar = tqdm(dl, desc=f"epoch {epoch + 1}/{epochs}{' (full)' if full else ''}", unit="batch")
        for x, y, c in bar:
            lr_now = lr * lr_factor(minutes() / max_minutes if max_minutes else (epoch + nb / len(dl)) / epochs)
            for grp in (*opt_g.param_groups, *opt_d.param_groups):
                grp["lr"] = lr_now
            fake = gen(x, c)
            # discriminator (LSGAN)
            opt_d.zero_grad(set_to_none=True)
            pr, pf = disc(x, y), disc(x, fake.detach())
            ld = 0.5 * (mse(pr, torch.ones_like(pr)) + mse(pf, torch.zeros_like(pf)))
            ld.backward()
            opt_d.step()
            # generator
            opt_g.zero_grad(set_to_none=True)
            pf = disc(x, fake)
            la = mse(pf, torch.ones_like(pf))
            l_1 = (fake - y).abs().mean()
            ls = ssim_loss(fake, y) if ssim else torch.zeros(())
            (adv * la + l1 * l_1 + ssim * ls).backward()
            opt_g.step()
            step += 1
            nb += 1
            for k, v in (("l1", l_1), ("ssim", ls), ("g_adv", la), ("d", ld)):
                sums[k] += v.item()
            bar.set_postfix(l1=f"{sums['l1'] / nb:.4f}", ssim=f"{1 - sums['ssim'] / nb:.3f}")
            if max_minutes and not full and minutes() > 0.7 * max_minutes:
                break  # go on to the full-canvas epochs
            if max_minutes and minutes() > max_minutes:
                break
        gen.eval()
        with torch.inference_mode():
            ho = torch.cat([gen(hx[i:i + 8], hc[i:i + 8]) for i in range(0, len(hx), 8)])
            h_l1 = float((ho - hy).abs().mean())
            h_ssim = 1 - float(ssim_loss(ho, hy))
        rec = {"epoch": epoch + 1, "full_size": full, "batches": nb, **{k: v / max(nb, 1) for k, v in sums.items()},
               "holdout_l1": h_l1, "holdout_ssim_full_canvas": h_ssim, "minutes": minutes()}
        history.append(rec)
        log.info("epoch %d: %s", epoch + 1, json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in rec.items()}))
        save_grid(rd / f"samples_epoch{epoch + 1:02d}.png", hx[:6], hy[:6], ho[:6])
        with atomic_write(ckpt, "wb") as f:
            torch.save({"gen": gen.state_dict(), "disc": disc.state_dict(), "opt_g": opt_g.state_dict(),
                        "opt_d": opt_d.state_dict(), "history": history, "epoch": epoch + 1, "step": step,
                        "config": config}, f)
        meta = {"size": size, "epochs": epoch + 1, "steps": step, "train_pairs": int(len(tr)), "max_photos": max_photos, "data": [str(d) for d in data],
                "losses": {"l1": l1, "ssim": ssim, "adv_lsgan": adv}, "crop": crop, "full_epochs": full_epochs,
                "batch": batch, "lr": lr, "epoch_size": epoch_size, "params": n_params(gen), "history": history,
                "init": init and {"file": str(init), "sha256": sha256(init)}}
        save_weights(Path(out) if out else rd / "colorizer.pt", gen, meta)
        with atomic_write(rd / "metrics.json") as f:
            json.dump(meta, f, indent=2)
        wpath = Path(out) if out else rd / "colorizer.pt"
        write_card(rd / "card.md", meta, wpath.stat().st_size / 2 ** 20, gflops(gen, size))
        plot_history(history, rd / "curves.png")
        epoch += 1
        if max_minutes and minutes() > max_minutes:
            log.warning("time budget of %.0f min reached after epoch %d", max_minutes, epoch)
            break
    return meta
