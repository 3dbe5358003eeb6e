"""Commands: `shop serve`, `crawl run|bench|runs|schedule ...`, `scheduler`, `dataset classify|detect`.

Heavy imports (selenium, flask, torch) happen inside the command functions.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from sketchshop.cli import PORT, count, number
from sketchshop.config import settings
from sketchshop.errors import UserError

log = logging.getLogger(__name__)


def _rate(x: str) -> float:
    v = float(x)
    if not 0 <= v <= 1:
        raise ValueError(x)
    return v


def cmd_shop_serve(args) -> int:
    import threading

    from .shop import ShopServer, build_products, create_app
    holder, ready = {"products": []}, threading.Event()
    app = create_app(None, layout=args.layout, page_size=args.page_size, fail_rate=args.fail_rate,
                     slow_ms=args.slow_ms, broken_images=args.broken_images, truncate_rate=args.truncate_rate,
                     crawl_delay=args.crawl_delay, seed=args.seed, ready=ready, holder=holder)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ShopServer(app, host=args.host, port=args.port)
    server.thread.start()  # robots.txt answers while the stock is generated; other pages wait for it
    log.info("demo shop (layout %s) at %s: generating %d products (seed %d)", args.layout, server.url,
             args.products, args.seed)
    try:
        holder["products"] = build_products(args.products, seed=args.seed, source=args.source, sale=args.sale,
                                            cache_dir=settings().cache_dir / "shop")
    except BaseException:
        server.server.shutdown()
        raise
    ready.set()
    log.info("serving %d products at %s (Ctrl-C to stop)", len(holder["products"]), server.url)
    try:
        server.thread.join()
    except KeyboardInterrupt:
        server.server.shutdown()
    return 0


def _sigterm_as_interrupt() -> None:
    """SIGTERM (systemd, docker stop) ends a crawl like Ctrl-C: run marked interrupted, browsers closed."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def cmd_crawl_run(args) -> int:
    from .crawl import crawl
    from .spec import load_spec
    _sigterm_as_interrupt()
    spec = load_spec(args.spec, base_url=args.base_url)
    res = crawl(spec, browsers=args.browsers, remote_url=args.remote_url, max_pages=args.max_pages,
                image_workers=args.image_workers, fresh=args.fresh)
    print(json.dumps(res, indent=2) if args.json else
          f"run {res['id']} {res['status']}: {res['products']} products ({res['new']} new, {res['updated']} updated), "
          f"{res['pages']} pages, {res['failed']} failed (pages or products), "
          f"{res['skipped_robots']} skipped by robots.txt, "
          f"{res['images_new']} new images ({res['near_duplicates']} near-duplicates), "
          f"{res['seconds']:.1f} s, {res['products_per_minute']:.0f} products/min"
          + (f"; unknown labels: {res['unknown_labels']}" if res["unknown_labels"] else ""))
    return 0 if res["status"] == "done" else 1


def cmd_crawl_bench(args) -> int:
    from .bench import bench_crawl
    res = bench_crawl(products=args.products, browsers=[int(b) for b in args.browsers.split(",")],
                      seed=args.seed, layout=args.layout, json_path=args.json)
    for r in res["runs"]:
        print(f"{r['browsers']} browser(s): {r['products']} products in {r['seconds']:.1f} s = "
              f"{r['products_per_minute']:.0f} products/min, {r['images']} images, labels complete: "
              f"{r['labels_complete']}, correct vs ground truth: {r['labels_correct']}")
    return 0


def cmd_crawl_runs(args) -> int:
    from catalog import open_catalog
    runs = open_catalog().runs(shop=args.shop, limit=args.limit)
    if args.json:
        print(json.dumps(runs, indent=2))
        return 0
    for r in runs:
        shop = r["shop"] or Path(r["spec"]).stem  # a run that never reached its shop
        print(f"{r['id']:>5} {r['status']:<11} {shop:<12} {r['trigger']:<16} {r['started_at'] or '':<21} "
              f"products {r['products']} (new {r['new']}, updated {r['updated']}), pages {r['pages']}, "
              f"failed (pages or products) {r['failed']}, robots {r['skipped_robots']}")
        if r["error"]:
            print(f"      {r['error'][:300]}")
    return 0


