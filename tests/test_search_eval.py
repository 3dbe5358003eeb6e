"""`sketchshop eval search` on the live studio catalogue: photo queries and hinted sketches."""
from __future__ import annotations

import csv
import os

import numpy as np
import pytest
from PIL import Image


def _write(tmp_path, rows):
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "category", "colour", "hints"])
        w.writeheader()
        w.writerows(rows)
    return tmp_path / "labels.csv"


def test_photo_queries_find_their_category(live_catalog, tmp_path):
    from catalog.search_cli import evaluate_search
    rows = []
    for p in live_catalog.products[:6]:
        p.image.save(tmp_path / f"{p.id}.jpg")
        rows.append({"file": f"{p.id}.jpg", "category": p.category, "colour": p.colour, "hints": ""})
    res = evaluate_search(tmp_path, _write(tmp_path, rows), "photo", searcher=live_catalog.searcher)
    assert res["n"] == 6 and res["ms_p50"] > 0
    # the catalogue's own photos: at least their own product is in their top 10
    assert res["category_precision@10"] >= 0.1 and res["colour_precision@10"] >= 0.1


def test_sketch_hints_column_gives_the_colour(live_catalog, tmp_path):
    """Without hints a line drawing has no colour; with the hints column the query gets one."""
    from catalog.search_cli import evaluate_search
    rows, plain = [], []
    for p in live_catalog.products[:4]:
        p.sketch.save(tmp_path / f"{p.id}.png")
        p.hints.save(tmp_path / f"{p.id}-hints.png")
        rows.append({"file": f"{p.id}.png", "category": p.category, "colour": p.colour, "hints": f"{p.id}-hints.png"})
        plain.append({**rows[-1], "hints": ""})
    with_hints = evaluate_search(tmp_path, _write(tmp_path, rows), "sketch", searcher=live_catalog.searcher)
    without = evaluate_search(tmp_path, _write(tmp_path, plain), "sketch", searcher=live_catalog.searcher)
    assert with_hints["n"] == without["n"] == 4
    assert with_hints["colour_precision@10"] > without["colour_precision@10"]


def test_missing_hints_file_is_skipped_not_a_crash(live_catalog, tmp_path):
    from catalog.search_cli import evaluate_search
    from sketchshop.errors import UserError
    p = live_catalog.products[0]
    p.sketch.save(tmp_path / "s.png")
    missing = {"file": "s.png", "category": p.category, "colour": "", "hints": "missing.png"}
    Image.new("RGB", (200, 200), "white").save(tmp_path / "blank.png")   # drawn on, then erased
    blank = {**missing, "file": "blank.png", "hints": ""}
    res = evaluate_search(tmp_path, _write(tmp_path, [missing, {**missing, "hints": ""}, blank]), "sketch",
                          searcher=live_catalog.searcher)
    assert res["n"] == 1
    assert [(x["file"], "missing.png" in x["error"] or "empty" in x["error"]) for x in res["skipped"]] == [
        (str(tmp_path / "s.png"), True), (str(tmp_path / "blank.png"), True)]
    with pytest.raises(UserError, match="none of the 1 queries could be read"):  # not an exit 0 with n = 0
        evaluate_search(tmp_path, _write(tmp_path, [missing]), "sketch", searcher=live_catalog.searcher)


def test_describe_cache_is_keyed_by_both_models(tmp_path):
    """A new detector with the same classifier must not reuse the old descriptions (their crops differ)."""
    from catalog.search_cli import _cache_path
    cls, det_a, det_b = "c" * 16, "a" * 16, "b" * 16
    assert _cache_path(tmp_path, cls + det_a) != _cache_path(tmp_path, cls + det_b)


def test_describe_cache_is_keyed_by_the_describe_version(tmp_path, monkeypatch):
    """Changing how photos are cropped or described must not reuse descriptions made the old way."""
    import catalog.search as search
    from catalog.search_cli import build_index
    seen = []
    monkeypatch.setattr("catalog.search_cli._cache_path", lambda root, key: seen.append(key) or tmp_path / "x.pkl")

    class Empty:
        def iter_products(self):
            return iter(())
    for v in (search.DESCRIBE_VERSION, search.DESCRIBE_VERSION + 1):
        monkeypatch.setattr(search, "DESCRIBE_VERSION", v)
        with pytest.raises(Exception, match="no product"):
            build_index(Empty(), searcher=object(), root=tmp_path, progress=False)
    assert len(seen) == 2 and seen[0] != seen[1]


