"""Detector: ONNX inference parity with Ultralytics, coordinates under every input kind, bad input,
duplicate suppression, whole-image fallback and the eval CLI. Uses the shipped model when present,
else a small untrained model built from the yaml (same architecture, random head biases)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from sketchshop.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_ONNX = ROOT / "models" / "detector" / "detector.onnx"
SHIPPED_PT = ROOT / "models" / "detector" / "detector.pt"


@pytest.fixture(scope="session")
def model_files(tmp_path_factory):
    """(onnx, pt, conf): the shipped model, or an untrained one exported the same way."""
    import os
    if SHIPPED_ONNX.is_file() and SHIPPED_PT.is_file() and not os.environ.get("SKETCHSHOP_TEST_UNTRAINED_DETECTOR"):
        return SHIPPED_ONNX, SHIPPED_PT, 0.25
    d = tmp_path_factory.mktemp("tiny_detector")
    os.environ.setdefault("SKETCHSHOP_DATA_DIR", str(d / "var"))
    import torch

    from detector.backbone import install
    from detector.export import export
    from detector.ultra import ultralytics_offline
    from sketchshop import vocab
    ultralytics_offline(2)
    install()
    from ultralytics import YOLO
    torch.manual_seed(0)
    m = YOLO(str(ROOT / "detector" / "lite0-yolo26.yaml"))
    m.model.names = dict(enumerate(vocab.COARSE_CATEGORIES))
    torch.manual_seed(0)
    with torch.no_grad():  # spread the scores so that a threshold selects a stable set of boxes
        for seq in m.model.model[-1].one2one_cv3:
            seq[-1].bias.normal_(-3.0, 1.0)
            seq[-1].weight.normal_(0.0, 0.05)
    pt = d / "tiny.pt"
    m.save(str(pt))
    onnx = export(pt, d / "tiny.onnx", imgsz=320)
    # an untrained head scores everything alike: pick the threshold that keeps ~40 boxes, far from
    # the 300-detection cut-off where near-ties would make the comparisons arbitrary
    from detector import Detector
    scores = Detector.load(onnx).raw(_synthetic_photo(), conf=0.0)[:, 4]
    return onnx, pt, float(scores[min(40, len(scores) - 1)])


@pytest.fixture(scope="session")
def conf(model_files):
    return model_files[2]


@pytest.fixture(scope="session")
def det(model_files):
    from detector import Detector
    return Detector.load(model_files[0])


@pytest.fixture(scope="session")
def photos(shared_data):
    return sorted((shared_data / "ccp-train" / "photos").glob("*.jpg"))[:4]


def _synthetic_photo(w=480, h=640) -> Image.Image:
    """A person-like figure (no real data needed): top, trousers, shoes on a textured wall."""
    rng = np.random.default_rng(1)
    a = (rng.normal(170, 20, (h, w, 3))).clip(0, 255).astype(np.uint8)
    im = Image.fromarray(a)
    d = ImageDraw.Draw(im)
    d.ellipse([w * .42, h * .05, w * .58, h * .17], fill=(224, 180, 150))
    d.rectangle([w * .33, h * .17, w * .67, h * .47], fill=(200, 30, 40))
    d.rectangle([w * .36, h * .47, w * .64, h * .88], fill=(30, 40, 110))
    d.rectangle([w * .33, h * .88, w * .49, h * .94], fill=(20, 20, 20))
    d.rectangle([w * .51, h * .88, w * .67, h * .94], fill=(20, 20, 20))
    return im


def _match(a: np.ndarray, b: np.ndarray, iou_min=0.99) -> None:
    from detector.infer import box_iou
    assert len(a) == len(b), f"{len(a)} vs {len(b)} detections"
    if not len(a):
        return
    iou = box_iou(a[:, :4], b[:, :4])
    for i in range(len(a)):
        j = int(np.argmax(iou[i] * (b[:, 5] == a[i, 5])))
        assert iou[i, j] >= iou_min and b[j, 5] == a[i, 5], f"box {i}: best IoU {iou[i, j]:.4f}"


def test_parity_with_ultralytics(model_files, det, photos):
    """Our letterbox + decoding on ONNX == Ultralytics' own PyTorch predict on the same images
    (one pass: the mirrored one for photos of people is ours alone)."""
    from detector.ultra import ultralytics_offline
    ultralytics_offline(2)
    from ultralytics import YOLO
    onnx, pt, conf = model_files
    ref = YOLO(str(pt))
    nms_free = det.session.get_outputs()[0].shape[-1] == 6  # which YOLO26 head the ONNX carries
    n_boxes = 0
    for im in [Image.open(p).convert("RGB") for p in photos] + [_synthetic_photo()]:
        r = ref.predict(im, imgsz=det.imgsz, conf=conf, device="cpu", verbose=False,
                        nms=False if nms_free else None)[0].boxes
        theirs = np.concatenate([r.xyxy.numpy(), r.conf.numpy()[:, None], r.cls.numpy()[:, None]], 1)
        ours = det.raw(im, conf=conf, mirror=False)
        _match(theirs, ours)
        n_boxes += len(ours)
    assert n_boxes > 0, "parity checked on no boxes at all"


def _same(a: list[dict], b: list[dict], iou_min=0.98):
    _match(np.asarray([x["box"] + [x["confidence"], hash(x["category"]) % 997] for x in a]),
           np.asarray([x["box"] + [x["confidence"], hash(x["category"]) % 997] for x in b]), iou_min)


def test_boxes_in_original_coordinates(det, conf, photos):
    """The same photo at 3x the size gives the same boxes, 3x larger (boxes are in image pixels)."""
    from detector.infer import box_iou
    im = Image.open(photos[0]).convert("RGB")
    base = [x for x in det.predict(im, conf=conf) if not x["whole_image"]][:5]
    big_im = im.resize((im.width * 3, im.height * 3), Image.BILINEAR)
    big = det.raw(big_im, conf=conf * 0.5)  # tolerant threshold: scores move a little with resampling
    assert base, "no detections to compare"
    for x in base:
        same = big[big[:, 5] == det.names.index(x["category"])]
        assert len(same) and box_iou(np.asarray([x["box"]]) * 3, same[:, :4]).max() >= 0.9
    for it in det.predict(big_im):
        x1, y1, x2, y2 = it["box"]
        assert 0 <= x1 < x2 <= im.width * 3 and 0 <= y1 < y2 <= im.height * 3


class _CountingSession:
    """The detector's real ONNX Runtime session, counting its runs."""

    def __init__(self, session):
        self.session, self.runs = session, 0

    def run(self, *args, **kwargs):
        self.runs += 1
        return self.session.run(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.session, name)


