"""Dataset builders on a catalogue filled with studio products (whose true masks we know)."""
from __future__ import annotations

import csv

import numpy as np
import pytest

N = 30


@pytest.fixture
def filled(data_dir):
    """A catalogue of N studio products, stored as a crawl would, plus the studio's true boxes."""
    from catalog import ProductRecord, open_catalog
    from crawler.datasets import mask_box
    from crawler.shop import build_products
    from sketchshop.studio import generate_products
    cat = open_catalog()
    sid = cat.get_shop("studio-shop")
    truth = {}
    idx = cat.phash_index()
    with cat.session() as s:
        for p, sp in zip(build_products(N, seed=4), generate_products(N, seed=4)):
            rec = ProductRecord(p.id, url=f"http://x/{p.id}", title=p.title, price=p.price, currency=p.currency,
                                labels=[("category", p.category, p.category, "facet"), ("colour", p.colour, p.colour, "facet")]
                                + [(a, v, v, "listing") for a, v in p.attributes.items()] + [("fit", None, p.fit, "listing")])
            rec.images.append((cat.images.put(p.images[0]), ""))
            cat.upsert_product(s, sid, None, rec, idx)
            truth[p.id] = (mask_box(np.asarray(sp.mask) > 127), p)
    return cat, truth


def iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_classify_dataset_split_by_product(filled, tmp_path):
    from crawler.datasets import build_classify
    from sketchshop.datasets import read_labels_csv
    cat, truth = filled
    res = build_classify(tmp_path / "cls", val_fraction=0.3, catalog=cat)
    assert res["products"] == N and res["images"] == N and res["val"] > 0 and res["train"] > 0
    rows = list(csv.DictReader(open(tmp_path / "cls" / "labels.csv")))
    by_product = {}
    for r in rows:
        by_product.setdefault(r["external_id"], set()).add(r["split"])
        assert r["file"].startswith(f"{r['split']}/{r['category']}/")
        assert r["category"] == truth[r["external_id"]][1].category and r["colour"] == truth[r["external_id"]][1].colour
    assert all(len(v) == 1 for v in by_product.values()) and len(by_product) == N
    samples = read_labels_csv(tmp_path / "cls" / "labels.csv")     # the shared reader accepts it
    assert len(samples) == N and all(s.path.is_file() for s in samples)
    assert any(s.attributes for s in samples)
    assert all(s.extra["other_labels"].startswith("fit=") for s in samples)


def test_classify_dataset_trains_the_classifier_beside_other_photos(filled, tmp_path):
    """The ML engineer's retraining: `train classifier --data SHARED CRAWL` reads the crawl's train/ and val/."""
    from classifier.train import TrainConfig, _real_items, data_fingerprint
    from crawler.datasets import build_classify
    from sketchshop.errors import UserError
    cat, truth = filled
    res = build_classify(tmp_path / "cls", val_fraction=0.3, catalog=cat)
    jpeg = next(iter(truth.values()))[1].images[0]
    other = tmp_path / "photos"
    for split in ("train", "validation"):
        (other / split / "dress").mkdir(parents=True)
        (other / split / "dress" / "a.jpg").write_bytes(jpeg)
    cfg = TrainConfig(data=f"{other},{tmp_path / 'cls'}")
    assert len(_real_items(cfg, "train")) == 1 + res["train"]
    assert len(_real_items(cfg, "validation")) == 1 + res["val"]

    before = data_fingerprint(cfg.data)
    (other / "train" / "dress" / "b.jpg").write_bytes(jpeg)
    data_fingerprint.cache_clear()
    assert data_fingerprint(cfg.data) != before, "a rebuilt dataset must not meet the old cached features"
    with pytest.raises(UserError, match="validation/ or val/"):
        _real_items(TrainConfig(data=str(tmp_path / "photos" / "train")), "validation")


