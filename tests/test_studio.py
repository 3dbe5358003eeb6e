"""The synthetic garment studio: determinism, label coverage, exact scene annotations, bad input."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketchshop import vocab
from sketchshop.cli import main
from sketchshop.datasets import read_coco, read_labels_csv
from sketchshop.errors import UserError
from sketchshop.studio import render_product, render_scene, synth
from sketchshop.studio import writer
from sketchshop.studio.products import cycle_labels

SMALL = 96   # px: the geometry is resolution independent, small renders keep the tests fast


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def run_a(tmp_path_factory):
    out = tmp_path_factory.mktemp("studio") / "a"
    res = synth(30, out, seed=5, scenes=3, size=SMALL, workers=1)
    return out, res


def test_same_seed_byte_identical_any_workers_and_other_seed_differs(run_a, tmp_path):
    out_a, res = run_a
    assert res["products"] == 30 and res["scenes"] == 3 and res["products_per_s"] > 0
    synth(30, tmp_path / "b", seed=5, scenes=3, size=SMALL, workers=2)
    a, b = _tree(out_a), _tree(tmp_path / "b")
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    synth(30, tmp_path / "c", seed=6, scenes=3, size=SMALL, workers=1)
    c = _tree(tmp_path / "c")
    assert a.keys() == c.keys()
    differing = [k for k in a if a[k] != c[k]]
    assert len(differing) > 0.9 * len(a)


def test_layout_and_labels_match_vocabulary(run_a):
    out, _ = run_a
    samples = read_labels_csv(out / "labels.csv")          # checks every file exists and every label
    assert len(samples) == 30
    assert {s.category for s in samples} == set(vocab.FINE_CATEGORIES)
    assert {s.colour for s in samples} == set(vocab.COLOURS)
    with open(out / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == writer.LABEL_COLUMNS
    for row, s in zip(rows, samples):
        applies = set(vocab.attributes_for(s.category))
        assert set(s.attributes) == applies                 # every applicable attribute, nothing else
        assert all(row[a] == "" for a in vocab.ATTRIBUTES if a not in applies)
        for col in ("sketch", "hints", "mask"):
            assert (out / row[col]).is_file()
        img = Image.open(s.path)
        assert img.mode == "RGB" and img.size == (SMALL, SMALL)
        assert Image.open(out / row["hints"]).mode == "RGBA"
        assert float(row["price"]) > 0 and row["currency"] in ("EUR", "USD", "GBP") and row["title"]


def test_every_category_colour_pair_cycles_within_143():
    for seed in (0, 11):
        pairs = {cycle_labels(seed, i) for i in range(500, 643)}
        assert len(pairs) == 143


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # pycocotools vs numpy 2 copy keyword
def test_coco_boxes_and_areas_match_masks(run_a):
    from pycocotools import mask as mask_utils
    out, _ = run_a
    coco = json.loads((out / "scenes_coco.json").read_text())
    assert [c["name"] for c in coco["categories"]] == list(vocab.COARSE_CATEGORIES)
    images = read_coco(out / "scenes_coco.json")
    assert len(images) == 3 and all(im.path.is_file() for im in images)
    assert sum(len(im.boxes) for im in images) == len(coco["annotations"]) > 0
    by_id = {im["id"]: im for im in coco["images"]}
    for a in coco["annotations"]:
        m = mask_utils.decode(a["segmentation"]).astype(bool)
        ys, xs = np.nonzero(m)
        assert a["bbox"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
        assert a["area"] == m.sum() and a["iscrowd"] == 0
        inst = np.asarray(Image.open(out / by_id[a["image_id"]]["mask_file"]))
        assert np.array_equal(inst == a["mask_value"], m)


def test_render_scene_masks_are_disjoint_and_boxed():
    sc = render_scene(3, n_items=5, size=(320, 256))
    assert sc.image.size == (320, 256) and len(sc.boxes) == len(sc.labels) == len(sc.masks) >= 2
    assert set(sc.labels) <= set(vocab.COARSE_CATEGORIES)
    stack = np.stack([np.asarray(m) > 0 for m in sc.masks])
    assert stack.sum(0).max() == 1
    for (x, y, w, h), m in zip(sc.boxes, stack):
        ys, xs = np.nonzero(m)
        assert (x, y, w, h) == (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min())


def test_render_product_contract():
    p = render_product(4, 2, category="jacket", colour="grey", attributes={"sleeve": "long", "pattern": "check"},
                       size=SMALL * 2)
    assert (p.category, p.colour, p.attributes["sleeve"], p.attributes["pattern"]) == ("outerwear", "gray", "long",
                                                                                      "check")
    assert set(p.attributes) == set(vocab.attributes_for("outerwear"))
    assert p.image.mode == "RGB" and p.sketch.mode == "RGB" and p.mask.mode == "L" and p.hints.mode == "RGBA"
    assert p.image.size == p.sketch.size == p.mask.size == p.hints.size == (SMALL * 2, SMALL * 2)
    mask = np.asarray(p.mask)
    assert set(np.unique(mask)) == {0, 255} and 0.15 < (mask > 0).mean() < 0.9
    alpha = np.asarray(p.hints)[..., 3]
    assert alpha.any() and not alpha[mask == 0].any()        # hints only inside the garment
    sk = np.asarray(p.sketch.convert("L"))
    assert 0.01 < (sk < 128).mean() < 0.3                    # strokes, not fills
    assert p.title and p.brand and p.price > 0
    again = render_product(4, 2, category="jacket", colour="grey", attributes={"sleeve": "long", "pattern": "check"},
                           size=SMALL * 2)
    assert again.image.tobytes() == p.image.tobytes() and again.sketch.tobytes() == p.sketch.tobytes()


@pytest.mark.parametrize("kw", [dict(category="sock"), dict(colour="octarine"), dict(attributes={"sleeve": "huge"}),
                                dict(category="pants", attributes={"sleeve": "long"}), dict(size=10)])
def test_render_product_rejects_bad_labels(kw):
    with pytest.raises(UserError):
        render_product(0, 0, **kw)


def _aspect(cat, attrs, seeds=range(6)):
    """Mean width/height of the garment's mask: the silhouette, not the fitted frame."""
    out = []
    for s in seeds:
        m = np.asarray(render_product(s, 0, category=cat, colour="red", attributes=attrs, size=SMALL).mask) > 0
        ys, xs = np.nonzero(m)
        out.append((np.ptp(xs) + 1) / (np.ptp(ys) + 1))
    return float(np.mean(out))


