"""The demo shop's stock: products from the synthetic garment studio (default) or from real photos.

The shop speaks its own words (``Tees``, ``Jackets & Coats``, ``Sand``, ``Crew neck``): a crawl
spec maps them onto the shared vocabulary, as it would for a real shop.
"""
from __future__ import annotations

import io
import json
import logging
import os
import random
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from sketchshop import vocab
from sketchshop.errors import UserError

log = logging.getLogger(__name__)

# vocabulary name -> (shop display name, URL slug)
CATEGORY_NAMES = {
    "t-shirt": ("Tees", "tees"), "longsleeve": ("Long Sleeve Tops", "long-sleeve-tops"),
    "shirt": ("Shirts & Blouses", "shirts-blouses"), "outerwear": ("Jackets & Coats", "jackets-coats"),
    "dress": ("Dresses", "dresses"), "skirt": ("Skirts", "skirts"), "pants": ("Trousers", "trousers"),
    "shorts": ("Shorts", "shorts"), "hat": ("Hats & Caps", "hats-caps"), "shoes": ("Footwear", "footwear"),
    "bag": ("Bags", "bags"),
}
COLOUR_NAMES = {
    "black": ("Black", "black"), "white": ("White", "white"), "gray": ("Grey", "grey"), "red": ("Red", "red"),
    "pink": ("Pink", "pink"), "orange": ("Orange", "orange"), "yellow": ("Yellow", "yellow"),
    "green": ("Green", "green"), "blue": ("Blue", "blue"), "navy": ("Navy", "navy"),
    "purple": ("Purple", "purple"), "brown": ("Brown", "brown"), "beige": ("Sand", "sand"),
}
ATTRIBUTE_NAMES = {  # vocabulary attribute -> (shop name, {vocab value: shop value})
    "sleeve": ("Sleeve", {"none": "Sleeveless", "short": "Short sleeve", "long": "Long sleeve"}),
    "length": ("Length", {"short": "Mini", "knee": "Knee length", "long": "Maxi"}),
    "pattern": ("Pattern", {"solid": "Plain", "stripe": "Striped", "check": "Checked", "dot": "Polka dot",
                            "print": "Printed"}),
    "neckline": ("Neckline", {"round": "Crew neck", "v": "V-neck", "collar": "Collar", "hood": "Hooded"}),
}
FITS = ("Regular", "Slim", "Relaxed")  # a shop attribute outside the vocabulary: kept raw by the crawler
BRANDS = ("Northwind", "Atelier Nova", "Kestrel", "Lumen & Co", "Hollow Pine", "Marlow", "Ostra", "Vela")


@dataclass
class ShopProduct:
    """One product with its ground truth (vocabulary labels) and its JPEG images."""
    id: str
    title: str
    brand: str
    price: float
    currency: str
    category: str                  # vocabulary (fine)
    colour: str                    # vocabulary
    attributes: dict[str, str]     # vocabulary
    fit: str
    images: list[bytes] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return "-".join("".join(c if c.isalnum() else " " for c in self.title.lower()).split())


def _jpeg(im: Image.Image, max_side: int = 512) -> bytes:
    im = im.convert("RGB")
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=88)
    return buf.getvalue()


def _from_studio(n: int, seed: int, size: int):
    try:
        from sketchshop.studio import generate_products
    except ImportError as e:
        raise UserError(f"the garment studio is not available ({e}); use --source DIR") from None
    for sp in generate_products(n, seed=seed, size=size):
        yield (sp.category, sp.colour, dict(sp.attributes), sp.image, getattr(sp, "title", None),
               getattr(sp, "brand", None), getattr(sp, "price", None), getattr(sp, "currency", None))


def _dominant_colour(im: Image.Image) -> str:
    """The shop's own colour label for a real photo: median of the central region, named."""
    import numpy as np
    a = np.asarray(im.convert("RGB").resize((64, 64)))[20:44, 20:44].reshape(-1, 3)
    return vocab.name_colour(tuple(int(v) for v in np.median(a, axis=0)))


def _from_source(source, n: int, seed: int):
    from sketchshop.datasets import read_imagefolder, read_labels_csv
    from sketchshop.images import load_image
    src = Path(source)
    if src.is_file() and src.suffix.lower() == ".csv":
        samples = read_labels_csv(src)
    elif (src / "labels.csv").is_file():
        samples = read_labels_csv(src / "labels.csv")
    else:
        samples = read_imagefolder(src)
    samples = [s for s in samples if s.category in vocab.FINE_CATEGORIES]
    random.Random(seed).shuffle(samples)
    for s in samples[:n]:
        try:
            im = load_image(s.path)
        except UserError as e:
            log.warning("skipping %s", e)
            continue
        yield s.category, s.colour or _dominant_colour(im), dict(s.attributes), im, None, None, None, None


