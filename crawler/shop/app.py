"""The demo shop as a Flask app: behaves like a real fashion shop so the crawler meets real problems.

Listing pages ship no products in their HTML: the grid is rendered by JavaScript from a JSON
endpoint, images are lazy (`data-src`), some categories page with a "load more" button and the
others with numbered pages, a cookie banner covers the page until accepted, and robots.txt
disallows `/cart` and `/account`. Layout "a" and layout "b" differ in URLs, markup, JSON shape,
price format and where the attributes are shown, so one crawler needs two specs.

Fault injection (for tests): random 500s, slow responses, truncated pages/JSON, broken images.
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time
from pathlib import Path

from flask import Flask, Response, abort, jsonify, render_template, request, url_for

from .products import ATTRIBUTE_NAMES, CATEGORY_NAMES, COLOUR_NAMES, ShopProduct

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
CAT_BY_SLUG = {slug: c for c, (_n, slug) in CATEGORY_NAMES.items()}
COL_BY_SLUG = {slug: c for c, (_n, slug) in COLOUR_NAMES.items()}
SYMBOLS = {"EUR": "\u20ac", "USD": "$", "GBP": "\u00a3"}


def _amount_b(p: ShopProduct) -> str:
    """Layout b's price text: decimal comma, symbol after ("49,95 \u20ac")."""
    return f"{p.price:.2f}".replace(".", ",") + " " + SYMBOLS.get(p.currency, p.currency)


def _card(p: ShopProduct, layout: str) -> dict:
    """The listing JSON of one product (layout b's JSON carries less: brand and attributes live on the page)."""
    if layout == "a":
        attrs = {ATTRIBUTE_NAMES[a][0]: ATTRIBUTE_NAMES[a][1][v] for a, v in p.attributes.items()}
        attrs["Fit"] = p.fit
        return {"id": p.id, "url": f"/p/{p.id}/{p.slug}", "title": p.title, "brand": p.brand,
                "price": f"{p.price:.2f}", "currency": p.currency,
                "symbol": SYMBOLS.get(p.currency, p.currency), "colour": COLOUR_NAMES[p.colour][0],
                "images": [f"/img/{p.id}/{i}.jpg" for i in range(len(p.images))], "attributes": attrs}
    return {"sku": p.id, "href": f"/item/{p.id}", "name": p.title,
            "amount": _amount_b(p), "thumb": f"/media/{p.id}-0.jpg"}