def test_a_photo_of_a_person_is_read_mirrored_too(det, photos):
    """A street photo (FLIP_ITEMS garments or more) takes a second, mirrored pass, so the boxes of the photo and of
    its mirror image agree; a shop shot takes one pass."""
    from detector.infer import FLIP_ITEMS, box_iou
    spy = _CountingSession(det.session)
    d = type(det)(spy, det.path, det.imgsz, det.names, det.stride, det.threads)
    scene = max((Image.open(p).convert("RGB") for p in photos), key=lambda im: len(d.predict(im)))
    assert len(d.predict(scene)) >= FLIP_ITEMS, "no photo of a person among the test photos"
    spy.runs = 0
    a = d.raw(scene)
    assert spy.runs == 2
    b = d.raw(ImageOps.mirror(scene))
    b[:, [0, 2]] = scene.width - b[:, [2, 0]]
    assert len(a) >= FLIP_ITEMS
    for box in a:
        same = b[b[:, 5] == box[5]]
        assert len(same) and box_iou(box[None, :4], same[:, :4]).max() >= 0.9
    shop = Image.new("RGB", (400, 500), (250, 250, 250))
    ImageDraw.Draw(shop).rectangle([120, 90, 300, 420], fill=(40, 90, 160))
    spy.runs = 0
    d.predict(shop)
    assert spy.runs == 1


