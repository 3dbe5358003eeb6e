"""`sketchshop report --out DIR`: every `sketchshop eval ...` command in one run, written up.

Each section builds the argument list of an eval command (`sketchshop eval classifier ...`),
parses it with the real `sketchshop` parser and runs the command's own function in this process,
so the numbers in the report are exactly what that command line prints; the command line is
quoted next to each number. Inputs come from the real validation data (`../shared/data`, or
`SKETCHSHOP_SHARED_DATA`) when present, else from a small studio set rendered for the report.

Writes `DIR/report.md`, `DIR/json/eval-*.json` (what each command wrote), `DIR/json/report.json`
(headline rows, commands, data source) and PNGs: confusion matrix, per-class AP50, colouriser
sheet, search contact sheet. Inputs the report derives (subset CSVs, XDoG drawings, studio
renders) go under `<data dir>/report/`, never into DIR, so a committed report holds no data.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import shlex
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import vocab
from .cli import count
from .config import PROJECT_ROOT, settings
from .errors import UserError

log = logging.getLogger(__name__)

SECTIONS = ("classifier", "sbir", "detector", "colorizer", "search")

# (section, JSON key, label, target, "ge" | "le" | None). Targets are the project's goals (model cards).
HEADLINES = (
    ("classifier", "category_top1", "classifier: category top-1 (photos)", 0.93, "ge"),
    ("classifier", "colour_top1", "classifier: colour top-1 (the photos with a colour label)", 0.80, "ge"),
    ("classifier", "ms_per_image_batch1", "classifier: ms per image, batch 1 (ONNX Runtime, 2 threads)", 10.0, "le"),
    ("classifier", "ms_per_image", "classifier: ms per image, batches of 32 (ONNX Runtime, 2 threads)", 10.0, "le"),
    ("classifier-worn", "category_top1", "classifier: coarse category top-1 of garments worn in the held-out street "
     "photos (detector first)", None, None),
    ("classifier-worn", "colour_top1", "classifier: colour top-1 of garments worn in the held-out street photos "
     "(detector first; each labelled with the hand-set colour prototypes' name for its annotated pixels)", None, None),
    ("classifier-worn-named", "colour_top1", "classifier: the same, those of them named by eye "
     "(`docs/labels/ccp-worn-heldout-colours.csv`)", None, None),
    ("sbir", "acc@1", "sketch -> photo retrieval acc@1", None, None),
    ("sbir", "acc@10", "sketch -> photo retrieval acc@10", None, None),
    ("detector", "map50", "detector: mAP50", 0.70, "ge"),
    ("detector", "map50_95", "detector: mAP50-95", None, None),
    ("detector", "ms_per_image", "detector: ms per image (1 thread)", 20.0, "le"),
    ("detector-products", "top_box_iou_ge_0.8", "detector: single-product photos with top box IoU >= 0.8", 0.95, "ge"),
    ("detector-products", "top_item_iou_ge_0.8", "detector: the same with the trimmed whole image where nothing is "
     "detected (the API's first item)", None, None),
    ("colorizer", "ssim", "colouriser: SSIM on the garment, 30 hints", 0.85, "ge"),
    ("colorizer", "colour_delta_e", "colouriser: dominant colour dE2000, 30 hints", 10.0, "le"),
    ("colorizer", "ms_per_image", "colouriser: ms per 256 px image", 50.0, "le"),
    ("search", "category_precision@10", "search: category precision@10 (photo queries)", 0.95, "ge"),
    ("search", "colour_precision@10", "search: colour precision@10 (queries with a colour label)", 0.80, "ge"),
    ("search", "ms_p50", "search: p50 ms per photo query", None, None),
)


def shared_root() -> Path:
    """The real data folder: SKETCHSHOP_SHARED_DATA, else ../shared/data (as `train classifier` uses)."""
    return Path(os.environ.get("SKETCHSHOP_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))


@dataclass
class Data:
    """Where the report's inputs come from."""
    source: str                       # "real" | "studio"
    photos: Path                      # labelled photos (ImageFolder root for real, studio root for studio)
    samples: list = field(default_factory=list)   # sketchshop.datasets.Sample, already limited
    labels_csv: Path | None = None    # labels for `samples` (file relative to `photos`)
    coco: Path | None = None          # detector COCO json
    coco_images: Path | None = None
    worn: bool = False                # the COCO json has garment masks (ccp-train): colour of worn garments
    note: str = ""


