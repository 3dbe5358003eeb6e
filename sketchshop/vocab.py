"""The one garment vocabulary: categories, colours and fine attributes.

Every package imports its labels from here, so a model's outputs, the catalogue's
columns, the crawler's facet mapping and the API's filters always agree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

FINE_CATEGORIES: tuple[str, ...] = (
    "t-shirt", "longsleeve", "shirt", "outerwear", "dress",
    "skirt", "pants", "shorts", "hat", "shoes", "bag",
)
COARSE_CATEGORIES: tuple[str, ...] = (
    "top", "outerwear", "pants", "shorts", "skirt", "dress", "hat", "shoes", "bag",
)
FINE_TO_COARSE: dict[str, str] = {c: ("top" if c in ("t-shirt", "longsleeve", "shirt") else c)
                                  for c in FINE_CATEGORIES}

# Several prototypes per colour name: one point per name cannot separate navy from
# black or beige from white under real lighting. Values are sRGB 0-255.
COLOUR_PROTOTYPES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "black": ((20, 20, 20), (40, 40, 45), (30, 30, 38)),
    "white": ((245, 245, 245), (230, 230, 225), (250, 248, 240)),
    "gray": ((128, 128, 128), (170, 170, 170), (90, 90, 95), (200, 200, 200)),
    "red": ((200, 30, 35), (160, 20, 30), (230, 60, 50), (120, 15, 25)),
    "pink": ((240, 150, 180), (230, 100, 150), (250, 190, 205), (200, 80, 130)),
    "orange": ((240, 130, 30), (220, 100, 20), (250, 160, 70)),
    "yellow": ((245, 215, 50), (230, 190, 30), (250, 235, 120)),
    "green": ((40, 140, 60), (90, 160, 70), (30, 90, 50), (120, 130, 60), (60, 180, 120)),
    "blue": ((40, 100, 200), (80, 140, 220), (130, 180, 230), (60, 110, 160), (30, 150, 200)),
    "navy": ((25, 35, 80), (35, 45, 100), (30, 40, 60)),
    "purple": ((110, 50, 150), (150, 90, 180), (80, 30, 100), (180, 140, 200)),
    "brown": ((110, 70, 40), (140, 95, 60), (80, 50, 30), (160, 110, 70)),
    "beige": ((215, 195, 160), (200, 180, 140), (230, 215, 185)),
}
COLOURS: tuple[str, ...] = tuple(COLOUR_PROTOTYPES)
COLOUR_RGB: dict[str, tuple[int, int, int]] = {c: p[0] for c, p in COLOUR_PROTOTYPES.items()}

_TOPS = ("t-shirt", "longsleeve", "shirt")
_GARMENTS = ("t-shirt", "longsleeve", "shirt", "outerwear", "dress", "skirt", "pants", "shorts")


@dataclass(frozen=True)
class Attribute:
    name: str
    values: tuple[str, ...]
    applies_to: tuple[str, ...]  # fine categories


ATTRIBUTES: dict[str, Attribute] = {a.name: a for a in (
    Attribute("sleeve", ("none", "short", "long"), _TOPS + ("outerwear", "dress")),
    Attribute("length", ("short", "knee", "long"), ("outerwear", "dress", "skirt", "pants", "shorts")),
    Attribute("pattern", ("solid", "stripe", "check", "dot", "print"), _GARMENTS + ("hat", "bag")),
    Attribute("neckline", ("round", "v", "collar", "hood"), _TOPS + ("outerwear", "dress")),
)}

# Input aliases (case-insensitive). Targets are fine categories, coarse-only names
# ("top") or colours; canonical names map to themselves.
CATEGORY_ALIASES: dict[str, str] = {
    "outwear": "outerwear", "jacket": "outerwear", "coat": "outerwear", "blazer": "outerwear",
    "parka": "outerwear", "hoodie": "outerwear", "cardigan": "outerwear", "vest": "outerwear",
    "trousers": "pants", "trouser": "pants", "jeans": "pants", "pant": "pants", "leggings": "pants",
    "tee": "t-shirt", "tshirt": "t-shirt", "t shirt": "t-shirt", "t_shirt": "t-shirt", "tank": "t-shirt",
    "long-sleeve": "longsleeve", "long sleeve": "longsleeve", "longsleeves": "longsleeve",
    "sweater": "longsleeve", "jumper": "longsleeve", "sweatshirt": "longsleeve", "pullover": "longsleeve",
    "blouse": "shirt", "button-down": "shirt", "buttonshirt": "shirt", "shirts": "shirt",
    "sneakers": "shoes", "sneaker": "shoes", "boots": "shoes", "boot": "shoes", "sandals": "shoes",
    "heels": "shoes", "loafers": "shoes", "shoe": "shoes", "footwear": "shoes", "flip flops": "shoes",
    "flats": "shoes", "trainers": "shoes", "joggers": "pants", "chinos": "pants", "jeggings": "pants",
    "cap": "hat", "beanie": "hat", "hats": "hat",
    "handbag": "bag", "backpack": "bag", "purse": "bag", "bags": "bag", "tote": "bag",
    "dresses": "dress", "gown": "dress", "skirts": "skirt", "short": "shorts",
    "tops": "top", "upper": "top",
}
COLOUR_ALIASES: dict[str, str] = {
    "grey": "gray", "charcoal": "gray", "silver": "gray", "steel": "gray", "slate": "gray", "graphite": "gray",
    "anthracite": "gray", "ash": "gray", "cream": "beige", "tan": "beige", "khaki": "beige", "camel": "beige",
    "nude": "beige", "skin": "beige", "sand": "beige", "stone": "beige", "ecru": "beige", "oatmeal": "beige",
    "ivory": "white", "offwhite": "white", "off white": "white", "snow": "white",
    "maroon": "red", "burgundy": "red", "wine": "red", "crimson": "red", "scarlet": "red", "cherry": "red",
    "violet": "purple", "lilac": "purple", "lavender": "purple", "mauve": "purple", "plum": "purple",
    "aubergine": "purple", "olive": "green", "teal": "green", "mint": "green", "lime": "green", "emerald": "green",
    "turquoise": "blue", "sky": "blue", "denim": "blue", "aqua": "blue", "cyan": "blue", "cobalt": "blue",
    "dark blue": "navy", "navy blue": "navy", "midnight": "navy",
    "rose": "pink", "rose gold": "pink", "fuchsia": "pink", "magenta": "pink", "blush": "pink",
    "coral": "orange", "mustard": "yellow", "gold": "yellow", "lemon": "yellow",
    "chocolate": "brown", "coffee": "brown", "taupe": "brown", "copper": "brown", "mocha": "brown",
    "chestnut": "brown", "cognac": "brown",
}
# Shops qualify their colours ("Dark Green", "Grey Melange", "Coffee Brown"): these words say how, not which.
COLOUR_QUALIFIERS = frozenset((
    "dark", "light", "pale", "bright", "deep", "neon", "fluorescent", "dusty", "pastel", "soft", "washed", "faded",
    "heather", "melange", "marl", "mid", "medium", "solid"))


class VocabError(ValueError):
    """A label that is not in the vocabulary (message names the value)."""


def _key(s: str) -> str:
    return " ".join(str(s).strip().lower().split())


def _singular(word: str) -> str:
    return word[:-2] if word.endswith(("ches", "shes", "sses", "xes")) else word[:-1] if word.endswith("s") else word


def _ends(words: list[str]) -> list[str]:
    """The last and the first word of a name of several: where shops put the garment or the hue."""
    return words[-1:] + words[:1] if len(words) > 1 else []


def _first_known(keys, aliases: dict[str, str], known) -> str | None:
    """The first of `keys` that is, or is an alias of, a name in `known`."""
    for k in keys:
        k = aliases.get(k, k)
        if k in known:
            return k
    return None


def category(name: str, *, allow_coarse: bool = True) -> str:
    """Canonical fine category, or a coarse one ("top") when allowed, of a shop's category name: a
    vocabulary name or alias, else its last word, the garment in "Casual Shoes" or "Polo T-Shirt", else
    its first; each also in the singular ("Tshirts", "Caps"). VocabError otherwise."""
    k = _key(str(name).replace("_", " "))
    keys = (c for t in (k, k.replace("-", " "), *_ends(k.split())) for c in (t, _singular(t)))
    found = _first_known(keys, CATEGORY_ALIASES, FINE_CATEGORIES + (COARSE_CATEGORIES if allow_coarse else ()))
    if found is None:
        raise VocabError(f"unknown category {name!r} (known: {', '.join(FINE_CATEGORIES + ('top',))})")
    return found


def coarse(name: str) -> str:
    """Coarse (detector) category of any fine or coarse name."""
    c = category(name)
    return FINE_TO_COARSE.get(c, c)


def colour(name: str) -> str:
    """Canonical colour of a shop's colour name: a vocabulary name or alias, else the same once its
    qualifiers are dropped ("Dark Green", "Grey Melange"), else its last or first word ("Sea Green",
    "Turquoise Blue"); VocabError otherwise."""
    k = _key(str(name).replace("-", " ").replace("_", " "))
    words = [w for w in k.split() if w not in COLOUR_QUALIFIERS]
    found = _first_known((k, " ".join(words), *_ends(words)), COLOUR_ALIASES, COLOURS)
    if found is None:
        raise VocabError(f"unknown colour {name!r} (known: {', '.join(COLOURS)})")
    return found


def attribute_value(attr: str, value: str) -> str:
    if attr not in ATTRIBUTES:
        raise VocabError(f"unknown attribute {attr!r} (known: {', '.join(ATTRIBUTES)})")
    v = _key(value)
    if v not in ATTRIBUTES[attr].values:
        raise VocabError(f"unknown {attr} value {value!r} (known: {', '.join(ATTRIBUTES[attr].values)})")
    return v


def attributes_for(cat: str) -> list[str]:
    """Names of the fine attributes that apply to a fine category."""
    return [a.name for a in ATTRIBUTES.values() if cat in a.applies_to]


# ---- colour naming: nearest prototype in CIELAB under CIEDE2000 ----

def srgb_to_lab(rgb) -> tuple[float, float, float]:
    def lin(c):
        c = c / 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (lin(float(v)) for v in rgb)
    x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047
    y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
    z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883

    def f(t):
        return t ** (1 / 3) if t > 216 / 24389 else (24389 / 27 * t + 16) / 116
    fx, fy, fz = f(x), f(y), f(z)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def ciede2000(lab1, lab2) -> float:
    """CIEDE2000 colour difference (Sharma et al. 2005)."""
    L1, a1, b1 = lab1
    L2, a2, b2 = lab2
    C1, C2 = math.hypot(a1, b1), math.hypot(a2, b2)
    Cm = (C1 + C2) / 2
    G = 0.5 * (1 - math.sqrt(Cm ** 7 / (Cm ** 7 + 25 ** 7)))
    a1p, a2p = (1 + G) * a1, (1 + G) * a2
    C1p, C2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p = math.degrees(math.atan2(b1, a1p)) % 360
    h2p = math.degrees(math.atan2(b2, a2p)) % 360
    dLp, dCp = L2 - L1, C2p - C1p
    dhp = 0.0
    if C1p * C2p:
        dhp = h2p - h1p
        dhp -= 360 if dhp > 180 else 0
        dhp += 360 if dhp < -180 else 0
    dHp = 2 * math.sqrt(C1p * C2p) * math.sin(math.radians(dhp / 2))
    Lpm, Cpm = (L1 + L2) / 2, (C1p + C2p) / 2
    if C1p * C2p == 0:
        hpm = h1p + h2p
    elif abs(h1p - h2p) <= 180:
        hpm = (h1p + h2p) / 2
    else:
        hpm = (h1p + h2p + 360) / 2 if h1p + h2p < 360 else (h1p + h2p - 360) / 2
    T = (1 - 0.17 * math.cos(math.radians(hpm - 30)) + 0.24 * math.cos(math.radians(2 * hpm))
         + 0.32 * math.cos(math.radians(3 * hpm + 6)) - 0.20 * math.cos(math.radians(4 * hpm - 63)))
    dtheta = 30 * math.exp(-(((hpm - 275) / 25) ** 2))
    Rc = 2 * math.sqrt(Cpm ** 7 / (Cpm ** 7 + 25 ** 7))
    Sl = 1 + 0.015 * (Lpm - 50) ** 2 / math.sqrt(20 + (Lpm - 50) ** 2)
    Sc, Sh = 1 + 0.045 * Cpm, 1 + 0.015 * Cpm * T
    Rt = -math.sin(math.radians(2 * dtheta)) * Rc
    return math.sqrt((dLp / Sl) ** 2 + (dCp / Sc) ** 2 + (dHp / Sh) ** 2 + Rt * (dCp / Sc) * (dHp / Sh))


_PROTO_LAB = [(name, srgb_to_lab(p)) for name, protos in COLOUR_PROTOTYPES.items() for p in protos]


def colour_distances(rgb) -> dict[str, float]:
    """CIEDE2000 from `rgb` to each vocabulary colour's nearest prototype."""
    lab = srgb_to_lab(rgb)
    out: dict[str, float] = {}
    for name, proto in _PROTO_LAB:
        out[name] = min(out.get(name, math.inf), ciede2000(lab, proto))
    return out


def name_colour(rgb) -> str:
    """The vocabulary colour whose nearest prototype is closest to `rgb` in CIEDE2000."""
    d = colour_distances(rgb)
    return min(d, key=d.get)
