"""`sketchshop index build` and `sketchshop eval search`.

The index builder runs `Searcher.describe_photo` (the query-time code path) on each product's
main image, keeps the garment whose coarse category matches the shop's label, and caches the
result per image sha256 and model so a rebuild after a crawl only describes new images.
"""
from __future__ import annotations

import json
import logging
import pickle
import time
from pathlib import Path

import numpy as np

from sketchshop import vocab
from sketchshop.cli import count
from sketchshop.config import settings
from sketchshop.datasets import Skipped
from sketchshop.errors import UserError

log = logging.getLogger(__name__)


def prominent(items, coarse_label: str | None = None):
    """The item whose coarse category equals the label, else the largest (the most prominent)."""
    def area(d):
        b = d.box
        return (b[2] - b[0]) * (b[3] - b[1]) if b else 0.0
    if coarse_label:
        same = [d for d in items if vocab.FINE_TO_COARSE.get(d.prediction["category"]) == coarse_label
                or d.detector_category == coarse_label]
        if same:
            return max(same, key=area)
    return max(items, key=area) if items else None


def _cache_path(root: Path, model_sha: str) -> Path:
    return root / f"describe-cache-{model_sha}.pkl"  # the models: any of them changing invalidates it


def models_key() -> str:
    """What the index's descriptions depend on: the describe code's version, both models' weights and the
    classifier's colour model (`classifier/colour_model.py`), when it has one."""
    from classifier.colour_model import FILE
    from sketchshop.registry import sha256, weights_path

    from .search import DESCRIBE_VERSION
    clf = weights_path("classifier")
    colours = clf.with_name(FILE)
    return (f"v{DESCRIBE_VERSION}-" + sha256(clf)[:16] + sha256(weights_path("detector"))[:16]
            + (f"-c{sha256(colours)[:8]}" if colours.is_file() else ""))


def stale_index(index, now: str | None = None) -> str | None:
    """Why `index` does not fit the models this process runs (`now`: their `models_key`), or None: other weights
    described its products, and queries compared with them give results that look plausible and are not."""
    built, now = (index.info or {}).get("model"), now or models_key()
    if built and built != now:
        return (f"the search index (build {index.build_id}) was built with other models ({built[:20]}...) than the "
                f"ones loaded ({now[:20]}...): run `sketchshop index build` with these weights")
    return None


def build_index(catalog=None, searcher=None, root=None, *, progress: bool = True) -> dict:
    from tqdm import tqdm

    from catalog import open_catalog
    from sketchshop.images import WORK_SIDE, load_image

    from .index import Item, SearchIndex
    from .search import Searcher

    catalog = catalog or open_catalog()
    searcher = searcher or Searcher.load(with_index=False, with_colorizer=False)
    root = Path(root or settings().data_dir / "index")
    root.mkdir(parents=True, exist_ok=True)
    model_sha = models_key()
    cache_file = _cache_path(root, model_sha)
    try:
        cache = pickle.loads(cache_file.read_bytes()) if cache_file.is_file() else {}
        if not isinstance(cache, dict):
            raise ValueError(f"a {type(cache).__name__}, not a dict")
    except Exception as e:  # noqa: BLE001 (a torn or foreign cache file: it only saves time)
        log.warning("%s: unreadable describe cache (%s); describing every product again", cache_file, e)
        cache = {}
    items, vectors, skipped, described = [], [], 0, 0
    t0 = time.perf_counter()
    products = list(catalog.iter_products())
    for p in tqdm(products, desc="indexing", unit="product", disable=not progress):
        if not p["images"]:
            skipped += 1
            continue
        img = p["images"][0]
        sha = img["duplicate_of"] or img["sha256"]
        if sha not in cache:
            path = catalog.image_path(img["sha256"])
            try:
                image = load_image(path, max_side=WORK_SIDE)  # as the API reads a query
            except UserError as e:
                log.warning("product %s: %s", p["id"], e)
                skipped += 1
                continue
            d = prominent(searcher.describe_photo(image), vocab.FINE_TO_COARSE.get(p["category"] or "", None))
            if d is None:
                skipped += 1
                continue
            pred = {k: v for k, v in d.prediction.items()}
            cache[sha] = pred
            described += 1
        pred = cache[sha]
        attrs = dict(p.get("attributes") or {})
        cat = p["category"] or pred["category"]
        for a, v in pred.get("attributes", {}).items():
            if a in vocab.attributes_for(cat):
                attrs.setdefault(a, v["value"])
        items.append(Item(p["id"], cat, p["colour"] or pred.get("colour"), attrs, p["price"], p["currency"],
                          p["shop"], sha, {"title": p["title"], "brand": p["brand"], "url": p["url"],
                                           "image": img["sha256"]}))
        vectors.append(np.asarray(pred["embedding"], np.float32))
    if not items:
        raise UserError("the catalogue has no product with a usable image: crawl a shop first")
    tmp = cache_file.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(cache))
    tmp.replace(cache_file)
    for old in root.glob("describe-cache-*.pkl"):  # descriptions by other models are never read again
        if old != cache_file:
            old.unlink(missing_ok=True)
    build = SearchIndex.build(root, items, np.stack(vectors), info={"model": model_sha})
    return {"build": build, "products": len(items), "described": described, "cached": len(items) - described,
            "skipped": skipped, "seconds": round(time.perf_counter() - t0, 1)}


