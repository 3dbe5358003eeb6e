"""`sketchshop catalog stats`: what the catalogue holds."""
from __future__ import annotations

import json

from sketchshop.cli import count, number
from sketchshop.errors import UserError


def cmd_stats(args) -> int:
    from . import open_catalog
    cat = open_catalog(args.db, create=False)
    st = cat.stats()
    if args.json:
        print(json.dumps(st, indent=2, sort_keys=True))
        return 0
    print(f"catalogue: {cat.url}")
    print(f"{st['products']} products, {st['images']} images ({st['near_duplicate_images']} near-duplicates), "
          f"{st['shops']} shops, {st['crawl_runs']} crawl runs, {st['schedules']} schedules, "
          f"{st['unmapped_labels']} unmapped labels")
    for key in ("by_shop", "by_category", "by_colour"):
        if st[key]:
            print(f"{key[3:]:>9}: " + ", ".join(f"{k} {v}" for k, v in sorted(st[key].items(), key=lambda kv: -kv[1])))
    return 0


def cmd_products(args) -> int:
    from . import open_catalog
    for name in ("category", "colour", "shop", "currency", "q"):
        value = getattr(args, name)
        if value and not value.isprintable():
            raise UserError(f"--{name} {value!r} is not text (an undecodable byte, or a control character)")
    page = open_catalog(args.db, create=False).products(
        category=args.category, colour=args.colour, shop=args.shop, min_price=args.min_price,
        max_price=args.max_price, currency=args.currency, q=args.q, page=args.page, per_page=args.per_page)
    if args.json:
        print(json.dumps({"total": page.total, "page": page.page, "items": page.items}, indent=2))
        return 0
    for p in page.items:
        print(f"{p['id']:>6} {p['shop']:<12} {p['category'] or '?':<10} {p['colour'] or '?':<7} "
              f"{p['price'] if p['price'] is not None else '':>8} {p['currency'] or '':<4} {p['title']}")
    print(f"({len(page.items)} of {page.total}, page {page.page})")
    return 0


def register(cli) -> None:
    p = cli.command("stats", cmd_stats, group="catalog",
                    help="count products, images, shops, and products by category and colour")
    p.add_argument("--json", action="store_true", help="print JSON (keys: products, images, shops, by_category, by_colour, ...)")
    p.add_argument("--db", help="SQLAlchemy URL (default: SKETCHSHOP_DB_URL or <data_dir>/catalog.db)")
    p = cli.command("products", cmd_products, group="catalog", help="list products with filters")
    for a in ("category", "colour", "shop", "currency"):
        p.add_argument(f"--{a}")
    p.add_argument("--q", help="text in the title or brand")
    p.add_argument("--min-price", type=number(0))
    p.add_argument("--max-price", type=number(0))
    p.add_argument("--page", type=count(1), default=1)
    p.add_argument("--per-page", type=count(1, 500), default=20)
    p.add_argument("--json", action="store_true")
    p.add_argument("--db", help="SQLAlchemy URL")