def test_exif_rotated_photo(det, conf, tmp_path):
    upright = _synthetic_photo()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: a viewer turns it 90 degrees clockwise
    p = tmp_path / "phone.jpg"
    upright.transpose(Image.Transpose.ROTATE_90).save(p, quality=95, exif=exif)
    from_file = det.predict(p, conf=conf)
    from_bytes = det.predict(p.read_bytes(), conf=conf)
    from_pil = det.predict(Image.open(p), conf=conf)  # a freshly opened image still carries the tag
    # the pixels turned upright by hand (a new array: no EXIF left to apply)
    ref = det.predict(Image.fromarray(np.asarray(Image.open(p).transpose(Image.Transpose.ROTATE_270))), conf=conf)
    _same(from_file, ref)
    _same(from_bytes, ref)
    _same(from_pil, ref)
    for it in from_file:
        assert it["box"][2] <= upright.width and it["box"][3] <= upright.height


def test_grayscale_rgba_tiny_huge(det, conf):
    im = _synthetic_photo()
    gray = im.convert("L")
    _same(det.predict(gray, conf=conf), det.predict(gray.convert("RGB"), conf=conf))
    rgba = im.convert("RGBA")
    rgba.putalpha(Image.new("L", im.size, 255))
    _same(det.predict(rgba, conf=conf), det.predict(im, conf=conf))
    for size in [(20, 24), (6000, 4500)]:
        big = im.resize(size)
        items = det.predict(big)
        assert items, "at least the whole-image item"
        for it in items:
            x1, y1, x2, y2 = it["box"]
            assert 0 <= x1 < x2 <= size[0] and 0 <= y1 < y2 <= size[1]
            assert it["crop"].width >= 1 and it["crop"].height >= 1


def test_bad_input_is_a_clear_error(det, tmp_path):
    from detector import Detector
    with pytest.raises(UserError):
        det.predict(b"this is not an image")
    with pytest.raises(UserError):
        det.predict(b"")
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x01garbage")
    with pytest.raises(UserError):
        Detector.load(bad)
    with pytest.raises(UserError):
        Detector.load(tmp_path / "missing.onnx")


def test_whole_image_fallback_on_plain_product_shot(det):
    im = Image.new("RGB", (400, 500), (250, 250, 250))
    ImageDraw.Draw(im).rectangle([120, 90, 300, 420], fill=(40, 90, 160))
    items = det.predict(im, conf=1.0)  # nothing can pass: forces the fallback
    assert len(items) == 1 and items[0]["whole_image"] and items[0]["category"] is None
    x1, y1, x2, y2 = items[0]["box"]
    assert abs(x1 - 120) <= 3 and abs(y1 - 90) <= 3 and abs(x2 - 301) <= 3 and abs(y2 - 421) <= 3
    assert items[0]["crop"].size == (int(x2 - x1), int(y2 - y1))
    blank = Image.new("RGB", (300, 300), "white")
    assert det.predict(blank, conf=1.0)[0]["box"] == [0.0, 0.0, 300.0, 300.0]


def test_classifier_inputs_say_where_the_garment_lies_in_its_crop():
    """The colour is read in the detected box, so the box must land on the same pixels of the crop."""
    from detector.infer import CLASSIFY_MARGIN, classifier_inputs
    im = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 200, 3), np.uint8))
    found = [{"box": [10.0, 40.0, 110.0, 240.0], "category": "top", "whole_image": False},
             {"box": [0.0, 0.0, 200.0, 300.0], "category": None, "whole_image": True, "crop": im}]
    crops, priors, boxes = classifier_inputs(im, found)
    x1, y1, x2, y2 = boxes[0]
    assert (x1, y1) == (10.0, 200 * CLASSIFY_MARGIN)  # the margin stops at the image's left edge
    assert crops[0].crop((x1, y1, x2, y2)).tobytes() == im.crop((10, 40, 110, 240)).tobytes()
    assert boxes[1] is None and crops[1] is im and priors == [None, None]


def test_duplicates_suppressed_across_classes():
    from detector.infer import suppress_duplicates

    def it(cat, box, c):
        return {"category": cat, "box": box, "confidence": c}
    out = suppress_duplicates([it("top", [10, 10, 100, 100], .9), it("top", [12, 8, 98, 104], .6),
                               it("outerwear", [5, 5, 110, 150], .8), it("dress", [10, 10, 100, 200], .7),
                               it("skirt", [10, 20, 100, 200], .5), it("shoes", [10, 300, 40, 320], .6),
                               it("shoes", [60, 300, 90, 320], .5)])
    cats = sorted(x["category"] for x in out)
    assert cats == ["dress", "outerwear", "shoes", "shoes", "top"]


