"""`sketchshop crawl bench`: crawl speed against a local demo shop, checked against its ground truth.

The shop runs in its own process (so it does not share the crawler's interpreter lock); each
browser count crawls into a fresh catalogue. Reported per run: seconds, products per minute
(browser start-up included), images stored, and whether every product has complete and correct
labels (category, colour, attributes, price) compared with the shop's ground truth.
"""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from sketchshop.errors import UserError
from sketchshop.net import free_port

log = logging.getLogger(__name__)
SPECS = Path(__file__).resolve().parent / "specs"


def _check(cat, shop: str, truth: list[dict]) -> tuple[bool, bool]:
    """(labels complete, labels correct) for every ground-truth product."""
    got = {p["external_id"]: p for p in cat.iter_products(shop=shop)}
    complete = correct = len(got) == len(truth)
    for t in truth:
        p = got.get(t["id"])
        if p is None:
            return False, False
        complete &= bool(p["category"] and p["colour"] and p["images"] and p["price"] is not None
                         and len(p["attributes"]) == len(t["attributes"]))
        correct &= (p["category"], p["colour"], p["attributes"]) == (t["category"], t["colour"], t["attributes"]) \
            and abs(p["price"] - t["price"]) < 1e-6 and len(p["images"]) == t["images"]
    return complete, correct


def bench_crawl(products: int = 1000, browsers=(1, 2), seed: int = 11, layout: str = "a",
                json_path: str | None = None) -> dict:
    from catalog import open_catalog

    from .crawl import crawl
    from .spec import load_spec
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    shop = subprocess.Popen([sys.executable, "-m", "sketchshop", "shop", "serve", "--port", str(port),
                             "--products", str(products), "--seed", str(seed), "--layout", layout],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        truth = None
        while truth is None:
            if shop.poll() is not None:
                raise UserError(f"the demo shop exited: {shop.stderr.read()[-500:]}")
            try:
                truth = requests.get(f"{url}/_ground_truth.json", timeout=900).json()
            except requests.RequestException:
                time.sleep(0.5)
        log.info("shop with %d products ready in %.0f s", len(truth), time.monotonic() - t0)
        spec = load_spec(SPECS / f"demo-{layout}.yaml", base_url=url)
        runs = []
        for k in browsers:
            with tempfile.TemporaryDirectory(prefix="sketchshop-bench-") as d:
                cat = open_catalog(f"sqlite:///{d}/catalog.db", images_dir=Path(d) / "images")
                res = crawl(spec, browsers=k, catalog=cat, fresh=True)
                complete, correct = _check(cat, spec.name, truth)
                st = cat.stats()
                cat.close()
            runs.append({"browsers": k, "products": res["products"], "pages": res["pages"],
                         "seconds": round(res["seconds"], 2), "listing_seconds": round(res["listing_seconds"], 2),
                         "products_per_minute": round(res["products_per_minute"], 1),
                         "images": st["images"], "failed": res["failed"], "labels_complete": complete,
                         "labels_correct": correct})
            log.info("%d browser(s): %s", k, runs[-1])
    finally:
        shop.terminate()
        shop.wait(10)
    out = {"shop_products": products, "layout": layout, "seed": seed, "runs": runs}
    for r in runs:   # flat keys for `sketchshop bench`'s report table
        out[f"{r['browsers']}_browsers"] = {"products_per_min": r["products_per_minute"], "seconds": r["seconds"],
                                            "products": r["products"], "labels_correct": r["labels_correct"]}
    if json_path:
        from sketchshop.files import atomic_write
        with atomic_write(json_path) as f:
            json.dump(out, f, indent=2)
    return out