def test_attributes_change_the_silhouette():
    # longer skirts and dresses are taller for their width; sleeves widen a top
    assert _aspect("skirt", {"length": "short"}) > _aspect("skirt", {"length": "knee"}) > _aspect("skirt", {"length": "long"})
    assert _aspect("dress", {"length": "short"}) > _aspect("dress", {"length": "long"})
    assert _aspect("t-shirt", {"sleeve": "short"}) > _aspect("t-shirt", {"sleeve": "none"})
    assert _aspect("pants", {"length": "knee"}) > _aspect("pants", {"length": "long"})


def test_patterns_are_visible_and_colour_label_is_what_is_painted():
    """A check has many off-colour pixels, a solid few; a solid garment's median pixel is named as labelled."""
    def off_colour_share(p):
        px = np.asarray(p.image, np.float32)[np.asarray(p.mask) > 0]
        med = np.median(px, 0)
        return float((np.abs(px - med).sum(1) > 90).mean())
    solids, checks = [], []
    for s in range(3):
        solids.append(off_colour_share(render_product(s, 1, category="t-shirt", colour="blue",
                                                      attributes={"pattern": "solid"}, size=SMALL * 2)))
        checks.append(off_colour_share(render_product(s, 1, category="t-shirt", colour="blue",
                                                      attributes={"pattern": "check"}, size=SMALL * 2)))
    assert max(solids) < 0.15 < min(checks) and np.mean(checks) > 3 * np.mean(solids), (solids, checks)
    hits = 0
    for i, c in enumerate(vocab.COLOURS):
        p = render_product(i, 0, category="pants", colour=c, attributes={"pattern": "solid"}, size=SMALL)
        med = np.median(np.asarray(p.image)[np.asarray(p.mask) > 0], 0)
        hits += vocab.name_colour(med) == c
    assert hits >= 12, hits


def test_cli_bad_input_exit_2_and_no_output(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["synth", "--n", "0", "--out", str(tmp_path / "zero")]) == 2
    assert main(["synth", "--n", "-3", "--out", str(tmp_path / "neg")]) == 2
    assert main(["synth", "--n", "2", "--out", str(tmp_path / "afile" / "sub")]) == 2   # parent is a file
    assert main(["synth", "--n", "2", "--size", "5", "--out", str(tmp_path / "tiny")]) == 2
    assert main(["synth", "--n", "2", "--out", str(tmp_path / "afile")]) == 2
    n_err = 5
    if Path("/proc/self").is_dir():       # a place even root cannot create directories in
        assert main(["synth", "--n", "2", "--out", "/proc/sketchshop-studio-test"]) == 2
        n_err += 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count(": error:") == n_err  # argparse's ("sketchshop synth: error:") or ours
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "precious.txt").write_text("data")
    assert main(["synth", "--n", "2", "--out", str(keep)]) == 2
    assert (keep / "precious.txt").read_text() == "data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "keep"]


def test_failure_midway_leaves_no_partial_output(tmp_path, monkeypatch):
    real = writer.render_arrays

    def flaky(seed, index, **kw):
        if index == 3:
            raise RuntimeError("disk on fire")
        return real(seed, index, **kw)
    monkeypatch.setattr(writer, "render_arrays", flaky)
    with pytest.raises(RuntimeError):
        synth(6, tmp_path / "out", seed=1, scenes=0, size=SMALL, workers=1)
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_dataset_and_contact_sheet(tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    assert main(["synth", "--n", "3", "--out", str(tmp_path / "o"), "--size", "64", "--scenes", "1",
                 "--workers", "1", "--contact-sheet", str(sheet)]) == 0
    out = capsys.readouterr().out
    assert "products/s" in out and "contact sheet" in out
    assert len(read_labels_csv(tmp_path / "o" / "labels.csv")) == 3
    assert Image.open(sheet).size[0] > 1000