def cmd_schedule_add(args) -> int:
    from catalog import open_catalog

    from .spec import checked_spec_path
    spec = checked_spec_path(args.spec, base_url=args.base_url)
    opts = {"browsers": args.browsers}
    if args.max_pages:
        opts["max_pages"] = args.max_pages
    x = open_catalog().add_schedule(args.name, spec, args.cron, base_url=args.base_url, options=opts,
                                    reindex=args.reindex)
    print(f"schedule {x['name']!r}: {x['cron']} crawl {x['spec']}")
    return 0


def cmd_schedule_list(args) -> int:
    from catalog import open_catalog

    from .schedule import next_fire
    rows = open_catalog().schedules()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for x in rows:
        try:
            nxt = next_fire(x["cron"]).isoformat(timespec="minutes")
        except UserError:
            nxt = "never (fix its cron)"
        print(f"{x['name']:<16} {x['cron']:<16} {x['spec']}  base_url={x['base_url'] or '-'} reindex={x['reindex']} "
              f"last={x['last_fired_at'] or 'never'} next={nxt}")
    if not rows:
        print("no schedules")
    return 0


def cmd_schedule_remove(args) -> int:
    from catalog import open_catalog
    open_catalog().remove_schedule(args.name)
    print(f"removed schedule {args.name!r}")
    return 0


def cmd_schedule_run_due(args) -> int:
    from .schedule import run_due
    done = run_due()
    for r in done:
        print(f"run {r['id']} ({r['trigger']}): {r['status']}, {r['products']} products")
    if not done:
        print("nothing due")
    return 0 if all(r["status"] == "done" for r in done) else 1


def cmd_scheduler(args) -> int:
    from .schedule import Scheduler
    _sigterm_as_interrupt()
    Scheduler(poll_s=args.poll).run_forever(max_ticks=args.max_ticks)
    return 0


def cmd_dataset_classify(args) -> int:
    from .datasets import build_classify
    res = build_classify(args.out, val_fraction=args.val, shop=args.shop, seed=args.seed)
    print(f"{res['images']} images of {res['products']} products -> {args.out} "
          f"(train {res['train']}, val {res['val']}); labels in {res['labels_csv']}")
    return 0


def cmd_dataset_detect(args) -> int:
    from .datasets import build_detect
    res = build_detect(args.out, scenes=args.scenes, val_fraction=args.val, shop=args.shop, seed=args.seed,
                       size=args.size)
    print(f"{res['singles']} product photos + {res['scenes']} composited scenes ({res['boxes']} boxes) -> "
          f"{args.out} (data.yaml); {res['skipped']} skipped (no foreground found)")
    return 0