def test_decode_nms_layout():
    """YOLOv8/11-style output (1, 4 + nc, anchors) goes through class-aware NMS."""
    from detector.infer import decode
    nc = 9
    p = np.zeros((1, 4 + nc, 4), np.float32)
    p[0, :4, 0] = [50, 50, 20, 20]; p[0, 4, 0] = .9      # top
    p[0, :4, 1] = [51, 50, 20, 20]; p[0, 4, 1] = .8      # same top again: suppressed
    p[0, :4, 2] = [51, 50, 20, 20]; p[0, 5, 2] = .7      # outerwear there: other class, kept
    p[0, :4, 3] = [200, 50, 20, 20]; p[0, 4, 3] = .1     # below conf
    d = decode(p, 0.25, nc)
    assert d.shape == (2, 6) and list(d[:, 5]) == [0, 1]
    np.testing.assert_allclose(d[0, :4], [40, 40, 60, 60])


def test_nms_is_greedy_per_class():
    """The OpenCV NMS keeps exactly what textbook greedy NMS keeps within each class, best first."""
    from detector.infer import box_iou, nms
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 200, (600, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 60, (600, 2))], 1)
    scores, classes = rng.uniform(0, 1, 600), rng.integers(0, 3, 600)
    expected, order = [], list(np.argsort(-scores))
    while order:
        i = order.pop(0)
        expected.append(i)
        order = [j for j in order if classes[j] != classes[i] or box_iou(boxes[[i]], boxes[[j]])[0, 0] <= 0.7]
    assert nms(boxes, scores, classes, 0.7).tolist() == expected
    assert nms(boxes[:0], scores[:0], classes[:0], 0.7).tolist() == []


def test_eval_cli_writes_metrics(model_files, shared_data, tmp_path):
    from sketchshop.cli import main
    src = shared_data / "ccp-train" / "annotations_coco.json"
    data = json.loads(src.read_text())
    keep = {im["id"] for im in data["images"][:3]}
    data["images"] = [i for i in data["images"] if i["id"] in keep]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in keep]
    sub = tmp_path / "sub.json"
    sub.write_text(json.dumps(data))
    out = tmp_path / "m.json"
    rc = main(["eval", "detector", "--coco", str(sub), "--images", str(src.parent), "--json", str(out),
               "--weights", str(model_files[0]), "--plot", str(tmp_path / "ap.png")])
    assert rc == 0
    m = json.loads(out.read_text())
    assert {"n_images", "map50", "map50_95", "per_class_ap50", "ms_per_image"} <= set(m)
    assert m["n_images"] == 3 and 0 <= m["map50"] <= 1 and m["ms_per_image"] > 0
    assert Image.open(tmp_path / "ap.png").size[0] > 100 and m["one_pass"] is False
    rc = main(["eval", "detector", "--coco", str(sub), "--images", str(src.parent), "--json", str(out),
               "--weights", str(model_files[0]), "--one-pass"])
    assert rc == 0 and json.loads(out.read_text())["one_pass"] is True
    assert main(["eval", "detector", "--coco", str(tmp_path / "nope.json"), "--json", str(out)]) == 2


def test_eval_products_cli(model_files, tmp_path):
    """Both shares: the top detected box, and the API's first item (the trimmed whole image where nothing
    was detected), which can only credit more photos."""
    from sketchshop.cli import main
    from sketchshop.studio import render_product
    shots = tmp_path / "shots"
    shots.mkdir()
    for i in range(3):
        render_product(11, i).image.save(shots / f"studio{i}.jpg")
    (shots / "truncated.jpg").write_bytes((shots / "studio0.jpg").read_bytes()[:300])  # skipped, as every eval does
    out = tmp_path / "p.json"
    assert main(["eval", "detector", "--products", str(shots), "--json", str(out),
                 "--weights", str(model_files[0])]) == 0
    m = json.loads(out.read_text())
    assert m["n_images"] == 3 and 0 <= m["no_detection"] <= 3
    assert [x["file"] for x in m["skipped"]] == [str(shots / "truncated.jpg")]
    assert 0 <= m["top_box_iou_ge_0.8"] <= m["top_item_iou_ge_0.8"] <= 1
    assert main(["eval", "detector", "--products", str(tmp_path / "nope"), "--json", str(out)]) == 2


