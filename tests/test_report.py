"""`sketchshop report`: runs the eval commands in-process and writes report.md + their JSON.

Small on purpose (--limit 4, --no-bench, a few sections): the numbers must equal what the eval
functions return on the same inputs; real-data parts skip when ../shared/data is absent.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sketchshop.cli import main


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("argv, culprit", [
    (["--only", "classifier,nonsense"], "nonsense"),
    (["--limit", "0"], "--limit"),
    (["--bench-json", "/nonexistent/bench.json"], "bench.json"),
])
def test_bad_options(tmp_path, capsys, argv, culprit):
    rc, _, err = _run(capsys, "report", "--out", str(tmp_path / "r"), *argv)
    assert rc == 2 and culprit in err and "Traceback" not in err
    last = err.strip().splitlines()[-1]  # argparse's usage error (--limit) ends with its own error line
    assert last.startswith(("sketchshop: error:", "sketchshop report: error:")) and culprit in last


def test_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    rc, _, err = _run(capsys, "report", "--out", str(blocker / "report"), "--no-bench")
    assert rc == 2
    assert "cannot write" in err and str(blocker) in err and "Traceback" not in err


def test_help_lists_options(capsys):
    assert main(["report", "--help"]) == 0
    out = capsys.readouterr().out
    for opt in ("--out", "--limit", "--only", "--no-bench", "--bench-json"):
        assert opt in out


def test_studio_fallback(tmp_path, capsys, data_dir, monkeypatch):
    """No real data: the detector runs on rendered studio scenes; no index: search says so."""
    monkeypatch.setenv("SKETCHSHOP_SHARED_DATA", str(tmp_path / "no-data"))
    out = tmp_path / "rep"
    rc, stdout, err = _run(capsys, "report", "--out", str(out), "--limit", "4", "--only", "detector,search",
                           "--no-bench")
    assert rc == 0, err
    md = (out / "report.md").read_text()
    assert "No real data" in md and "studio" in md
    assert "| detector: mAP50 |" in md
    assert "No search index" in md and "Skipped (`--no-bench`)" in md
    res = json.loads((out / "json" / "eval-detector.json").read_text())
    summary = json.loads((out / "json" / "report.json").read_text())
    assert summary["data"]["source"] == "studio"
    row = next(r for r in summary["headlines"] if r["metric"] == "map50")
    assert row["value"] == res["map50"] and row["command"].startswith("sketchshop eval detector --coco ")
    assert f"**{res['map50']:.4f}**" in md


@pytest.mark.slow  # two models loaded and run twice: ~20 s of CPU, minutes of wall time on a loaded machine
def test_real_numbers_match_eval_functions(shared_data, tmp_path, capsys, data_dir):
    """On the real validation data: report numbers == eval functions on the same limited input."""
    if not (shared_data / "ccp-train" / "annotations_coco.json").is_file():
        pytest.skip(f"ccp-train not found at {shared_data}")
    out = tmp_path / "rep"
    rc, stdout, err = _run(capsys, "report", "--out", str(out), "--limit", "4", "--only", "classifier,detector",
                           "--no-bench")
    assert rc == 0, err
    md = (out / "report.md").read_text()
    summary = json.loads((out / "json" / "report.json").read_text())
    assert summary["data"]["source"] == "real" and "Real validation data" in md
    for label in ("classifier: category top-1", "detector: mAP50", "detector: single-product photos"):
        assert f"| {label}" in md
    assert (out / "confusion.png").stat().st_size > 1000 and "![confusion matrix](confusion.png)" in md
    assert (out / "detector-ap50.png").is_file()
    runs = {r["section"]: r for r in summary["runs"]}
    assert not any(r["error"] for r in runs.values())

    # classifier: the same 4 photos through evaluate_classifier
    from classifier import Classifier
    from classifier.evaluate import evaluate_classifier
    from sketchshop.datasets import read_labels_csv
    a = runs["classifier"]["argv"]
    samples = read_labels_csv(a[a.index("--labels") + 1], a[a.index("--images") + 1])
    assert len(samples) == 4
    got = json.loads((out / "json" / "eval-classifier.json").read_text())
    want = evaluate_classifier(samples, Classifier.load())
    for k in ("n", "category_top1", "per_class", "confusion", "confusion_labels"):
        assert got[k] == want[k], k
    assert f"**{got['category_top1']:.4f}**" in md

    # colour of worn garments: 4 crops of the held-out street photos, through the detector as well
    a = runs["classifier-worn"]["argv"]
    samples = read_labels_csv(a[a.index("--labels") + 1], a[a.index("--images") + 1])
    assert len(samples) == 4 and all(s.colour for s in samples)
    got = json.loads((out / "json" / "eval-classifier-worn.json").read_text())
    want = evaluate_classifier(samples, Classifier.load(), detect=True)
    assert got["colour_top1"] == want["colour_top1"] and "| classifier: colour top-1 of garments worn" in md
    assert got["colour_confusion"] == want["colour_confusion"] and "| colour | n | top-1 | called instead |" in md
    # and the garments named by eye (docs/labels), kept to the limit like every eval (QA: all 86 ran)
    named = json.loads((out / "json" / "eval-classifier-worn-named.json").read_text())
    a = runs["classifier-worn-named"]["argv"]
    assert named["n"] == len(read_labels_csv(a[a.index("--labels") + 1], a[a.index("--images") + 1])) == 4
    assert "| classifier: the same, those of them named by eye" in md

    # detector: the same held-out split and limit through evaluate_coco
    from detector.evaluate import evaluate_coco
    a = runs["detector"]["argv"]
    got = json.loads((out / "json" / "eval-detector.json").read_text())
    want = evaluate_coco(Path(a[a.index("--coco") + 1]), Path(a[a.index("--images") + 1]), limit=4, threads=1)
    assert got["n_images"] == 4
    for k in ("map50", "map50_95", "per_class_ap50"):
        assert got[k] == want[k], k
    assert f"**{got['map50']:.4f}**" in md


def test_search_contact_sheet(tmp_path, monkeypatch):
    """The contact sheet: query, then its top-5 products (a stand-in searcher and catalogue, no index needed)."""
    from types import SimpleNamespace

    from PIL import Image

    import catalog
    from catalog.search import Searcher
    from sketchshop.datasets import Sample
    from sketchshop.report import search_sheet

    q = tmp_path / "q.jpg"
    Image.new("RGB", (120, 160), "red").save(q)
    prod = tmp_path / "p.png"
    Image.new("RGB", (100, 100), "blue").save(prod)
    d = SimpleNamespace(prediction={"category": "t-shirt"}, detector_category="top", box=[0, 0, 50, 50])
    hits = [SimpleNamespace(product_id=i) for i in range(5)]
    fake = SimpleNamespace(
        search=lambda im, kind, top_k: {"items": [(d, hits[:top_k])]},
        index=SimpleNamespace(items_by_id=lambda pid: SimpleNamespace(category="t-shirt", colour="blue",
                                                                       display={"image": f"sha{pid}"})))
    monkeypatch.setattr(Searcher, "load", classmethod(lambda cls, **kw: fake))
    monkeypatch.setattr(catalog, "open_catalog", lambda: SimpleNamespace(image_path=lambda sha: prod))
    out = search_sheet([Sample(q, "t-shirt"), Sample(q, "t-shirt")], tmp_path / "sheet.png")
    im = Image.open(out)
    assert im.size == (6 * 160, 2 * (160 + 16))
    assert im.getpixel((160 + 80, 16 + 80))[2] > 200  # a result tile (blue) right of the query


def test_bench_json_embedded(tmp_path, capsys, data_dir, monkeypatch):
    """--bench-json: an earlier `sketchshop bench` JSON becomes the report's benchmark table."""
    monkeypatch.setenv("SKETCHSHOP_SHARED_DATA", str(tmp_path / "no-data"))
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"quick": True, "started": "2026-11-22 12:00:00", "synth": {"products_per_min": 123.4},
                                 "index": {"dim": 256, "10000": {"kind": "flat", "build_s": 0.1, "index_mb": 9.8,
                                                                 "query_ms": {"p50": 0.5}, "recall@10": 1.0}}}))
    out = tmp_path / "rep"
    rc, _, err = _run(capsys, "report", "--out", str(out), "--limit", "2", "--only", "search", "--bench-json", str(bench))
    assert rc == 0, err
    md = (out / "report.md").read_text()
    assert "| synth | 123.4 products/min |" in md and "recall@10 1.0" in md and str(bench) in md
    assert json.loads((out / "json" / "bench.json").read_text())["synth"]["products_per_min"] == 123.4
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    rc, _, err = _run(capsys, "report", "--out", str(out), "--only", "search", "--bench-json", str(bad))
    assert rc == 2 and "not a `sketchshop bench` JSON" in err