def register(cli) -> None:
    p = cli.command("serve", cmd_shop_serve, group="shop",
                    help="serve the demo shop (studio products by default) for the crawler",
                    description="A small fashion shop: JS-rendered grids, lazy images, load-more and numbered "
                                "pages, cookie banner, robots.txt, sitemap; with fault injection for tests.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=PORT, default=8800)
    p.add_argument("--products", type=count(1), default=120, help="number of products")
    p.add_argument("--seed", type=count(0), default=0, help="stock seed (same seed, same shop)")
    p.add_argument("--source", help="ImageFolder dir or labels CSV of real photos instead of the studio")
    p.add_argument("--layout", choices=("a", "b"), default="a", help="site structure (each has a spec)")
    p.add_argument("--page-size", type=count(1), default=12, help="products per listing page / load-more step")
    p.add_argument("--fail-rate", type=_rate, default=0.0, help="fraction of requests answered with 500")
    p.add_argument("--slow-ms", type=count(0), default=0, help="delay added to every response")
    p.add_argument("--broken-images", type=_rate, default=0.0, help="fraction of image responses truncated")
    p.add_argument("--truncate-rate", type=_rate, default=0.0, help="fraction of pages/JSON responses truncated")
    p.add_argument("--crawl-delay", type=number(0), help="Crawl-delay to announce in robots.txt")
    p.add_argument("--sale", type=number(0, 1), default=0.0, help="discount every third product by this fraction")

    p = cli.command("run", cmd_crawl_run, group="crawl", help="crawl a shop into the catalogue with Chromium",
                    description="Crawl the shop a spec describes (Selenium + headless Chromium, K browsers), "
                                "storing products, labels and images; resumes an interrupted run of the shop.")
    p.add_argument("--spec", required=True, help="crawl spec YAML (see crawler/specs/, docs/crawling.md)")
    p.add_argument("--base-url", help="point the spec at the same shop on another host/port")
    p.add_argument("--remote-url", help="Selenium Grid URL instead of local Chromium")
    p.add_argument("--browsers", type=count(1), default=2, help="browsers in parallel")
    p.add_argument("--max-pages", type=count(1), help="stop after this many listing pages")
    p.add_argument("--image-workers", type=count(1), default=4, help="threads downloading images")
    p.add_argument("--fresh", action="store_true", help="do not resume an interrupted run; start a new one")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")

    p = cli.command("bench", cmd_crawl_bench, group="crawl",
                    help="products per minute against a local demo shop, for 1 and 2 browsers")
    p.add_argument("--products", type=count(1), default=1000)
    p.add_argument("--browsers", default="1,2", help="comma-separated browser counts")
    p.add_argument("--seed", type=count(0), default=11)
    p.add_argument("--layout", choices=("a", "b"), default="a")
    p.add_argument("--json", help="write the figures to this JSON file")

    p = cli.command("runs", cmd_crawl_runs, group="crawl", help="list recent crawl runs and their counts")
    p.add_argument("--shop")
    p.add_argument("--limit", type=count(1), default=20)
    p.add_argument("--json", action="store_true")

    p = cli.command("schedule", lambda a: a.parser.print_help() or 2, group="crawl",
                    help="manage cron-style crawl schedules (add|list|remove|run-due)")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = sub.add_parser("add", help="add a schedule", description="add a cron-style crawl schedule")
    q.add_argument("name")
    q.add_argument("--spec", required=True)
    q.add_argument("--cron", required=True, help="5-field crontab, e.g. '0 3 * * *' (UTC)")
    q.add_argument("--base-url")
    q.add_argument("--browsers", type=count(1), default=2)
    q.add_argument("--max-pages", type=count(1))
    q.add_argument("--reindex", action="store_true", help="rebuild the search index after each crawl")
    q.set_defaults(func=cmd_schedule_add)
    q = sub.add_parser("list", help="list schedules")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_schedule_list)
    q = sub.add_parser("remove", help="remove a schedule")
    q.add_argument("name")
    q.set_defaults(func=cmd_schedule_remove)
    q = sub.add_parser("run-due", help="run every schedule that is due, and queued crawls, once, then exit")
    q.set_defaults(func=cmd_schedule_run_due)

    p = cli.command("scheduler", cmd_scheduler,
                    help="the one scheduler process: runs due and queued crawls (never inside web workers)")
    p.add_argument("--poll", type=number(0.01), default=30.0, help="seconds between checks for queued crawls")
    p.add_argument("--max-ticks", type=count(1), help=argparse_suppress())

    p = cli.command("classify", cmd_dataset_classify, group="dataset",
                    help="ImageFolder + labels CSV from the catalogue, split by product")
    p.add_argument("--out", required=True)
    p.add_argument("--val", type=number(0, 0.9), default=0.15, help="validation fraction (of products)")
    p.add_argument("--shop")
    p.add_argument("--seed", type=count(0), default=0)

    p = cli.command("detect", cmd_dataset_detect, group="dataset",
                    help="YOLO dataset: product photos boxed by segmentation + composited multi-item scenes")
    p.add_argument("--out", required=True)
    p.add_argument("--scenes", type=count(0), default=500, help="composited multi-item scenes")
    p.add_argument("--size", type=count(32, 4096), default=640, help="scene size (px)")
    p.add_argument("--val", type=number(0, 0.9), default=0.15)
    p.add_argument("--shop")
    p.add_argument("--seed", type=count(0), default=0)


def argparse_suppress():
    import argparse
    return argparse.SUPPRESS