@pytest.mark.parametrize("size", [(550, 832), (20, 24), (1000, 300), (320, 320)])
def test_letterbox_matches_ultralytics(size):
    """The one preprocessing equals Ultralytics' LetterBox (minimum rectangle, grey 114, centred)."""
    from detector.infer import letterbox
    from detector.ultra import ultralytics_offline
    ultralytics_offline()
    from ultralytics.data.augment import LetterBox
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    ours, lb = letterbox(im, 256, 32)
    theirs = LetterBox((256, 256), auto=True, stride=32)(image=np.asarray(im)[:, :, ::-1].copy())
    np.testing.assert_array_equal((ours[0].transpose(1, 2, 0) * 255).round().astype(np.uint8), theirs[:, :, ::-1])
    box = lb.to_original(np.asarray([[lb.pad_x, lb.pad_y, ours.shape[3] - lb.pad_x, ours.shape[2] - lb.pad_y]]))
    np.testing.assert_allclose(box[0], [0, 0, size[0], size[1]], atol=size[0] / 256 + 1)


def test_train_refuses_missing_initial_weights(tmp_path):
    from detector.train import train
    data = tmp_path / "data.yaml"
    data.write_text("path: .\n")
    with pytest.raises(UserError, match="initial weights not found"):
        train(data, init=tmp_path / "nope.pt")


def test_card_states_the_recipe_the_run_recorded(tmp_path):
    """The card is written from the run's args.yaml: a fine-tuned trunk is never called frozen."""
    from detector.export import _run_args, write_card
    run = tmp_path / "run"
    (run / "weights").mkdir(parents=True)
    (run / "args.yaml").write_text("model: models/detector/detector.pt\nepochs: 30\nimgsz: 256\nfreeze: null\n"
                                   "lr0: 0.001\nmosaic: 1.0\n")
    m = json.loads((Path(__file__).parent.parent / "models" / "detector" / "metrics.json").read_text())
    m["run_args"] = _run_args(run / "weights" / "best.pt")
    write_card(tmp_path / "card.md", m)
    card = (tmp_path / "card.md").read_text()
    assert "fine-tuned; started from `models/detector/detector.pt`" in card
    assert "'lr0': 0.001" in card and "frozen, batch-norm" not in card


def _inst(cls, box, mask=None):
    from detector.copypaste import Instance
    x1, y1, x2, y2 = box
    return Instance(0, cls, box, np.ones((y2 - y1, x2 - x1), bool) if mask is None else mask)


def test_copy_paste_recomputes_boxes_and_drops_hidden_garments():
    """A pasted garment gets its own box; one it hides loses its box; one it partly hides shrinks."""
    import random

    from detector.copypaste import compose
    from detector.data import NAMES
    base = np.zeros((300, 200, 3), np.uint8)
    top, skirt, shorts = NAMES.index("top"), NAMES.index("skirt"), NAMES.index("shorts")
    small = _inst(top, (90, 100, 110, 120))   # any placement of the paste below covers it
    tall = _inst(skirt, (10, 0, 40, 300))
    src = np.full((300, 200, 3), 255, np.uint8)
    pasted = _inst(shorts, (0, 0, 150, 200))  # scaled 0.8-1.2, moved sideways, up or down by < 10 %
    for seed in range(5):
        out, boxes = compose(base, [small, tall], [(pasted, src)], random.Random(seed))
        by_cls = {c: b for c, b in boxes}
        assert top not in by_cls, "a garment hidden under a pasted one must lose its box"
        x1, y1, x2, y2 = by_cls[shorts]
        assert out[y1:y2, x1:x2].min() == 255 and out.sum() == 255 * 3 * (x2 - x1) * (y2 - y1)
        visible = np.zeros((300, 200), bool)
        visible[0:300, 10:40] = True
        visible[y1:y2, x1:x2] = False
        if visible.sum() < 0.35 * 30 * 300:
            assert skirt not in by_cls
        else:
            ys, xs = np.nonzero(visible)
            assert by_cls[skirt] == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_copy_paste_scenes_from_real_masks(shared_data, tmp_path):
    """Built from the training split only, in YOLO layout, each label line inside the frame."""
    from detector.copypaste import build_copy_paste
    from detector.data import NAMES, split_ids
    coco = shared_data / "ccp-train" / "annotations_coco.json"
    ids = [im["id"] for im in json.loads(coco.read_text())["images"]]
    train_ids, val_ids = split_ids(ids)
    images = build_copy_paste(coco, coco.parent, train_ids[:40], tmp_path / "cp", n=6)
    files = sorted(images.glob("*.jpg"))
    assert len(files) == 6
    for f in files:
        lines = (images.parent / "labels" / f"{f.stem}.txt").read_text().split("\n")[:-1]
        assert lines, f"{f.name}: no boxes"
        for line in lines:
            c, *xywh = line.split()
            assert 0 <= int(c) < len(NAMES) and all(0 <= float(v) <= 1 for v in xywh)
    assert build_copy_paste(coco, coco.parent, train_ids[:40], tmp_path / "cp", n=6) == images  # cached