@dataclass
class Run:
    section: str
    argv: list[str]
    json: Path
    result: dict | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def command(self) -> str:
        return "sketchshop " + " ".join(shlex.quote(a) for a in self.argv)


# ---------------------------------------------------------------- inputs
def _spread(items: list, n: int | None) -> list:
    """At most n items spread evenly over the list (every class of a sorted ImageFolder shows up)."""
    if not n or len(items) <= n:
        return list(items)
    return items[:: max(1, len(items) // n)][:n]


def _write_labels(samples, root: Path, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "category", "colour"])
        for s in samples:
            w.writerow([s.path.relative_to(root).as_posix(), s.category or "", s.colour or ""])
    return path


COLOUR_LABELS = PROJECT_ROOT / "docs" / "labels" / "clothing-small-validation-colours.csv"
WORN_NAMED = PROJECT_ROOT / "docs" / "labels" / "ccp-worn-heldout-colours.csv"  # worn garments named by eye


def _with_colours(samples, root: Path) -> list:
    """The samples with the hand-made colour labels of `COLOUR_LABELS` (file names only; the photos
    stay in the shared data) where it has one: the real photos come without colour labels."""
    from .datasets import read_labels_csv
    if not COLOUR_LABELS.is_file():
        return samples
    colours = {s.path: s.colour for s in read_labels_csv(COLOUR_LABELS, root)}
    return [replace(s, colour=colours.get(s.path, s.colour)) for s in samples]


def real_data(limit: int | None, work: Path) -> Data | None:
    from .datasets import read_imagefolder
    root = shared_root()
    val = root / "clothing-small" / "validation"
    ccp = root / "ccp-train" / "annotations_coco.json"
    if not val.is_dir():
        return None
    samples = _with_colours(read_imagefolder(val), val)
    data = Data("real", val, _spread(samples, limit))
    data.labels_csv = _write_labels(data.samples, val, work / f"validation-{limit or 'all'}.csv")
    if ccp.is_file():
        from detector.data import split_ids, subset_coco
        ids = [im["id"] for im in json.loads(ccp.read_text())["images"]]
        _, val_ids = split_ids(ids)
        data.coco = subset_coco(ccp, val_ids, work / "ccp_val_coco.json")
        data.coco_images, data.worn = ccp.parent, True
    data.note = (f"Real validation data from `{root}`: `clothing-small/validation` ({len(samples)} photos"
                 + (f", {len(data.samples)} used with --limit" if len(data.samples) < len(samples) else "") + ")"
                 + (", and the detector's held-out split of `ccp-train` (`detector/data.py`: 70 photos by id, seed 0),"
                    " whose garments `sketchshop dataset worn --coco ... --held-out` cuts out into the work folder"
                    if data.coco else ", no `ccp-train` (detector evaluated on studio scenes)") + ".")
    return data


def studio_data(limit: int | None, work: Path) -> Data:
    from .datasets import read_labels_csv
    from .studio import synth
    n = min(limit or 40, 40)
    out = work / f"studio-n{n}-seed4243"
    if not (out / "labels.csv").is_file():
        synth(n, out, seed=4243, scenes=max(2, n // 4), workers=1, overwrite=True)
    samples = read_labels_csv(out / "labels.csv", out)
    return Data("studio", out, samples, out / "labels.csv", out / "scenes_coco.json", out,
                note=f"**No real data at `{shared_root()}`**: these numbers are on {n} studio products and "
                     f"{max(2, n // 4)} studio scenes rendered with `sketchshop synth --n {n} --seed 4243` "
                     "(synthetic, much easier than real photos; do not quote them as model quality).")


def sbir_inputs(data: Data, work: Path) -> tuple[Path, Path]:
    """(sketches dir, gallery dir) with matching file stems."""
    if data.source == "studio":
        return data.photos / "sketches", data.photos / "images"
    import random

    import numpy as np
    from PIL import Image

    from classifier.data import photo_to_sketch
    from .images import load_image
    d = work / f"sbir-{len(data.samples)}"
    sk, gal = d / "sketches", d / "gallery"
    sk.mkdir(parents=True, exist_ok=True)
    gal.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm
    for s in tqdm(data.samples, desc="XDoG drawings", unit="img", mininterval=5):
        g = gal / s.path.name
        if not g.exists():
            os.symlink(s.path.resolve(), g)  # never a copy of the real photo
        p = sk / f"{s.path.stem}.png"
        if not p.is_file():
            rgb = np.asarray(load_image(s.path).convert("RGB"))
            Image.fromarray(photo_to_sketch(rgb, random.Random(s.path.stem))).save(p)
    return sk, gal


def worn_inputs(data: Data, work: Path, limit: int | None) -> tuple[Path, Path, Path]:
    """(crops dir, labels CSV, the by-eye colour labels' CSV) of `sketchshop dataset worn --coco ... --held-out`:
    the garments of the detector's held-out street photos (`limit` of them, spread over the set)."""
    from classifier.street import worn_dataset

    from .datasets import read_labels_csv
    d = work / "worn"
    worn_dataset(d, data.coco, root=data.coco_images)  # data.coco holds the held-out photos only
    if not limit:
        return d, d / "labels.csv", WORN_NAMED
    return d, *(_write_labels(_spread(read_labels_csv(csv, d), limit), d, work / f"{name}-{limit}.csv")
                for csv, name in ((d / "labels.csv", "worn"), (WORN_NAMED, "worn-named")))


# ---------------------------------------------------------------- running the eval commands
def _fill(argv: list[str], **paths) -> list[str]:
    """A planned command's "{name}" arguments replaced by the inputs made for it."""
    return [str(paths[a[1:-1]]) if a[:1] == "{" and a[1:-1] in paths else a for a in argv]


def run_command(run: Run) -> Run:
    """Parse `run.argv` with the real CLI and run that command's function here; read its JSON back."""
    from .cli import build
    args = build().parser.parse_args(run.argv)
    t = time.perf_counter()
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            args.func(args)
        run.result = json.loads(run.json.read_text())
    except UserError as e:
        run.error = str(e)
        log.warning("%s: %s", run.command, e)
    run.seconds = round(time.perf_counter() - t, 1)
    if buf.getvalue().strip():
        log.info("%s -> %s", run.section, buf.getvalue().strip()[:400])
    return run


def plan(sections, data: Data, out: Path, work: Path, limit: int | None, pictures: bool = True) -> list[Run]:
    j = out / "json"
    runs: list[Run] = []
    if "classifier" in sections:
        runs.append(Run("classifier", ["eval", "classifier", "--images", str(data.photos), "--labels", str(data.labels_csv),
                                       "--json", str(j / "eval-classifier.json")],
                        j / "eval-classifier.json"))
    if "classifier" in sections and data.worn:
        runs.append(Run("classifier-worn", ["eval", "classifier", "--images", "{worn}", "--labels", "{worn_labels}",
                                            "--detect", "--json", str(j / "eval-classifier-worn.json")],
                        j / "eval-classifier-worn.json"))
        if WORN_NAMED.is_file():
            runs.append(Run("classifier-worn-named", ["eval", "classifier", "--images", "{worn}", "--labels",
                                                      "{worn_named}", "--detect", "--json",
                                                      str(j / "eval-classifier-worn-named.json")],
                            j / "eval-classifier-worn-named.json"))
    if "sbir" in sections:
        runs.append(Run("sbir", ["eval", "sbir", "--sketches", "{sketches}", "--gallery", "{gallery}",
                                 "--json", str(j / "eval-sbir.json")], j / "eval-sbir.json"))
    lim = ["--limit", str(limit)] if limit else []
    if "detector" in sections and data.coco:
        runs.append(Run("detector", ["eval", "detector", "--coco", str(data.coco), "--images", str(data.coco_images),
                                     *lim, "--json", str(j / "eval-detector.json"), "--plot", str(out / "detector-ap50.png")],
                        j / "eval-detector.json"))
    if "detector" in sections and data.source == "real":
        runs.append(Run("detector-products", ["eval", "detector", "--products", str(data.photos), *lim,
                                              "--json", str(j / "eval-detector-products.json")],
                        j / "eval-detector-products.json"))
    if "colorizer" in sections:
        images = data.photos if data.source == "real" else data.photos / "images"
        sheet = ["--sheet", str(out / "colorizer-sheet.png")] if pictures else []
        runs.append(Run("colorizer", ["eval", "colorizer", "--images", str(images), *lim,
                                      "--json", str(j / "eval-colorizer.json"), *sheet],
                        j / "eval-colorizer.json"))
    if "search" in sections:
        runs.append(Run("search", ["eval", "search", "--queries", str(data.photos), "--labels", str(data.labels_csv),
                                   "--kind", "photo", "--json", str(j / "eval-search.json")], j / "eval-search.json"))
    return runs


def index_available() -> bool:
    return (settings().data_dir / "index" / "CURRENT").is_file()


# ---------------------------------------------------------------- pictures
def confusion_png(res: dict, path: Path) -> Path | None:
    if not res.get("confusion"):
        return None
    import numpy as np

    from classifier.report import plot_confusion
    plot_confusion(np.asarray(res["confusion"]), res["confusion_labels"], path,
                   f"classifier confusion ({res['n_category']} photos)")
    return path


def search_sheet(samples, path: Path, n_queries: int = 4, top_k: int = 5) -> Path:
    """Rows: a query photo, then its top-k products from the current index (category under each)."""
    from PIL import Image, ImageDraw

    from catalog import open_catalog
    from catalog.search import Searcher
    from catalog.search_cli import prominent

    from .files import atomic_write
    from .images import load_image
    searcher, cat = Searcher.load(with_colorizer=False), open_catalog()
    tile, head = 160, 16
    rows = []
    for s in _spread(samples, n_queries):
        q = load_image(s.path)
        out = searcher.search(q, kind="photo", top_k=top_k)
        d = prominent([d for d, _ in out["items"]], vocab.coarse(s.category) if s.category else None)
        hits = dict((id(a), h) for a, h in out["items"]).get(id(d), []) if d is not None else []
        cells = [(q, f"query: {s.category or '?'}")]
        for h in hits[:top_k]:
            it = searcher.index.items_by_id(h.product_id)
            p = cat.image_path(it.display.get("image", "")) if it.display.get("image") else None
            im = load_image(p) if p and Path(p).is_file() else Image.new("RGB", (tile, tile), "#ddd")
            cells.append((im, f"{it.category} {it.colour or ''}".strip()))
        rows.append(cells)
    sheet = Image.new("RGB", ((top_k + 1) * tile, max(1, len(rows)) * (tile + head)), "white")
    dr = ImageDraw.Draw(sheet)
    for r, cells in enumerate(rows):
        for c, (im, cap) in enumerate(cells):
            im = im.convert("RGB")
            im.thumbnail((tile - 4, tile - 4))
            x, y = c * tile, r * (tile + head)
            sheet.paste(im, (x + (tile - im.width) // 2, y + head))
            dr.text((x + 3, y + 2), cap[:26], fill=(0, 0, 0) if c else (180, 0, 0))
    with atomic_write(path, "wb") as f:
        sheet.save(f, format="PNG")
    return path


# ---------------------------------------------------------------- markdown
def _fmt(v, ms: bool = False) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 and not ms else f"{v:.1f}"
    return str(v)


def headline_rows(runs: list[Run]) -> list[dict]:
    by = {r.section: r for r in runs}
    rows = []
    for section, key, label, target, how in HEADLINES:
        r = by.get(section)
        if r is None or r.result is None or r.result.get(key) is None:
            continue  # section not run, or no label for it (e.g. no colour labels on real photos)
        v = r.result[key]
        status = "—"
        if target is not None and v is not None:
            status = "PASS" if (v >= target if how == "ge" else v <= target) else "MISS"
        rows.append({"section": section, "metric": key, "label": label, "value": v, "target": target,
                     "direction": how, "status": status, "command": r.command,
                     "n": r.result.get("n_colour" if key.startswith("colour") else "n",
                                       r.result.get("n", r.result.get("n_images")))})
    return rows


def markdown(runs: list[Run], rows: list[dict], data: Data, out: Path, extras: dict) -> str:
    L = ["# sketchshop evaluation report", "",
         f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by `{extras['argv']}` "
         f"({os.cpu_count()} CPUs; wall times were measured on this machine as it was loaded then).", "",
         "## Data", "", data.note, ""]
    L += ["## Headline metrics", "",
          "Each number is what the quoted command prints (the report runs that command in-process);"
          " JSON in `json/`.", "",
          "| metric | value | n | target | status | command |", "|---|---|---|---|---|---|"]
    for r in rows:
        tgt = "—" if r["target"] is None else ("≥ " if r["direction"] == "ge" else "≤ ") + _fmt(r["target"])
        L.append(f"| {r['label']} | **{_fmt(r['value'], ms='ms' in r['metric'])}** | {r['n']} | {tgt} | {r['status']} "
                 f"| `{r['command']}` |")
    failed = [r for r in runs if r.error]
    if failed:
        L += ["", "Not measured:", ""] + [f"- {r.section}: {r.error} (`{r.command}`)" for r in failed]
    by = {r.section: r for r in runs if r.result is not None}

    if "classifier" in by:
        res = by["classifier"].result
        L += ["", "## Classifier", "", f"`{by['classifier'].command}`", "",
              "| class | n | correct | top-1 |", "|---|---|---|---|"]
        for c, d in res["per_class"].items():
            L.append(f"| {c} | {d['n']} | {d['correct']} | {_fmt(d['top1'])} |")
        if extras.get("confusion"):
            L += ["", "![confusion matrix](confusion.png)"]
        if res.get("skipped"):
            L += ["", f"{len(res['skipped'])} unreadable images skipped (listed in the JSON)."]
    for section in ("classifier", "classifier-worn", "classifier-worn-named"):
        if by.get(section) and by[section].result.get("colour_confusion"):
            L += ["", f"Colour, `{by[section].command}`:", "", "| colour | n | top-1 | called instead |", "|---|---|---|---|"]
            for c, row in by[section].result["colour_confusion"].items():
                n, wrong = sum(row.values()), sorted(((k, v) for k, v in row.items() if k != c), key=lambda kv: -kv[1])
                L.append(f"| {c} | {n} | {_fmt(row.get(c, 0) / n)} | {', '.join(f'{k} {v}' for k, v in wrong[:3])} |")
    if "sbir" in by:
        res = by["sbir"].result
        L += ["", "## Sketch-based retrieval", "", f"`{by['sbir'].command}`", "",
              ("Sketches: XDoG drawings (`classifier.data.photo_to_sketch`) of the validation photos; gallery: "
               "the photos themselves" if data.source == "real" else "Sketches and photos of the studio products")
              + (", each embedded as the search index embeds a product (the detector's most prominent garment, "
                 "cropped with context)." if res.get("gallery") == "detected" else "."),
              "", "| n | gallery | acc@1 | acc@5 | acc@10 |", "|---|---|---|---|---|",
              f"| {res['n']} | {res['gallery_size']} | {_fmt(res['acc@1'])} | {_fmt(res['acc@5'])} | {_fmt(res['acc@10'])} |"]
    if "detector" in by or "detector-products" in by:
        L += ["", "## Detector"]
        if "detector" in by:
            res = by["detector"].result
            L += ["", f"`{by['detector'].command}`", "",
                  f"mAP50 {_fmt(res['map50'])}, mAP50-95 {_fmt(res['map50_95'])} on {res['n_images']} images "
                  f"at {res['imgsz']} px, {_fmt(res['ms_per_image'], ms=True)} ms per image.", "",
                  "| class | AP50 |", "|---|---|"]
            L += [f"| {c} | {_fmt(v)} |" for c, v in res["per_class_ap50"].items()]
            if (out / "detector-ap50.png").is_file():
                L += ["", "![per-class AP50](detector-ap50.png)"]
        if "detector-products" in by:
            res = by["detector-products"].result
            L += ["", f"`{by['detector-products'].command}`", "",
                  f"Single-product photos: top box IoU >= 0.8 with the GrabCut foreground box in "
                  f"{_fmt(res['top_box_iou_ge_0.8'])} of {res['n_images']} photos (no detection in {res['no_detection']}).",
                  "", "| folder | share with IoU >= 0.8 |", "|---|---|"]
            L += [f"| {c} | {_fmt(v)} |" for c, v in res["per_folder_iou_ge"].items()]
    if "colorizer" in by:
        res = by["colorizer"].result
        L += ["", "## Colouriser", "", f"`{by['colorizer'].command}`", "",
              "| n | SSIM | PSNR dB | dominant colour dE2000 | ms/image |", "|---|---|---|---|---|",
              f"| {res['n']} | {_fmt(res['ssim'])} | {_fmt(res['psnr'])} | {_fmt(res['colour_delta_e'])} | {_fmt(res['ms_per_image'], ms=True)} |"]
        if (out / "colorizer-sheet.png").is_file():
            L += ["", "Columns: sketch, hints, output, target.", "", "![colouriser samples](colorizer-sheet.png)"]
    L += ["", "## Search"]
    if "search" in by:
        res = by["search"].result
        L += ["", f"`{by['search'].command}`", "", "| n | category P@10 | colour P@10 | p50 ms | p95 ms |",
              "|---|---|---|---|---|",
              f"| {res['n']} | {_fmt(res.get('category_precision@10'))} | {_fmt(res.get('colour_precision@10'))} "
              f"| {_fmt(res['ms_p50'])} | {_fmt(res['ms_p95'])} |"]
    if extras.get("search_sheet"):
        L += ["", "Sample photo queries (left, with their label) and their top-5 products from the current index:",
              "", "![search contact sheet](search-sheet.png)"]
    elif extras.get("search_skipped"):
        L += ["", extras["search_skipped"]]
    L += ["", "## Benchmark", ""]
    if extras.get("bench_md"):
        L += [extras["bench_source"], "", extras["bench_md"].rstrip()]
    else:
        L += [extras.get("bench_skipped", "Skipped.")]
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------- the command
def _check_out(out: Path) -> None:
    try:
        (out / "json").mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"{out}: cannot write the report there ({e.strerror or e})") from None


def _read_bench(path: Path) -> dict:
    """An earlier `sketchshop bench --json` result, checked before any eval runs."""
    from .bench import markdown as bench_md
    if not path.is_file():
        raise UserError(f"--bench-json {path}: no such file")
    try:
        res = json.loads(path.read_text())
        bench_md(res)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"--bench-json {path}: not a `sketchshop bench` JSON ({e})") from None
    return res


def _own_command(args) -> str:
    a = ["report", "--out", str(args.out)]
    a += ["--limit", str(args.limit)] if args.limit else []
    a += ["--only", args.only] if args.only else []
    a += ["--no-bench"] if args.no_bench else (["--bench-json", str(args.bench_json)] if args.bench_json else [])
    return "sketchshop " + " ".join(shlex.quote(x) for x in a)


def parse_only(only: str | None) -> list[str]:
    if not only:
        return list(SECTIONS)
    names = [s.strip() for s in only.split(",") if s.strip()]
    bad = [s for s in names if s not in SECTIONS]
    if bad or not names:
        raise UserError(f"--only: unknown section {', '.join(bad) or repr(only)} (choose from {', '.join(SECTIONS)})")
    return [s for s in SECTIONS if s in names]


def report(args) -> int:
    from tqdm import tqdm

    from .files import atomic_write
    sections = parse_only(args.only)
    bench_json = Path(args.bench_json) if args.bench_json else None
    bench_res = _read_bench(bench_json) if bench_json else None
    out = Path(args.out)
    _check_out(out)
    work = settings().path("report")
    work.mkdir(parents=True, exist_ok=True)

    data = real_data(args.limit, work)
    if data is None:
        log.info("no real data at %s: rendering a studio set", shared_root())
        data = studio_data(args.limit, work)
    if data.coco is None:  # real photos but no ccp-train: detector on studio scenes
        st = studio_data(args.limit, work)
        data.coco, data.coco_images = st.coco, st.coco_images
    pictures = not (args.no_data_pictures and data.source == "real")
    runs = plan(sections, data, out, work, args.limit, pictures)
    extras: dict = {"argv": _own_command(args)}
    have_index = index_available()
    cut = None  # the worn garments' crops and labels, cut out once
    for run in tqdm(runs, desc="report", unit="eval"):
        if run.section == "search" and not have_index:
            extras["search_skipped"] = (f"No search index at `{settings().data_dir / 'index'}`, so search was not "
                                        "evaluated and there is no contact sheet: run `sketchshop demo --no-serve` "
                                        "(or crawl a shop and `sketchshop index build`), then rerun the report.")
            run.error = "no search index"
            continue
        if run.section == "sbir":
            sk, gal = sbir_inputs(data, work)
            run.argv = _fill(run.argv, sketches=sk, gallery=gal)
        if run.section.startswith("classifier-worn"):
            cut = cut or worn_inputs(data, work, args.limit)
            run.argv = _fill(run.argv, worn=cut[0], worn_labels=cut[1], worn_named=cut[2])
        log.info("running: %s", run.command)
        run_command(run)
    runs = [r for r in runs if not (r.section == "search" and not have_index)]
    by = {r.section: r for r in runs if r.result is not None}
    if "classifier" in by:
        extras["confusion"] = confusion_png(by["classifier"].result, out / "confusion.png")
    if "search" in by and not pictures:
        extras["search_skipped"] = ("No contact sheet: `--no-data-pictures` leaves out pictures made from the "
                                    "evaluation photos (their licence or our data policy may not allow publishing them).")
    elif "search" in by:
        try:
            extras["search_sheet"] = search_sheet(data.samples, out / "search-sheet.png")
        except UserError as e:
            extras["search_skipped"] = f"No contact sheet: {e}"

    if args.no_bench:
        extras["bench_skipped"] = "Skipped (`--no-bench`); `sketchshop bench --quick --json bench.json` measures it."
    elif bench_json:
        from .bench import markdown as bench_md
        res = bench_res
        extras["bench_md"] = bench_md(res)
        extras["bench_source"] = (f"From `{bench_json}` (written by `sketchshop bench`"
                                  f"{' --quick' if res.get('quick') else ''} on {res.get('started', '?')}).")
        with atomic_write(out / "json" / "bench.json") as f:
            json.dump(res, f, indent=1)
    else:
        b = Run("bench", ["bench", "--quick", "--json", str(out / "json" / "bench.json")], out / "json" / "bench.json")
        log.info("running: %s", b.command)
        run_command(b)
        if b.result is not None:
            from .bench import markdown as bench_md
            extras["bench_md"] = bench_md(b.result)
            extras["bench_source"] = f"`{b.command}` ({b.seconds} s):"
        else:
            extras["bench_skipped"] = f"The benchmark failed: {b.error}"

    rows = headline_rows(runs)
    summary = {"data": {"source": data.source, "photos": str(data.photos), "note": data.note},
               "limit": args.limit, "sections": sections, "headlines": rows,
               "runs": [{"section": r.section, "command": r.command, "argv": r.argv, "json": str(r.json),
                         "seconds": r.seconds, "error": r.error} for r in runs]}
    with atomic_write(out / "json" / "report.json") as f:
        json.dump(summary, f, indent=1)
    md = markdown(runs, rows, data, out, extras)
    with atomic_write(out / "report.md") as f:
        f.write(md)
    print(f"{out / 'report.md'}: {len(rows)} headline metrics "
          f"({sum(r['status'] == 'PASS' for r in rows)} PASS, {sum(r['status'] == 'MISS' for r in rows)} MISS), "
          f"{data.source} data")
    return 0


def register(cli) -> None:
    p = cli.command(
        "report", report, help="run every `sketchshop eval` on the validation data and write a markdown report",
        description="Runs `sketchshop eval classifier|sbir|detector|colorizer|search` (the same command functions, "
                    "in this process) on the real validation data in ../shared/data (or SKETCHSHOP_SHARED_DATA) - "
                    "clothing-small/validation, and the detector's held-out split of ccp-train - or, when that is "
                    "absent, on a small studio set. Writes DIR/report.md (headline metrics with targets and "
                    "PASS/MISS, the command behind each number, per-class tables, confusion matrix, contact "
                    "sheets, benchmark table) and DIR/json/eval-*.json.")
    p.add_argument("--out", required=True, metavar="DIR", help="report folder (created)")
    p.add_argument("--limit", type=count(1), default=None, metavar="N", help="at most N images per eval (quick runs)")
    p.add_argument("--only", default=None, metavar="LIST",
                   help="comma-separated sections to run, from: " + ",".join(SECTIONS) + " (default: all)")
    p.add_argument("--no-data-pictures", action="store_true",
                   help="leave out the colouriser and search contact sheets when they would show the real "
                        "evaluation photos (for a report that is committed or published)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--no-bench", action="store_true", help="leave out the benchmark")
    g.add_argument("--bench-json", default=None, metavar="FILE",
                   help="embed this `sketchshop bench --json` output instead of running `bench --quick`")