def test_no_data_pictures_leaves_out_sheets_of_real_photos(shared_data, tmp_path, capsys, data_dir):
    """A report meant for committing holds no picture made from the real evaluation photos."""
    out = tmp_path / "r"
    rc, _, err = _run(capsys, "report", "--out", str(out), "--only", "colorizer", "--limit", "2", "--no-bench",
                      "--no-data-pictures")
    assert rc == 0, err
    assert json.loads((out / "json" / "eval-colorizer.json").read_text())["n"] == 2
    assert not list(out.glob("*sheet*.png"))
    assert "colorizer-sheet.png" not in (out / "report.md").read_text()


def test_colour_labels_name_real_validation_photos(shared_data):
    """The hand-made colour labels point at real validation photos, in the vocabulary, and reach the samples."""
    from sketchshop import vocab
    from sketchshop.datasets import read_imagefolder
    from sketchshop.report import COLOUR_LABELS, _with_colours
    val = shared_data / "clothing-small" / "validation"
    if not val.is_dir():
        pytest.skip(f"clothing-small/validation not found at {shared_data}")
    samples = _with_colours(read_imagefolder(val), val)
    labelled = [s for s in samples if s.colour]
    assert len(labelled) == len(COLOUR_LABELS.read_text().splitlines()) - 1 > 50
    assert {s.colour for s in labelled} <= set(vocab.COLOURS)