def create_app(products: list[ShopProduct] | None = None, *, layout: str = "a", page_size: int = 12,
               fail_rate: float = 0.0, slow_ms: int = 0, broken_images: float = 0.0,
               truncate_rate: float = 0.0, crawl_delay: float | None = None, seed: int = 0,
               ready: threading.Event | None = None, holder: dict | None = None) -> Flask:
    """The shop app. Products may arrive later (`holder['products']` + `ready`) so robots.txt answers
    at once while the stock is still being generated."""
    if layout not in ("a", "b"):
        raise ValueError(f"unknown layout {layout!r} (a or b)")
    app = Flask(__name__, template_folder=str(HERE / "templates"), static_folder=str(HERE / "static"))
    holder = holder if holder is not None else {"products": products or []}
    ready = ready or threading.Event()
    if products is not None:
        ready.set()
    rng = random.Random(seed)
    lock = threading.Lock()
    app.config.update(SHOP_HITS=[], SHOP_LAYOUT=layout, SHOP_HOLDER=holder)

    def stock() -> list[ShopProduct]:
        if not ready.wait(600):
            abort(503)
        return holder["products"]

    def by_id() -> dict[str, ShopProduct]:
        if "by_id" not in holder:
            holder["by_id"] = {p.id: p for p in stock()}
        return holder["by_id"]

    def roll(rate: float) -> bool:
        with lock:
            return rate > 0 and rng.random() < rate

    @app.before_request
    def faults():
        app.config["SHOP_HITS"].append(request.full_path.rstrip("?"))
        if request.path in ("/robots.txt",) or request.path.startswith("/static/"):
            return None
        if slow_ms:
            time.sleep(slow_ms / 1000)
        if roll(fail_rate):
            return Response("<html><body><h1>500 Internal Server Error</h1></body></html>", 500,
                            mimetype="text/html")
        return None

    @app.after_request
    def truncate(resp: Response):
        if request.path.startswith("/static/") or request.path == "/robots.txt" or resp.status_code != 200:
            return resp
        is_image = resp.mimetype.startswith("image/")
        if (is_image and roll(broken_images)) or (not is_image and roll(truncate_rate)):
            resp.direct_passthrough = False
            data = resp.get_data()
            resp.set_data(data[: len(data) * 55 // 100])
        return resp

    def categories():
        return [(c, n, slug) for c, (n, slug) in CATEGORY_NAMES.items()]

    @app.context_processor
    def navigation():
        return {"categories": categories()}

    def colours():
        return [(c, n, slug) for c, (n, slug) in COLOUR_NAMES.items()]

    def listing(cat_slug: str, col_slug: str | None):
        if cat_slug not in CAT_BY_SLUG or (col_slug and col_slug not in COL_BY_SLUG):
            abort(404)
        cat, col = CAT_BY_SLUG[cat_slug], COL_BY_SLUG.get(col_slug or "")
        return [p for p in stock() if p.category == cat and (col is None or p.colour == col)]

    def page_arg() -> int:
        try:
            return max(1, int(request.args.get("page", 1)))
        except ValueError:
            abort(400)

    @app.route("/robots.txt")
    def robots():
        lines = ["User-agent: *", "Disallow: /cart", "Disallow: /account"]
        if crawl_delay:
            lines.append(f"Crawl-delay: {crawl_delay:g}")
        lines.append(f"Sitemap: {request.host_url}sitemap.xml")
        return Response("\n".join(lines) + "\n", mimetype="text/plain")

    @app.route("/sitemap.xml")
    def sitemap():
        urls = [request.host_url]
        for _c, _n, cs in categories():
            for _k, _m, ks in colours():
                urls.append(request.host_url.rstrip("/") + (f"/c/{cs}?colour={ks}" if layout == "a" else f"/shop/{ks}/{cs}"))
        for p in stock():
            urls.append(request.host_url.rstrip("/") + (f"/p/{p.id}/{p.slug}" if layout == "a" else f"/item/{p.id}"))
        body = "".join(f"<url><loc>{u.replace('&', '&amp;')}</loc></url>" for u in urls)
        return Response('<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/'
                        f'schemas/sitemap/0.9">{body}</urlset>\n', mimetype="application/xml")

    @app.route("/_ground_truth.json")
    def ground_truth():
        """The shop's true labels, for benchmarks that check a crawl (a real shop has no such page)."""
        return jsonify([{"id": p.id, "title": p.title, "brand": p.brand, "price": p.price, "currency": p.currency,
                         "category": p.category, "colour": p.colour, "attributes": p.attributes,
                         "images": len(p.images)} for p in stock()])

    @app.route("/")
    def home():
        return render_template(f"{layout}_home.html", categories=categories(), colours=colours())

    @app.route("/cart", defaults={"rest": ""})
    @app.route("/cart/<path:rest>")
    @app.route("/account", defaults={"rest": ""})
    @app.route("/account/<path:rest>")
    def private(rest):
        return render_template(f"{layout}_simple.html", heading="Your account", text="Please sign in.")

    # ---------------------------------------------------------------- layout a
    if layout == "a":
        @app.route("/c/<cat_slug>")
        def category_page(cat_slug):
            if cat_slug not in CAT_BY_SLUG:
                abort(404)
            col_slug = request.args.get("colour") or None
            if col_slug and col_slug not in COL_BY_SLUG:
                abort(404)
            mode = "more" if list(CAT_BY_SLUG).index(cat_slug) % 2 == 0 else "pages"
            cfg = {"category": cat_slug, "colour": col_slug, "mode": mode, "page": page_arg(),
                   "size": page_size}
            return render_template("a_listing.html", heading=CATEGORY_NAMES[CAT_BY_SLUG[cat_slug]][0],
                                   cfg=json.dumps(cfg), colours=colours(), cat_slug=cat_slug, col_slug=col_slug)

        @app.route("/api/products")
        def api_products():
            items = listing(request.args.get("category", ""), request.args.get("colour") or None)
            try:
                off, lim = int(request.args.get("offset", 0)), min(100, int(request.args.get("limit", page_size)))
            except ValueError:
                abort(400)
            return jsonify({"total": len(items), "offset": off,
                            "items": [_card(p, "a") for p in items[off:off + lim]]})

        @app.route("/p/<pid>/", defaults={"slug": ""})
        @app.route("/p/<pid>/<slug>")
        def product_page(pid, slug):
            p = by_id().get(pid) or abort(404)
            return render_template("a_product.html", p=p, card=_card(p, "a"), symbol=SYMBOLS.get(p.currency, p.currency),
                                   cat=CATEGORY_NAMES[p.category], col=COLOUR_NAMES[p.colour])

        @app.route("/img/<pid>/<int:n>.jpg")
        def image(pid, n):
            p = by_id().get(pid) or abort(404)
            if n >= len(p.images):
                abort(404)
            return Response(p.images[n], mimetype="image/jpeg")

    # ---------------------------------------------------------------- layout b
    else:
        @app.route("/shop/<col_slug>/<cat_slug>")
        def category_page_b(col_slug, cat_slug):
            if cat_slug not in CAT_BY_SLUG or col_slug not in COL_BY_SLUG:
                abort(404)
            cfg = {"cat": cat_slug, "col": col_slug, "page": page_arg(), "size": page_size}
            return render_template("b_listing.html", heading=f"{COLOUR_NAMES[COL_BY_SLUG[col_slug]][0]} "
                                   f"{CATEGORY_NAMES[CAT_BY_SLUG[cat_slug]][0]}", cfg=json.dumps(cfg))

        @app.route("/api/v2/listing")
        def api_listing():
            items = listing(request.args.get("cat", ""), request.args.get("col", ""))
            size = page_size
            page = page_arg()
            pages = max(1, -(-len(items) // size))
            return jsonify({"page": page, "pages": pages, "count": len(items),
                            "results": [_card(p, "b") for p in items[(page - 1) * size: page * size]]})

        @app.route("/item/<pid>")
        def product_page_b(pid):
            p = by_id().get(pid) or abort(404)
            attrs = [(ATTRIBUTE_NAMES[a][0], ATTRIBUTE_NAMES[a][1][v]) for a, v in p.attributes.items()]
            attrs.append(("Fit", p.fit))
            return render_template("b_product.html", p=p, attrs=attrs, amount=_amount_b(p),
                                   cat=CATEGORY_NAMES[p.category], col=COLOUR_NAMES[p.colour])

        @app.route("/media/<pid>-<int:n>.jpg")
        def image_b(pid, n):
            p = by_id().get(pid) or abort(404)
            if n >= len(p.images):
                abort(404)
            return Response(p.images[n], mimetype="image/jpeg")

    app.jinja_env.globals["url_for"] = url_for
    return app


class ShopServer:
    """Run a shop app in a background thread (tests, benchmarks): `with ShopServer(app) as url: ...`."""

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0):
        from werkzeug.serving import make_server
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        self.app = app
        try:
            self.server = make_server(host, port, app, threaded=True)
        except (OSError, SystemExit) as e:   # werkzeug exits on "address in use"
            from sketchshop.errors import UserError
            raise UserError(f"cannot serve the shop on {host}:{port} "
                            f"({getattr(e, 'strerror', None) or 'address in use or not available'})") from None
        self.url = f"http://{host}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def hits(self) -> list[str]:
        return self.app.config["SHOP_HITS"]

    def __enter__(self) -> str:
        self.thread.start()
        return self.url

    def __exit__(self, *exc):
        self.server.shutdown()