def test_detect_dataset_boxes(filled, tmp_path):
    from crawler.datasets import build_detect
    from sketchshop import vocab
    cat, truth = filled
    res = build_detect(tmp_path / "det", scenes=12, size=320, val_fraction=0.3, catalog=cat, seed=1)
    assert res["singles"] + res["skipped"] == N and res["skipped"] <= 2 and res["scenes"] == 12
    out = tmp_path / "det"
    assert "names:" in (out / "data.yaml").read_text() and (out / "preview.png").is_file()
    ious = []
    sha_to_pid = {p["images"][0]: p["external_id"] for p in cat.products(per_page=100).items}
    for lab in (out / "labels").glob("*/*.txt"):
        lines = lab.read_text().split("\n")
        lines = [x for x in lines if x]
        for line in lines:
            c, *xywh = line.split()
            assert 0 <= int(c) < len(vocab.COARSE_CATEGORIES) and all(0 <= float(v) <= 1 for v in xywh)
        if lab.stem.startswith("scene_"):
            assert 1 <= len(lines) <= 5
            continue
        (box_true, p), (line,) = truth[sha_to_pid[lab.stem]], lines
        c, cx, cy, w, h = line.split()
        assert vocab.COARSE_CATEGORIES[int(c)] == vocab.coarse(p.category)
        W = H = 384
        box = ((float(cx) - float(w) / 2) * W, (float(cy) - float(h) / 2) * H,
               (float(cx) + float(w) / 2) * W, (float(cy) + float(h) / 2) * H)
        ious.append(iou(box, box_true))
    assert len(ious) == res["singles"]
    print(f"mean IoU {np.mean(ious):.3f} min {np.min(ious):.3f} over {len(ious)}")
    assert np.mean(ious) > 0.8, f"segmentation boxes vs studio masks: mean IoU {np.mean(ious):.2f}"


def test_empty_catalogue_is_a_clear_error(data_dir, tmp_path, capsys):
    from sketchshop.cli import main
    assert main(["dataset", "classify", "--out", str(tmp_path / "x")]) == 2
    assert "no labelled products" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_an_unknown_shop_is_named(filled, tmp_path):
    """Found by QA: `--shop nosuchshop` said the catalogue had no labelled products."""
    from crawler.datasets import build_classify
    from sketchshop.errors import UserError
    cat, _ = filled
    with pytest.raises(UserError, match=r"no shop named 'nosuchshop' in the catalogue \(shops: studio-shop\)"):
        build_classify(tmp_path / "x", shop="nosuchshop", catalog=cat)


@pytest.mark.parametrize("builder,marker", [("build_classify", "labels.csv"), ("build_detect", "data.yaml")])
def test_out_is_never_a_users_file_or_folder(filled, tmp_path, builder, marker, caplog):
    """`--out` replaces only an earlier output of the same command: a file or a folder of the user's stays, with a
    clear error (found by a QA session: `dataset classify --out photo.jpg` replaced the photo by a folder)."""
    import crawler.datasets as D
    from sketchshop.errors import UserError
    cat, _ = filled
    build = lambda out: getattr(D, builder)(out, catalog=cat, **({"scenes": 0} if builder == "build_detect" else {}))  # noqa: E731
    photo, mine = tmp_path / "photo.jpg", tmp_path / "mine"
    photo.write_bytes(b"\xff\xd8 a photo")
    (mine / "sub").mkdir(parents=True)
    (mine / "sub" / "notes.txt").write_text("keep me")
    for out in (photo, mine):
        with pytest.raises(UserError, match=f"not an earlier output \\(no {marker}\\)"):
            build(out)
    assert photo.read_bytes() == b"\xff\xd8 a photo" and (mine / "sub" / "notes.txt").read_text() == "keep me"
    build(tmp_path / "ds")
    build(tmp_path / "ds")  # its own earlier output is replaced
    (tmp_path / "ds" / "MYNOTES.txt").write_text("mine")  # ...but not with files added since (a QA session)
    with pytest.raises(UserError, match="holds 1 file\\(s\\) added since it was written, which replacing it would "
                                        "delete: MYNOTES.txt"):
        build(tmp_path / "ds")
    assert (tmp_path / "ds" / "MYNOTES.txt").read_text() == "mine"
    (tmp_path / "ds" / ".sketchshop-written").unlink()  # an output written before the record: replaced, said
    with caplog.at_level("WARNING"):
        build(tmp_path / "ds")
    assert (tmp_path / "ds" / marker).is_file() and not (tmp_path / "ds" / "MYNOTES.txt").exists()
    assert "1 file(s) it held that this run did not write go with it: MYNOTES.txt" in caplog.text
