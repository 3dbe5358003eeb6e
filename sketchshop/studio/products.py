"""Single studio products: photo, mask, sketch and colour hints, plus shop fields.

A product is a pure function of (seed, index): the same pair always gives the same pixels.
Categories and colours cycle with the index (11 and 13 are coprime, so any 143 consecutive
indices cover every category x colour pair); attributes, style and shading are random.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
from PIL import Image

from .. import vocab
from ..errors import UserError
from . import geometry, paint
from .drawing import draw_hints, draw_sketch

MIN_SIZE, MAX_SIZE = 64, 1024

# How often each attribute value occurs per category: plausible shop shelves, while every
# value the vocabulary allows still appears for the classifier to learn.
ATTRIBUTE_PRIORS: dict[str, dict[str, dict[str, float]]] = {
    "sleeve": {"t-shirt": {"short": .85, "none": .15}, "longsleeve": {"long": 1.0},
               "shirt": {"long": .7, "short": .3}, "outerwear": {"long": .88, "none": .12},
               "dress": {"none": .4, "short": .35, "long": .25}},
    "length": {"outerwear": {"short": .5, "knee": .3, "long": .2}, "dress": {"short": .35, "knee": .4, "long": .25},
               "skirt": {"short": .35, "knee": .4, "long": .25}, "pants": {"long": .85, "knee": .15},
               "shorts": {"short": .75, "knee": .25}},
    "neckline": {"t-shirt": {"round": .7, "v": .3}, "longsleeve": {"round": .55, "v": .2, "hood": .2, "collar": .05},
                 "shirt": {"collar": .92, "v": .08}, "outerwear": {"collar": .45, "hood": .3, "v": .15, "round": .1},
                 "dress": {"round": .45, "v": .35, "collar": .2}},
    "pattern": {"*": {"solid": .4, "stripe": .15, "check": .15, "dot": .15, "print": .15},
                "hat": {"solid": .6, "stripe": .1, "check": .1, "dot": .1, "print": .1},
                "bag": {"solid": .6, "stripe": .1, "check": .1, "dot": .1, "print": .1}},
}

BRANDS = ("Northwind", "Lumen & Co", "Atelier Nove", "Kestrel", "Fjordline", "Urban Thread", "Maison Ilo",
          "Basecamp", "Solstice", "Harbor Lane", "Pico", "Wren", "Driftwood", "Oak & Ash", "Vela")
PRICE_RANGE = {"t-shirt": (9, 35), "longsleeve": (15, 60), "shirt": (20, 80), "outerwear": (45, 250),
               "dress": (25, 150), "skirt": (19, 90), "pants": (25, 120), "shorts": (15, 50), "hat": (9, 45),
               "shoes": (30, 180), "bag": (20, 220)}
NOUNS = {"t-shirt": "T-Shirt", "longsleeve": "Long-Sleeve Top", "shirt": "Shirt", "outerwear": "Jacket",
         "dress": "Dress", "skirt": "Skirt", "pants": "Trousers", "shorts": "Shorts", "hat": "Hat",
         "shoes": "Shoes", "bag": "Bag"}
STYLE_NOUNS = {"cap": "Cap", "beanie": "Beanie", "bucket": "Bucket Hat", "sneaker": "Sneakers", "boot": "Boots",
               "loafer": "Loafers", "tote": "Tote Bag", "handbag": "Handbag", "backpack": "Backpack"}
PATTERN_WORDS = {"stripe": "Striped", "check": "Checked", "dot": "Polka-Dot", "print": "Printed", "solid": ""}


@dataclass
class StudioProduct:
    index: int
    seed: int                 # the run seed: render_product(seed, index) gives this product again
    category: str
    colour: str
    attributes: dict[str, str]
    image: Image.Image        # RGB photo on a clean light background
    mask: Image.Image         # "L", 255 = garment
    sketch: Image.Image       # RGB, dark strokes on white
    hints: Image.Image        # RGBA, transparent except colour dots/strokes inside the garment
    title: str
    brand: str
    price: float
    currency: str

    @property
    def id(self) -> str:
        return f"p{self.index:06d}"

    @property
    def coarse(self) -> str:
        return vocab.FINE_TO_COARSE[self.category]


def product_rng(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    if seed < 0 or index < 0:
        raise UserError(f"seed and index must be >= 0 (got seed={seed}, index={index})")
    return np.random.default_rng([int(seed), int(index), stream])


def cycle_labels(seed: int, index: int) -> tuple[str, str]:
    """Category and colour of product `index`: all 143 pairs in any 143 consecutive indices."""
    off = np.random.default_rng([int(seed), 7919]).integers(0, 143)
    k = index + int(off)
    return vocab.FINE_CATEGORIES[k % 11], vocab.COLOURS[k % 13]


def _choose(rng, dist: dict[str, float]) -> str:
    keys = list(dist)
    p = np.asarray([dist[k] for k in keys], float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def sample_attributes(category: str, rng, given: dict | None = None) -> dict[str, str]:
    """Every attribute that applies to `category`: the given ones (validated), the rest sampled."""
    given = dict(given or {})
    out = {}
    names = vocab.attributes_for(category)
    for a, v in given.items():
        if a not in vocab.ATTRIBUTES:
            raise UserError(f"unknown attribute {a!r} (known: {', '.join(vocab.ATTRIBUTES)})")
        if a not in names:
            raise UserError(f"attribute {a!r} does not apply to {category} (applies: {', '.join(names) or 'none'})")
    for a in names:
        priors = ATTRIBUTE_PRIORS[a]
        dist = priors.get(category) or priors["*"]
        v = _choose(rng, dist)            # always drawn, so a given value leaves the rest unchanged
        if a in given:
            try:
                v = vocab.attribute_value(a, given[a])
            except vocab.VocabError as e:
                raise UserError(str(e)) from None
        out[a] = v
    return out


def shop_fields(design: geometry.Design, colour: str, rng) -> tuple[str, str, float, str]:
    """Title, brand, price and currency a small web shop would show."""
    cat, a = design.category, design.attributes
    words = [colour.title(), PATTERN_WORDS.get(a.get("pattern", "solid"), "")]
    if cat in ("dress", "skirt", "outerwear") and a.get("length"):
        words.append({"short": "Mini" if cat != "outerwear" else "Cropped", "knee": "Midi" if cat != "outerwear" else "",
                      "long": "Maxi" if cat != "outerwear" else "Long"}[a["length"]])
    if cat == "dress" and a.get("sleeve") in ("none", "long"):
        words.append({"none": "Sleeveless", "long": "Long-Sleeve"}[a["sleeve"]])
    if a.get("neckline") == "hood":
        words.append("Hooded")
    elif a.get("neckline") == "v" and cat in ("t-shirt", "longsleeve", "dress"):
        words.append("V-Neck")
    if cat == "shirt" and a.get("sleeve") == "short":
        words.append("Short-Sleeve")
    if cat == "pants" and a.get("length") == "knee":
        words.append("Cropped")
    if cat == "shorts" and a.get("length") == "knee":
        words.append("Bermuda")
    noun = STYLE_NOUNS.get(design.style) or NOUNS[cat]
    if cat == "outerwear":
        noun = "Coat" if a.get("length") in ("knee", "long") else ("Vest" if a.get("sleeve") == "none" else noun)
    if cat == "longsleeve" and a.get("neckline") == "hood":
        noun, words = "Hoodie", [w for w in words if w != "Hooded"]
    title = " ".join(w for w in words + [noun] if w)
    lo, hi = PRICE_RANGE[cat]
    price = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    price = round(float(max(1.0, np.floor(price) + float(rng.choice([0.99, 0.95, 0.0, 0.5])))), 2)
    currency = str(rng.choice(["EUR", "USD", "GBP"], p=[0.6, 0.25, 0.15]))
    return title, str(rng.choice(BRANDS)), price, currency


def check_size(size) -> int:
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise UserError(f"size must be an integer (got {size!r})") from None
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise UserError(f"size must be between {MIN_SIZE} and {MAX_SIZE} px (got {size}); 256-512 is typical")
    return size


def resolve_labels(seed: int, index: int, category=None, colour=None) -> tuple[str, str]:
    cyc_cat, cyc_col = cycle_labels(seed, index)
    try:
        cat = vocab.category(category, allow_coarse=False) if category is not None else cyc_cat
        col = vocab.colour(colour) if colour is not None else cyc_col
    except vocab.VocabError as e:
        raise UserError(str(e)) from None
    return cat, col


def render_arrays(seed: int, index: int, *, category=None, colour=None, attributes=None, size=384) -> dict:
    """The product as numpy arrays (what the writer saves); `render_product` wraps it in PIL."""
    size = check_size(size)
    cat, col = resolve_labels(seed, index, category, colour)
    rng = product_rng(seed, index)
    attrs = sample_attributes(cat, rng, attributes)
    design = geometry.build(cat, attrs, rng)
    placed = geometry.place(design, size, size, rng, angle=(-4, 4) if cat not in ("shoes", "hat", "bag") else (-8, 8))
    layer = paint.paint_garment(placed, col, size, size, rng)
    bg = paint.studio_background(size, size, layer.regions[0][1], rng)
    bg = paint.drop_shadow(bg, layer, rng)
    image = paint.light(paint.compose(bg, layer), rng)
    sk_rng = product_rng(seed, index, 1)      # own stream: sketch changes never move the photo
    sketch = draw_sketch(placed, size, size, sk_rng, layer)
    hints = draw_hints(layer, sk_rng, size)
    title, brand, price, currency = shop_fields(placed, col, product_rng(seed, index, 2))
    return dict(index=index, seed=seed, category=cat, colour=col, attributes=attrs, image=image,
                mask=layer.mask, sketch=sketch, hints=hints,
                title=title, brand=brand, price=price, currency=currency, style=placed.style)


def render_product(seed: int, index: int = 0, *, category=None, colour=None, attributes=None,
                   size=384) -> StudioProduct:
    """Render one product. Without overrides it is product `index` of `generate_products(seed=seed)`."""
    a = render_arrays(seed, index, category=category, colour=colour, attributes=attributes, size=size)
    return StudioProduct(
        index=a["index"], seed=a["seed"], category=a["category"], colour=a["colour"], attributes=a["attributes"],
        image=Image.fromarray(a["image"], "RGB"), mask=Image.fromarray(a["mask"], "L"),
        sketch=Image.fromarray(a["sketch"], "L").convert("RGB"), hints=Image.fromarray(a["hints"], "RGBA"),
        title=a["title"], brand=a["brand"], price=a["price"], currency=a["currency"])


def generate_products(n: int, seed: int = 0, *, size=384) -> Iterator[StudioProduct]:
    """Products 0..n-1 of a seed; every category and colour appears once n >= 13 (all pairs at 143)."""
    if int(n) < 0:
        raise UserError(f"n must be >= 0 (got {n})")
    check_size(size)
    for i in range(int(n)):
        yield render_product(seed, i, size=size)