def test_studio_products_boxed_by_their_masks(tmp_path):
    """One label per render: its coarse class and the box of its mask, in YOLO's normalised xywh."""
    from detector.data import NAMES, build_studio_products
    from sketchshop.studio import render_product
    images = build_studio_products(tmp_path / "studio", n=3, seed=7)
    files = sorted(images.glob("*.jpg"))
    assert [f.stem for f in files] == ["p000000", "p000001", "p000002"]
    for i, f in enumerate(files):
        p = render_product(7, i)
        ys, xs = np.nonzero(np.asarray(p.mask) > 127)
        W, H = p.image.size
        c, cx, cy, w, h = (images.parent / "labels" / f"{f.stem}.txt").read_text().split()
        assert NAMES[int(c)] == p.coarse
        assert np.allclose([float(cx) * W, float(cy) * H, float(w) * W, float(h) * H],
                           [(xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2,
                            xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()], atol=0.01)
    assert build_studio_products(tmp_path / "studio", n=3, seed=7) == images  # cached


def test_copy_paste_needs_masks(tmp_path):
    from detector.copypaste import build_copy_paste
    coco = tmp_path / "boxes_only.json"
    coco.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [],
                                "categories": [{"id": 1, "name": "top"}]}))
    with pytest.raises(UserError, match="pixel masks"):
        build_copy_paste(coco, tmp_path, [1], tmp_path / "cp", n=1)


def _shop_shot(shapes, size=(400, 400), background=(245, 245, 245)) -> Image.Image:
    """A plain-background product shot: filled rectangles [(x1, y1, x2, y2, rgb)]."""
    im = Image.new("RGB", size, background)
    d = ImageDraw.Draw(im)
    for *box, rgb in shapes:
        d.rectangle(box, fill=rgb)
    return im


def _item(box, category, confidence=0.8):
    return {"box": [float(v) for v in box], "category": category, "confidence": confidence, "whole_image": False}


def test_plain_background_product_takes_its_whole_silhouette():
    from detector.infer import snap_to_product
    pair = _shop_shot([(60, 150, 180, 260, (200, 40, 40)), (220, 150, 340, 260, (200, 40, 40))])
    found = snap_to_product(pair, [_item((220, 150, 340, 260), "shoes"), _item((60, 150, 180, 260), "shoes", 0.5)])
    assert len(found) == 1 and found[0]["category"] == "shoes"
    assert np.allclose(found[0]["box"], (60, 150, 341, 261), atol=4), found[0]["box"]  # both shoes, one product
    (pair,) = snap_to_product(pair, [_item((220, 150, 340, 260), "shoes"), _item((60, 150, 180, 260), "hat", 0.5)])
    assert np.allclose(pair["box"], (60, 150, 341, 261), atol=4)  # the other shoe taken for a cap: still one pair
    cap = _shop_shot([(100, 100, 300, 220, (30, 60, 160)), (100, 220, 360, 240, (30, 60, 160))])  # crown + brim
    (only,) = snap_to_product(cap, [_item((100, 100, 300, 222), "hat")])
    assert np.allclose(only["box"], (100, 100, 361, 241), atol=4)
    (loose,) = snap_to_product(cap, [_item((20, 90, 380, 400), "hat")])  # a box far beyond the product
    assert np.allclose(loose["box"], (100, 100, 361, 241), atol=4)


