"""`sketchshop demo`: the whole product on its embedded default, from a fresh clone.

Generates a demo shop from the garment studio, crawls it with the real crawler into the
catalogue, builds the search index with the shipped models, and serves the API and the web
client, with the demo shop beside them so that the results' shop links open. Each step is
skipped when its result is already there, so a second run starts in seconds.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request

from . import vocab
from .cli import PORT, count
from .config import PROJECT_ROOT, settings
from .errors import UserError
from .net import free_port, port_is_free

log = logging.getLogger(__name__)
DEMO_SPEC = PROJECT_ROOT / "crawler" / "specs" / "demo-a.yaml"
# Ten of every fine category in every colour: a query's top 10 can then all share its category
# and colour, so the search's colour precision@10 measures the models, not a thin catalogue.
DEMO_PRODUCTS = 10 * len(vocab.FINE_CATEGORIES) * len(vocab.COLOURS)
DEMO_SHOP = "demo-shop"  # the spec's shop name


def _argv(*args: str) -> list[str]:
    """A `sketchshop` command in this interpreter, logged as the user would type it."""
    log.info("$ sketchshop %s", " ".join(args))
    return [sys.executable, "-m", "sketchshop", *args]


def _sketchshop(*args: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess:
    pipe = subprocess.PIPE if capture else None
    with subprocess.Popen(_argv(*args), text=True, stdout=pipe, stderr=pipe) as p:
        try:
            out, err = p.communicate()
        except KeyboardInterrupt:  # the step stops as Ctrl-C stops it (a crawl closes its run), not killed
            if not _terminal_signalled_all():
                p.send_signal(signal.SIGINT)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
            raise
    r = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    if check and r.returncode:
        raise UserError(f"`sketchshop {' '.join(args)}` failed with exit code {r.returncode}")
    return r


def _terminal_signalled_all() -> bool:
    """Whether a Ctrl-C came from our terminal, which signals its whole foreground group (our children too);
    a `kill -INT` reaches this process alone."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False


def _wait(url: str, timeout: float = 120) -> None:
    t = time.time()
    while time.time() - t < timeout:
        try:
            urllib.request.urlopen(url, timeout=max(2.0, timeout - (time.time() - t)))
            return
        except OSError:
            time.sleep(0.3)
    raise UserError(f"{url} did not answer within {timeout:.0f} s")


def catalogue_products() -> int:
    r = _sketchshop("catalog", "stats", "--json", capture=True, check=False)
    try:
        return int(json.loads(r.stdout)["products"])
    except (ValueError, KeyError, TypeError):
        return 0


def start_demo_shop(n: int, seed: int, port: int, host: str = "127.0.0.1") -> subprocess.Popen:
    if not port_is_free(port):
        raise UserError(f"port {port} is taken: the demo shop needs it (choose another with --shop-port)")
    return subprocess.Popen(_argv("shop", "serve", "--host", host, "--port", str(port), "--products", str(n),
                                  "--seed", str(seed)))


def demo_shop_port() -> int | None:
    """The port of the demo shop the catalogue was crawled from (its products' links point there)."""
    from urllib.parse import urlsplit

    from catalog import open_catalog
    cat = open_catalog()
    try:
        shops = [s for s in cat.shops() if s["name"] == DEMO_SHOP]
    finally:
        cat.close()
    return urlsplit(shops[0]["base_url"]).port if shops and shops[0]["base_url"] else None


def crawl_demo_shop(n: int, seed: int, port: int) -> None:
    try:
        shop = start_demo_shop(n, seed, port)
    except UserError:  # the port is taken
        free = free_port()
        log.warning("port %d is taken: the demo shop is crawled at port %d, where its links will point", port, free)
        port, shop = free, start_demo_shop(n, seed, free)
    try:
        # The shop answers robots.txt at once but renders its products first: wait for the stock.
        _wait(f"http://127.0.0.1:{port}/_ground_truth.json", timeout=1200)
        _sketchshop("crawl", "run", "--spec", str(DEMO_SPEC), "--base-url", f"http://127.0.0.1:{port}",
                    "--browsers", "2")
    finally:
        shop.terminate()
        shop.wait(10)


def models_present() -> list[str]:
    from .registry import weights_path
    missing = []
    for task in ("classifier", "detector", "colorizer"):
        try:
            weights_path(task)
        except UserError:
            missing.append(task)
    return missing


def index_is_current(n_products: int) -> bool:
    """The live index holds every product, described by the models and code there are now."""
    from catalog.search_cli import models_key
    cur = settings().data_dir / "index" / "CURRENT"
    if not cur.is_file():
        return False
    try:
        info = json.loads((cur.parent / "builds" / cur.read_text().strip() / "build.json").read_text())
    except (OSError, ValueError):
        return False
    return info.get("n") == n_products and info.get("model") == models_key()


def demo(args) -> int:
    t0 = time.time()
    data = settings().data_dir
    have = catalogue_products()
    if have < args.products:
        log.info("building the demo catalogue: %d studio products, crawled from the demo shop", args.products)
        crawl_demo_shop(args.products, args.seed, args.shop_port)
        have = catalogue_products()
    log.info("catalogue: %d products in %s", have, data)
    missing = models_present()
    if missing:
        print(f"demo assets are in {data} (catalogue: {have} products); the service needs the "
              f"{', '.join(missing)} weights, which are not shipped yet")
        return 0
    if not index_is_current(have):
        _sketchshop("index", "build")
    if args.no_serve:
        log.info("ready in %.0f s (not serving: --no-serve)", time.time() - t0)
        return 0
    log.info("ready in %.0f s; serving on http://%s:%d", time.time() - t0, args.host, args.port)
    return serve(args)


def serve(args) -> int:
    """The API (gunicorn) in the foreground, and the demo shop at the port its products' links name."""
    port = demo_shop_port()
    shop = None
    if port is None:
        log.info("the catalogue holds no %s: only the API is served", DEMO_SHOP)
    else:
        try:
            # on the API's address too: the API names the shop links by the host its client reached
            shop = start_demo_shop(args.products, args.seed, port, host=args.host)
            log.info("the demo shop (shop links) starts at http://%s:%d", args.host, port)
        except UserError as e:
            log.warning("%s; the shop links will not open", e)
    api = subprocess.Popen(_argv("serve", "--host", args.host, "--port", str(args.port)))
    signal.signal(signal.SIGTERM, lambda *_: api.terminate())  # docker stop, systemd: a graceful stop of both
    try:
        while True:
            try:
                return api.wait()
            except KeyboardInterrupt:  # Ctrl-C (the API has it too when it came from the terminal)
                api.send_signal(signal.SIGINT)
    finally:
        if shop is not None:
            shop.terminate()
            shop.wait(10)


def register(cli) -> None:
    p = cli.command("demo", demo, help="build the demo shop, crawl it, index it and serve the API and web client "
                                      "(steps already done are skipped)")
    p.add_argument("--products", type=count(1), default=DEMO_PRODUCTS,
                   help="demo shop size (default: %(default)s, ten of each category in each colour)")
    p.add_argument("--seed", type=count(0), default=0, help="demo shop stock seed (same seed, same products)")
    p.add_argument("--host", default="127.0.0.1", help="address the API binds (0.0.0.0 behind a proxy)")
    p.add_argument("--port", type=PORT, default=8000, help="the API and the web client")
    p.add_argument("--shop-port", type=PORT, default=8001,
                   help="the demo shop, for a first crawl: its products' links name this port, and the shop "
                        "is served there beside the API")
    p.add_argument("--no-serve", action="store_true", help="build everything, then exit")