def cmd_index_build(args) -> int:
    out = build_index(progress=not args.quiet)
    print(json.dumps(out))
    return 0


def evaluate_search(queries: Path, labels: Path, kind: str | None = None, top_k: int = 10, searcher=None) -> dict:
    from tqdm import tqdm

    from sketchshop.datasets import read_labels_csv
    from sketchshop.images import WORK_SIDE, load_image

    from .search import Searcher

    samples = read_labels_csv(labels, queries)
    searcher = searcher or Searcher.load()
    models = models_key()
    if stale := stale_index(searcher.index, models):
        raise UserError(stale)
    cat_p, col_p, times, skipped = [], [], [], Skipped()
    for s in tqdm(samples, desc="queries", unit="query"):
        try:
            image = load_image(s.path, max_side=WORK_SIDE)
            h = s.extra.get("hints") if kind != "photo" else None  # a sketch's colour hints (RGBA layer)
            hints = load_image(queries / h, mode="RGBA") if h else None
            out = searcher.search(image, kind=kind, hints=hints, top_k=top_k)  # an empty sketch is refused here
        except UserError as e:
            skipped.add(s.path, e)
            continue
        times.append(out["timing_ms"]["total"])
        label_coarse = vocab.coarse(s.category) if s.category else None
        desc = {id(d): hits for d, hits in out["items"]}
        d = prominent([d for d, _ in out["items"]], label_coarse)
        hits = desc[id(d)] if d is not None else []
        idx = searcher.index
        if label_coarse:
            cat_p.append(sum(vocab.FINE_TO_COARSE.get(idx.items_by_id(h.product_id).category) == label_coarse
                             for h in hits) / top_k)
        if s.colour:
            col_p.append(sum(idx.items_by_id(h.product_id).colour == s.colour for h in hits) / top_k)
    skipped.check(len(times), len(samples), "queries")
    return {"n": len(times),
            f"category_precision@{top_k}": round(float(np.mean(cat_p)), 4) if cat_p else None,
            f"colour_precision@{top_k}": round(float(np.mean(col_p)), 4) if col_p else None, "n_colour": len(col_p),
            "ms_p50": round(float(np.percentile(times, 50)), 2) if times else None,
            "ms_p95": round(float(np.percentile(times, 95)), 2) if times else None, "skipped": skipped,
            "index_build": searcher.index.build_id, "models": models}


def cmd_eval_search(args) -> int:
    from sketchshop.files import atomic_write
    res = evaluate_search(Path(args.queries), Path(args.labels), args.kind, args.top_k)
    with atomic_write(args.json) as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res))
    return 0


def register(cli) -> None:
    p = cli.command("build", cmd_index_build, group="index",
                    help="describe every catalogue product with the models and build the search index "
                         "(incremental: images already described are reused)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = cli.command("search", cmd_eval_search, group="eval",
                    help="run the full search for labelled queries; writes category/colour precision@10 and latency")
    p.add_argument("--queries", required=True, help="folder of query images")
    p.add_argument("--labels", required=True,
                   help="CSV with file (relative to --queries), category, [colour], [hints: a sketch's RGBA hint layer]")
    p.add_argument("--kind", choices=["photo", "sketch"], help="query kind (detected when absent)")
    p.add_argument("--top-k", type=count(1), default=10)
    p.add_argument("--json", required=True, help="where to write the metrics")