def test_unevenly_lit_backdrop_is_still_plain():
    from detector.infer import plain_background_box
    x = np.linspace(0, 1, 400, dtype=np.float32)
    light = 215 + 38 * (1 - (x[None, :] - 0.7) ** 2 - (x[:, None] - 0.3) ** 2)  # a softbox's falloff: 215-253
    im = Image.fromarray(np.repeat(light[..., None], 3, axis=2).clip(0, 255).astype(np.uint8))
    ImageDraw.Draw(im).rectangle((120, 80, 280, 330), fill=(150, 30, 60))
    assert np.allclose(plain_background_box(im), (120, 80, 281, 331), atol=5)


def test_product_box_takes_a_light_part_and_no_empty_backdrop():
    from detector.infer import snap_to_product
    shirt = _shop_shot([(100, 100, 300, 300, (40, 40, 40)), (60, 100, 99, 200, (228, 228, 228))])  # sleeve in shade
    (found,) = snap_to_product(shirt, [_item((50, 90, 310, 310), "top")])
    assert np.allclose(found["box"], (60, 100, 301, 301), atol=4), found["box"]  # the sleeve's edge, not the box's
    dark = _shop_shot([(100, 100, 300, 300, (40, 40, 40))])  # the detector's box a little loose, nothing there
    (tight,) = snap_to_product(dark, [_item((70, 90, 320, 330), "top")])
    assert np.allclose(tight["box"], (100, 100, 301, 301), atol=4), tight["box"]


def test_flat_lay_and_busy_backgrounds_stay_as_found():
    from detector.infer import snap_to_product
    outfit = _shop_shot([(40, 40, 180, 200, (20, 120, 40)), (220, 60, 360, 380, (20, 20, 120))])
    items = [_item((220, 60, 360, 380), "pants"), _item((40, 40, 180, 200), "top", 0.6)]
    assert snap_to_product(outfit, items) == items  # two garments beside each other: two products
    rng = np.random.default_rng(0)
    busy = Image.fromarray(rng.integers(0, 255, (400, 400, 3), dtype=np.uint8))
    items = [_item((100, 100, 200, 200), "top")]
    assert snap_to_product(busy, items) == items
    whole = [{"box": [0.0, 0.0, 400.0, 400.0], "category": None, "confidence": 0.0, "whole_image": True}]
    assert snap_to_product(_shop_shot([(50, 50, 300, 300, (0, 0, 0))]), whole) == whole


def test_boxes_over_bare_backdrop_are_no_garments(det):
    from detector.infer import snap_to_product
    wall = Image.fromarray(np.tile(np.linspace(90, 200, 400).astype(np.uint8)[None, :, None], (500, 1, 3)))
    for blank in (Image.new("RGB", (400, 500), (128, 128, 128)), wall):
        assert snap_to_product(blank, [_item((100, 100, 300, 300), "top")]) == []
        (only,) = det.predict(blank, conf=0.01)  # whatever the network sees in it
        assert only["whole_image"] and only["category"] is None
    shot = _shop_shot([(100, 100, 300, 300, (40, 40, 40))])
    found = snap_to_product(shot, [_item((98, 98, 302, 302), "top"), _item((320, 20, 390, 90), "hat", 0.5)])
    assert [it["category"] for it in found] == ["top"]  # the empty corner's hat goes


def test_street_photos_are_not_shop_shots(photos):
    from detector.infer import plain_background_box
    assert all(plain_background_box(Image.open(p)) is None for p in photos)


