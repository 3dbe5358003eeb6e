"""Cached training pairs: garment cut-outs, masks and sketch line skeletons, built once per photo folder.

Segmentation and thinning cost ~0.2 s a photo, too slow to redo every epoch, so they are
computed once into `var/colorizer/pairs/` (never committed); sketches are re-rendered and hints
re-sampled from the cache every epoch.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sketchshop import vocab
from sketchshop.config import settings
from sketchshop.datasets import IMAGE_EXTS
from sketchshop.errors import UserError
from sketchshop.files import atomic_write

from .data import cutout_canvas, segment_garment, sketch_lines

log = logging.getLogger(__name__)


def category_index(name: str | None) -> int:
    """0 for unknown/None, else 1 + the fine category's index (folder aliases allowed)."""
    if not name:
        return 0
    try:
        c = vocab.category(name, allow_coarse=False)
    except (vocab.VocabError, TypeError):
        return 0
    return vocab.FINE_CATEGORIES.index(c) + 1 if c in vocab.FINE_CATEGORIES else 0


def list_images(root) -> list[tuple[Path, str | None]]:
    """Images under `root`, recursing into class folders; the folder name is the category hint."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a directory")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise UserError(f"{root}: no images found")
    return [(p, p.parent.name if p.parent != root else None) for p in files]


class PairStore:
    """Garment pairs for a list of photos, computed on first use and cached one file per photo.

    The cache key is the photo's path, size and mtime plus the pipeline version, so an edited
    photo is recomputed; files are written atomically, so a builder process and the trainer can
    fill the same cache at once and an interrupted run loses nothing.
    """

    VERSION = "v1"

    def __init__(self, items: list[tuple[Path, str | None]], size: int = 256):
        self.items, self.size = items, size
        self.dir = settings().path("colorizer", "pairs", str(size), "x").parent
        self._mem: dict[int, tuple] = {}

    @classmethod
    def from_dirs(cls, dirs, size: int = 256, limit: int | None = None, seed: int = 0) -> "PairStore":
        """All photos under `dirs`, or a seeded random `limit` of them (fewer photos, more passes each,
        when CPU time is short: cutting a photo out costs more than a training pass over it)."""
        items = [it for d in dirs for it in list_images(d)]
        if limit and limit < len(items):
            keep = np.sort(np.random.default_rng(seed).choice(len(items), limit, replace=False))
            items = [items[i] for i in keep]
        return cls(items, size)

    def __len__(self):
        return len(self.items)

    def _file(self, i: int) -> Path:
        p, _ = self.items[i]
        st = p.stat()
        key = hashlib.sha1(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}|{self.size}|{self.VERSION}".encode()).hexdigest()
        return self.dir / key[:2] / f"{key}.npz"

    def cached(self, i: int) -> bool:
        return i in self._mem or self._file(i).is_file()

    def get(self, i: int):
        """(target HxWx3, mask HxW 0/255, lines HxW 0/1, category index) or None for an unreadable photo."""
        if i in self._mem:
            return self._mem[i]
        f = self._file(i)
        r = None
        if f.is_file():
            try:
                z = np.load(f)
                r = (z["target"], z["mask"], np.unpackbits(z["lines"], axis=-1)[:, :self.size], int(z["category"])) \
                    if z["ok"] else None
            except (OSError, ValueError, KeyError):
                log.warning("%s: unreadable cache entry, recomputing", f)
                f.unlink(missing_ok=True)
                return self.get(i)
        else:
            r = self._compute(i)
            f.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(f, "wb") as fh:
                if r is None:
                    np.savez(fh, ok=False)
                else:
                    np.savez_compressed(fh, ok=True, target=r[0], mask=r[1], lines=np.packbits(r[2].astype(bool), axis=-1),
                                        category=r[3])
        self._mem[i] = r
        return r

    def _compute(self, i: int):
        from sketchshop.images import load_image
        path, cat = self.items[i]
        try:
            im = load_image(path, mode="RGBA")
        except UserError as e:
            log.warning("skipped: %s", e)
            return None
        alpha = np.asarray(im)[..., 3]
        if alpha.min() < 128 and (alpha > 127).mean() > 0.01:  # a cut-out: its alpha is the garment mask
            t, m = cutout_canvas(im, self.size)
        else:
            t, m = segment_garment(im.convert("RGB"), self.size)
        return t, m, sketch_lines(t, m), category_index(cat)

    def build(self, desc: str = "segment+sketch") -> int:
        """Fill the cache for every photo (the slow part); returns how many are usable."""
        ok = 0
        for i in tqdm(range(len(self)), desc=desc, unit="img"):
            ok += self.get(i) is not None
            self._mem.pop(i, None)  # building is for the disk cache, not to hold everything in memory
        return ok


def studio_photos(n: int, seed: int = 0, size: int = 384) -> Path:
    """Render `n` studio products as RGBA cut-outs (alpha = exact mask) in class folders; cached."""
    from PIL import Image

    from sketchshop.studio import render_product
    root = settings().path("colorizer", "studio", f"seed{seed}-{size}", "x").parent
    for i in tqdm(range(n), desc="studio renders", unit="img"):
        p0 = next(root.glob(f"*/{i:05d}.png"), None)
        if p0 is not None:
            continue
        prod = render_product(seed, i, size=size)
        im = prod.image.convert("RGBA")
        im.putalpha(prod.mask)
        out = root / prod.category / f"{i:05d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(out, "wb") as f:
            im.save(f, format="PNG")
    return root