def test_bench_times_ours_and_the_obvious_pipeline_on_the_same_inputs(live_catalog):
    """`sketchshop bench`'s in-process part: every stage of both pipelines, photos and sketches."""
    import torch

    from sketchshop.bench import bench_pipelines
    photos = [live_catalog.data_dir / "p.png"]
    live_catalog.products[0].image.save(photos[0])
    sketches = [(p.sketch, p.hints) for p in live_catalog.products[:2]]
    s = live_catalog.searcher
    threads = torch.get_num_threads()
    try:
        ours, obvious = bench_pipelines(s, photos, sketches, repeats=1)
    finally:
        torch.set_num_threads(threads)
    assert {"detect", "classify", "search", "total"} <= set(ours["photo"])
    assert {"colorize", "classify", "search", "total"} <= set(ours["sketch"])
    assert set(obvious["photo_stages"]) == {"detect", "classify", "search"}
    assert set(obvious["sketch_stages"]) == {"colorize", "classify", "search"}
    for kind in ("photo", "sketch"):
        assert obvious[f"{kind}_total"]["p50"] > 0 and ours[kind]["total"]["p50"] > 0
        assert ours[kind]["total"]["n"] == obvious[f"{kind}_total"]["n"]  # the same inputs, as often
    assert s.colorizer.fast is not None  # the served ONNX Runtime generator is back after the eager run


def test_bench_times_ours_alone_when_the_obvious_pipeline_cannot_run(live_catalog, monkeypatch, tmp_path):
    from sketchshop import registry
    from sketchshop.bench import bench_pipelines
    monkeypatch.setattr(registry, "weights_path", lambda name, path=None: tmp_path / "detector.onnx")
    photos = [live_catalog.data_dir / "p.png"]
    live_catalog.products[0].image.save(photos[0])
    ours, obvious = bench_pipelines(live_catalog.searcher, photos, [], repeats=1)
    assert "missing" in obvious["error"] and set(obvious) == {"error"}
    assert ours["photo"]["total"]["p50"] > 0


def test_bench_says_how_much_the_second_core_helps(live_catalog):
    """The detector's network timed on 1 and 2 threads, which the bench runs around its pipelines, and on one
    thread pinned to each core alone and to both at once (where threads can be pinned)."""
    from sketchshop.bench import markdown, second_core
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    probe = second_core(live_catalog.searcher.detector, runs=3)
    assert probe["one_thread_ms"] > 0 and probe["two_threads_ms"] > 0
    md = markdown({"second_core": {"before": probe, "after": probe}})
    assert md.count(f"{probe['one_thread_ms']} / {probe['two_threads_ms']} ms") == 2
    if affinity and len(affinity) >= 2:
        assert len(probe["alone_ms"]) == len(probe["together_ms"]) == 2
        assert min(probe["alone_ms"] + probe["together_ms"]) > 0
        assert md.count(f"{probe['alone_ms'][0]} / {probe['alone_ms'][1]} ms alone, "
                        f"{probe['together_ms'][0]} / {probe['together_ms'][1]} ms together") == 2
        assert os.sched_getaffinity(0) == affinity  # the pinning stayed on the probe's own threads


def test_warm_up_runs_every_model_and_needs_no_index(live_catalog, monkeypatch):
    """The server warms its models before it says ready; the index may still be building."""
    from catalog.search import Searcher
    s = live_catalog.searcher
    bare = Searcher(s.classifier, s.detector, s.colorizer, None)
    calls = []

    def record(model, method):
        real = getattr(model, method)

        def wrapper(*args, **kwargs):
            calls.append(type(model).__name__)
            return real(*args, **kwargs)
        monkeypatch.setattr(model, method, wrapper)

    record(s.detector, "predict")
    record(s.classifier, "predict")
    record(s.colorizer, "colorize")
    bare.warm_up()
    assert {"Detector", "Classifier", "Colorizer"} <= set(calls)