@pytest.mark.slow
def test_install_replaces_the_model_only_when_it_all_works(shared_data, data_dir, tmp_path, monkeypatch):
    """A failed install had already replaced detector.onnx and .pt, leaving the old card and metrics; the held-out
    evaluation read the images from the json's folder instead of --images (found by a QA session)."""
    import shutil

    from detector.data import build_ccp
    from detector.export import install
    from sketchshop.config import settings
    from sketchshop.errors import UserError
    from sketchshop.registry import sha256
    models = tmp_path / "models"
    shutil.copytree(ROOT / "models" / "detector", models / "detector")
    monkeypatch.setenv("SKETCHSHOP_MODELS_DIR", str(models))
    settings.cache_clear()
    src = shared_data / "ccp-train" / "annotations_coco.json"
    data = json.loads(src.read_text())
    keep = {im["id"] for im in data["images"][:8]}
    data["images"] = [i for i in data["images"] if i["id"] in keep]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in keep]
    sub = tmp_path / "elsewhere" / "sub.json"   # not beside its images: those come from --images
    sub.parent.mkdir()
    sub.write_text(json.dumps(data))
    before = {f.name: sha256(f) for f in (models / "detector").iterdir()}
    ckpt = ROOT / "models" / "detector" / "detector.pt"
    shipped = sha256(ROOT / "models" / "detector" / "detector.onnx")   # Ultralytics exports beside its input

    yaml_path = build_ccp(sub, src.parent, data_dir / "ccp", val_n=3)
    split = json.loads((yaml_path.parent / "split.json").read_text())
    split["images"] = str(tmp_path / "gone")     # the photos moved away after the dataset was built
    (yaml_path.parent / "split.json").write_text(json.dumps(split))
    with pytest.raises(UserError, match="gone"):
        install(ckpt, imgsz=256, data_yaml=yaml_path, nms_free=False)
    assert {f.name: sha256(f) for f in (models / "detector").iterdir()} == before

    yaml_path = build_ccp(sub, src.parent, data_dir / "ccp2", val_n=3)
    install(ckpt, imgsz=256, data_yaml=yaml_path, nms_free=False)
    after = json.loads((models / "detector" / "metrics.json").read_text())
    assert after["n_images"] == 3 and after["sha256"] == sha256(models / "detector" / "detector.onnx")
    card = (models / "detector" / "card.md").read_text()   # the data it was given, not the shipped model's
    assert f"- Train: 5 photos of `{sub.resolve()}`" in card and "Validation: 3 photos" in card
    assert set(before) <= {f.name for f in (models / "detector").iterdir()}
    assert sha256(ROOT / "models" / "detector" / "detector.onnx") == shipped


def test_a_finished_run_is_not_resumed_into_a_new_one(data_dir, tmp_path, capsys):
    """Rerunning a finished `train detector` made Ultralytics start a new run on its own defaults, which tried to
    download coco8 (found by a QA session): it now says the run is done and trains nothing."""
    import shutil

    from detector.train import run_dir, train
    weights = run_dir("done") / "weights"
    weights.mkdir(parents=True)
    shutil.copy(ROOT / "models" / "detector" / "detector.pt", weights / "last.pt")  # a final, stripped checkpoint
    (tmp_path / "data.yaml").write_text("path: nowhere\n")
    assert train(tmp_path / "data.yaml", name="done") == weights / "best.pt"
    assert "has finished its training: nothing to resume" in capsys.readouterr().out
    assert sorted(p.name for p in run_dir("done").rglob("*") if p.is_file()) == ["last.pt"]


def test_an_onnx_model_that_is_not_a_detector_is_a_clear_error(tmp_path):
    """The classifier's ONNX given as the detector gave an IndexError traceback in eval, index and serve (a QA
    session): it is now refused when it is opened."""
    import onnx
    from onnx import TensorProto, helper

    from detector.infer import Detector
    from sketchshop.errors import UserError
    graph = helper.make_graph(   # image in, class scores out: a classifier's shape
        [helper.make_node("GlobalAveragePool", ["images"], ["pooled"]), helper.make_node("Flatten", ["pooled"], ["scores"])],
        "classifier", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 256, 256])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3])])
    path = tmp_path / "classifier.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    with pytest.raises(UserError, match="not a YOLO garment detector"):
        Detector.load(path)


def test_crawl_data_must_be_a_dataset_detect_output(shared_data, data_dir, tmp_path, capsys):
    from sketchshop.cli import main
    assert main(["train", "detector", "--crawl-data", str(tmp_path), "--epochs", "1"]) == 2
    assert "not a `sketchshop dataset detect` output" in capsys.readouterr().err
