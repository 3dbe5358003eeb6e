"""Content-addressed image store: `<data_dir>/images/<sha[:2]>/<sha256>.<ext>`.

An image enters only after a full decode and a minimum-size check; the file is written to a temp
name, fsynced and renamed, so a crash never leaves a half-written image under a real name. The
perceptual hash (64-bit DCT pHash) finds near-duplicates that differ in bytes.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sketchshop.errors import BadShape
from sketchshop.images import load_image

EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif",
       "HEIF": "heic", "AVIF": "avif"}
NEAR_DUPLICATE_BITS = 4   # pHash Hamming distance at or below which two images count as one


@dataclass
class StoredImage:
    sha256: str
    path: str          # relative to the store root
    width: int
    height: int
    bytes: int
    phash: str


def phash(im: Image.Image) -> str:
    """64-bit perceptual hash: sign of the 8x8 low DCT frequencies against their median."""
    import cv2
    g = np.asarray(im.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float32)
    low = cv2.dct(g)[:8, :8].flatten()
    bits = low > np.median(low[1:])
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


class PhashIndex:
    """Near-duplicate lookup over many pHashes (vectorised Hamming distance)."""

    def __init__(self, items: dict[str, str] | None = None):
        self._shas: list[str] = []
        self._bits = np.zeros(0, dtype=np.uint64)
        for sha, h in (items or {}).items():
            self.add(sha, h)

    def add(self, sha: str, h: str) -> None:
        self._shas.append(sha)
        self._bits = np.append(self._bits, np.uint64(int(h, 16)))

    def nearest(self, h: str, max_bits: int = NEAR_DUPLICATE_BITS, exclude: str | None = None) -> str | None:
        if not self._shas:
            return None
        d = np.bitwise_count(self._bits ^ np.uint64(int(h, 16)))
        for i in np.argsort(d, kind="stable"):
            if d[i] > max_bits:
                return None
            if self._shas[i] != exclude:
                return self._shas[i]
        return None


class ImageStore:
    def __init__(self, root):
        self.root = Path(root)

    def path(self, sha256: str, rel: str | None = None) -> Path | None:
        """Absolute path of a stored image (None if absent)."""
        if rel:
            p = self.root / rel
            return p if p.is_file() else None
        d = self.root / sha256[:2]
        if d.is_dir():
            for p in d.glob(f"{sha256}.*"):
                return p
        return None

    def put(self, data: bytes, *, min_side: int = 64, max_pixels: int = 40_000_000) -> StoredImage:
        """Validate (decode fully, min side) and store `data`; idempotent for the same bytes."""
        im = load_image(data, max_pixels=max_pixels)   # raises ImageError / TooLarge
        if min(im.size) < min_side:
            raise BadShape(f"{im.size[0]}x{im.size[1]} is below the minimum side of {min_side} px")
        fmt = im.info["format"] or "JPEG"
        sha = hashlib.sha256(data).hexdigest()
        rel = f"{sha[:2]}/{sha}.{EXT.get(fmt, 'img')}"
        dest = self.root / rel
        if not (dest.is_file() and dest.stat().st_size == len(data)):
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, dest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return StoredImage(sha, rel, im.size[0], im.size[1], len(data), phash(im))

    def clean_temp(self) -> int:
        """Remove temp files a killed writer left behind. Returns how many."""
        n = 0
        if self.root.is_dir():
            for p in self.root.glob("*/.tmp-*"):
                p.unlink(missing_ok=True)
                n += 1
        return n
