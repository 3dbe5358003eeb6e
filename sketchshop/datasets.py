"""Readers for the three label formats every part of sketchshop consumes.

- ImageFolder: `root/<class>/<image>`; the folder name goes through the vocabulary aliases.
- Labels CSV: `file` plus any of `category`, `colour`, and attribute columns.
- COCO detection json whose category names are (aliases of) the coarse categories.
Errors name the file and line; readers never write.
"""
from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from . import vocab
from .errors import UserError

log = logging.getLogger(__name__)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif"}


@dataclass
class Sample:
    path: Path
    category: str | None = None          # fine, or coarse when the label is coarse
    colour: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)


def _images(folder: Path):
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def read_imagefolder(root) -> list[Sample]:
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a directory")
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            cat = vocab.category(d.name)
        except vocab.VocabError as e:
            raise UserError(f"{d}: {e}") from None
        out += [Sample(p, cat) for p in _images(d)]
    if not out:
        raise UserError(f"{root}: no images in class folders")
    return out


def read_labels_csv(csv_path, root=None, *, check_files: bool = True) -> list[Sample]:
    """Read a labels CSV; `file` is relative to `root` (default: the CSV's folder)."""
    csv_path = Path(csv_path)
    root = Path(root) if root is not None else csv_path.parent
    try:
        f = open(csv_path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise UserError(f"{csv_path}: cannot read ({e.strerror})") from None
    with f:
        try:
            return _read_labels(csv.DictReader(f), csv_path, root, check_files)
        except UnicodeDecodeError:
            raise UserError(f"{csv_path}: not UTF-8 text (save the CSV as UTF-8)") from None
        except csv.Error as e:
            raise UserError(f"{csv_path}: not a readable CSV ({e})") from None


def _read_labels(reader: csv.DictReader, csv_path: Path, root: Path, check_files: bool) -> list[Sample]:
    out, seen = [], {}
    cols = [c.strip() for c in (reader.fieldnames or [])]
    if "file" not in cols:
        raise UserError(f"{csv_path}:1: no 'file' column (columns: {', '.join(cols) or 'none'})")
    for lineno, row in enumerate(reader, start=2):
        where = f"{csv_path}:{lineno}"
        if None in row:  # DictReader's key for cells past the header's columns
            raise UserError(f"{where}: {len(cols) + len(row[None])} cells for the header's {len(cols)} columns")
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        if not row.get("file"):
            raise UserError(f"{where}: empty 'file'")
        if row["file"] in seen:
            log.warning("%s: %s again (first on line %d): counted twice", where, row["file"], seen[row["file"]])
        seen.setdefault(row["file"], lineno)
        s = Sample(root / row["file"])
        if check_files and not s.path.is_file():
            raise UserError(f"{where}: image {row['file']!r} not found under {root}")
        try:
            if row.get("category"):
                s.category = vocab.category(row["category"])
            if row.get("colour") or row.get("color"):
                s.colour = vocab.colour(row.get("colour") or row.get("color"))
            for a in vocab.ATTRIBUTES:
                if row.get(a):
                    s.attributes[a] = vocab.attribute_value(a, row[a])
        except vocab.VocabError as e:
            raise UserError(f"{where}: {e}") from None
        s.extra = {k: v for k, v in row.items()
                   if k not in ("file", "category", "colour", "color", *vocab.ATTRIBUTES)}
        out.append(s)
    if not out:
        raise UserError(f"{csv_path}: no rows under the header")
    return out


@dataclass
class CocoImage:
    id: int
    path: Path
    width: int
    height: int
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)  # x, y, w, h
    labels: list[str] = field(default_factory=list)                                 # coarse names


def read_coco(json_path, images_dir=None) -> list[CocoImage]:
    json_path = Path(json_path)
    images_dir = Path(images_dir) if images_dir is not None else json_path.parent
    try:
        data = json.loads(json_path.read_text())
    except OSError as e:
        raise UserError(f"{json_path}: cannot read ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{json_path}:{e.lineno}: invalid JSON ({e.msg})") from None
    try:
        cats = {}
        for c in data["categories"]:
            try:
                cats[c["id"]] = vocab.coarse(c["name"])
            except vocab.VocabError as e:
                raise UserError(f"{json_path}: category id {c['id']}: {e}") from None
        images = {im["id"]: CocoImage(im["id"], images_dir / im["file_name"], im.get("width", 0),
                                      im.get("height", 0)) for im in data["images"]}
        for i, a in enumerate(data.get("annotations", [])):
            if a["image_id"] not in images or a["category_id"] not in cats:
                raise UserError(f"{json_path}: annotation #{i} (id {a.get('id')}) refers to an unknown "
                                f"image or category")
            im = images[a["image_id"]]
            im.boxes.append(_bbox(a.get("bbox"), f"{json_path}: annotation #{i} (id {a.get('id')})"))
            im.labels.append(cats[a["category_id"]])
    except KeyError as e:
        raise UserError(f"{json_path}: not COCO detection json (missing {e})") from None
    except (TypeError, AttributeError, IndexError) as e:
        raise UserError(f"{json_path}: not COCO detection json ({e})") from None
    return list(images.values())


def _bbox(box, where: str) -> tuple[float, float, float, float]:
    """A COCO box [x, y, w, h]: four finite numbers, w and h above 0."""
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError):
        raise UserError(f"{where}: bbox must be [x, y, width, height], not {box!r}") from None
    if not all(map(math.isfinite, (x, y, w, h))) or w <= 0 or h <= 0:
        raise UserError(f"{where}: bbox {box!r} needs finite numbers and a width and height above 0")
    return x, y, w, h


class Skipped(list):
    """The unreadable inputs an evaluation leaves out of its scores, as `{"file", "error"}` rows for its JSON's
    `skipped`; `check(total)` says so where the user looks (or fails when nothing could be read)."""

    def add(self, path, error) -> None:
        self.append({"file": str(path), "error": str(error)})

    def check(self, read: int, total: int, what: str = "images") -> None:
        if not read:
            example = f", for example {self[0]['file']}: {self[0]['error']}" if self else ""
            raise UserError(f"none of the {total} {what} could be read{example}")
        if self:
            said = [s["error"] if s["file"] in s["error"] else f"{s['file']}: {s['error']}" for s in self[:3]]
            log.warning("%d of %d %s could not be read and are left out (all under \"skipped\" in the JSON): %s%s",
                        len(self), total, what, "; ".join(said), "; ..." if len(self) > 3 else "")