def build_products(n: int = 120, seed: int = 0, source=None, size: int = 384, sale: float = 0.0,
                   cache_dir: Path | None = None) -> list[ShopProduct]:
    """The shop's products, deterministic for (n, seed, source). `sale` discounts every 3rd price. With `cache_dir`,
    studio stock is read from a file there when one was rendered with the same inputs and code, else rendered
    and written there: a restarted demo shop (each `make demo`) serves at once instead of after ~20 s."""
    if n < 1:
        raise UserError("--products must be at least 1")
    if cache_dir is not None and source is None:
        path = Path(cache_dir) / f"stock-{_stock_key(n, seed, size, sale)}.zip"
        try:
            return _read_stock(path)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
            log.warning("rendering the stock again: %s is unreadable (%s)", path, e)
        out = build_products(n, seed, None, size, sale)
        try:
            _write_stock(path, out)
        except OSError as e:
            log.warning("the stock is not cached: %s", e)
        return out
    rng = random.Random(seed * 7919 + 1)
    it = _from_source(source, n, seed) if source else _from_studio(n, seed, size)
    out = []
    try:
        from tqdm import tqdm
        it = tqdm(it, total=n, desc="shop stock", unit="product", leave=False, disable=None)
    except ImportError:  # pragma: no cover
        pass
    for i, (cat, col, attrs, im, title, brand, price, currency) in enumerate(it):
        cat, col = vocab.category(cat, allow_coarse=False), vocab.colour(col)
        attrs = {a: vocab.attribute_value(a, v) for a, v in attrs.items() if a in vocab.attributes_for(cat)}
        brand = brand or rng.choice(BRANDS)
        price = round(float(price if price is not None else rng.uniform(9, 190)), 2)
        if sale and i % 3 == 0:
            price = round(price * (1 - sale), 2)
        title = title or f"{COLOUR_NAMES[col][0]} {CATEGORY_NAMES[cat][0].split(' & ')[0].rstrip('s')} {i:04d}"
        pid = f"P{seed:03d}{i:05d}"
        out.append(ShopProduct(pid, title, brand, price, currency or "EUR", cat, col, attrs,
                               rng.choice(FITS), [_jpeg(im)]))
    if not out:
        raise UserError(f"{source}: no usable images")
    return out


STOCKS_KEPT = 4  # cached studio stocks (the demo's ~30 MB, and a few others)


def _stock_key(n: int, seed: int, size: int, sale: float) -> str:
    """Names a studio stock by its inputs and by the code and libraries that render it."""
    import hashlib

    import cv2
    import numpy
    import PIL

    import sketchshop
    h = hashlib.sha256(repr((n, seed, size, sale, PIL.__version__, numpy.__version__, cv2.__version__)).encode())
    pkg = Path(sketchshop.__file__).parent
    for f in [*sorted((pkg / "studio").glob("*.py")), pkg / "vocab.py", Path(__file__)]:
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _write_stock(path: Path, products: list[ShopProduct]) -> None:
    from sketchshop.files import atomic_write, keep_newest
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{**{k: v for k, v in asdict(p).items() if k != "images"}, "n_images": len(p.images)} for p in products]
    with atomic_write(path, "wb") as f, zipfile.ZipFile(f, "w") as z:  # JPEGs: stored, not deflated again
        z.writestr("stock.json", json.dumps(rows))
        for p in products:
            for i, b in enumerate(p.images):
                z.writestr(f"{p.id}/{i}.jpg", b)
    keep_newest(path.parent, "stock-*.zip", STOCKS_KEPT)


def _read_stock(path: Path) -> list[ShopProduct]:
    with zipfile.ZipFile(path) as z:
        rows = json.loads(z.read("stock.json"))
        out = [ShopProduct(**{k: v for k, v in r.items() if k != "n_images"},
                           images=[z.read(f"{r['id']}/{i}.jpg") for i in range(r["n_images"])]) for r in rows]
    os.utime(path)  # the least recently used stocks are the ones dropped
    log.info("stock read from %s", path)
    return out