def test_serve_refuses_fewer_than_one_worker(capsys):
    from sketchshop.cli import main
    assert main(["serve", "--workers", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err


def _drawn_small(image: Image.Image, at=(380, 120), mode="RGB", fill="white") -> Image.Image:
    """`image` at 2/5 of its size on a 720x1280 phone canvas."""
    canvas = Image.new(mode, (720, 1280), fill)
    resample = Image.NEAREST if mode == "RGBA" else Image.LANCZOS  # hint dots keep their colour
    canvas.paste(image.resize((image.width * 2 // 5, image.height * 2 // 5), resample), at)
    return canvas


def test_a_small_drawing_reads_like_the_same_drawing_framed(live_catalog):
    """Where on the canvas, and how small, a user draws does not change what the classifier reads."""
    from classifier.data import frame_drawing
    clf = live_catalog.searcher.classifier
    for p in live_catalog.products[:4]:
        a, b = clf.predict([frame_drawing(p.sketch), _drawn_small(p.sketch)], kind="sketch")
        assert a["category"] == b["category"]
        assert float(np.dot(a["embedding"], b["embedding"])) > 0.9


def test_sketch_search_frames_a_small_drawing_and_moves_its_hints(live_catalog):
    from catalog.search import crop_hints
    s, p = live_catalog.searcher, live_catalog.products[5]
    small = _drawn_small(p.sketch)
    layer = _drawn_small(p.hints.convert("RGBA"), mode="RGBA", fill=(0, 0, 0, 0))
    d, _ = s.describe_sketch(small, layer)
    assert d.crop.size[0] < 500 and d.crop.size[1] < 700, "the models saw the drawing, not the canvas"
    assert d.prediction["colour"] == s.describe_sketch(p.sketch, p.hints)[0].prediction["colour"]
    w, h = p.sketch.size
    points = [{"x": 380 + w / 5, "y": 120 + h / 5, "rgb": [200, 30, 35]}]  # the middle of the drawing
    d, _ = s.describe_sketch(small, points)
    assert d.prediction["colour"] == "red"
    moved = crop_hints(points, small.size, (300, 100, 600, 500))
    assert moved == [{"x": pytest.approx(80 + w / 5), "y": pytest.approx(20 + h / 5), "rgb": [200, 30, 35]}]
    assert crop_hints(layer, (360, 640), (0, 0, 100, 100)).size == (100, 100)  # a layer at half the canvas's size


def test_drawings_on_dark_or_photographed_paper_read_like_the_drawing(live_catalog):
    """A chalkboard-style drawing (or a stroke bitmap such as Quick, Draw!'s) is the same drawing inverted; a phone
    photo of it on paper is the same drawing under uneven light."""
    from PIL import ImageOps

    from catalog.search import guess_kind
    from conftest import photographed_on_paper
    from sketchshop.images import as_drawing
    s, p = live_catalog.searcher, live_catalog.products[3]
    dark = ImageOps.invert(p.sketch.convert("RGB"))
    assert as_drawing(dark).tobytes() == p.sketch.convert("RGB").tobytes()
    assert guess_kind(dark) == "sketch"
    a, b = s.classifier.predict([p.sketch, dark], kind="sketch")
    assert a["category"] == b["category"] and np.allclose(a["embedding"], b["embedding"], atol=1e-5)
    assert np.array_equal(np.asarray(s.colorizer.colorize(dark, p.hints)), np.asarray(s.colorizer.colorize(p.sketch, p.hints)))
    d, _ = s.describe_sketch(dark, p.hints)
    assert d.prediction["category"] == s.describe_sketch(p.sketch, p.hints)[0].prediction["category"]
    photo = photographed_on_paper(p.sketch)
    flat = np.asarray(as_drawing(photo).convert("L"))
    assert np.median(flat) > 240 and (flat < 100).mean() > 0.005, "white paper and dark strokes"
    c, d = s.classifier.predict([p.sketch, photo], kind="sketch")
    assert c["category"] == d["category"] and float(np.dot(c["embedding"], d["embedding"])) > 0.9
    assert guess_kind(photo) == "photo"  # without being told, a grey photo is a photo (pale products look alike)
    # photos and ordinary drawings pass through: a dark backdrop alone is not paper
    night = Image.new("RGB", (300, 400), (20, 20, 25))
    assert as_drawing(night).tobytes() == night.tobytes()  # no light strokes on it
    assert as_drawing(p.sketch).tobytes() == p.sketch.convert("RGB").tobytes()


def test_sbir_embeds_a_gallery_photo_as_the_index_stores_its_product(live_catalog):
    """`eval sbir` ranks the gallery by the embeddings the search index would hold for those photos, so its figure is
    the served retrieval's: a product on a wide plain backdrop is cropped to itself first, not embedded whole."""
    from catalog.search_cli import prominent
    from classifier.evaluate import gallery_embedding
    s = live_catalog.searcher
    for p in live_catalog.products[:3]:
        wide = Image.new("RGB", (p.image.width * 3, p.image.height * 2), p.image.getpixel((0, 0)))
        wide.paste(p.image, (p.image.width, p.image.height // 2))
        stored = np.asarray(prominent(s.describe_photo(wide)).prediction["embedding"], np.float32)
        ours = gallery_embedding(s.classifier, s.detector, wide)
        assert np.allclose(ours, stored, atol=1e-5)
        assert float(ours @ s.classifier.embed([wide])[0]) < 0.999  # not the whole canvas's embedding


@pytest.mark.parametrize("junk", [b"\x80\x04\x95 cut short", b"garbage\n"])
def test_an_unreadable_describe_cache_is_rebuilt_not_a_crash(live_catalog, tmp_path, junk, caplog):
    """A torn describe cache made every `index build` fail with a traceback until deleted by hand (a QA session)."""
    from catalog.search_cli import _cache_path, build_index, models_key
    cache = _cache_path(tmp_path, models_key())
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(junk)
    info = build_index(live_catalog.catalog, live_catalog.searcher, tmp_path, progress=False)
    assert info["products"] == live_catalog.index_info["products"] and info["cached"] == 0
    assert "unreadable describe cache" in caplog.text
    assert build_index(live_catalog.catalog, live_catalog.searcher, tmp_path, progress=False)["cached"] > 0
