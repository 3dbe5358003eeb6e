"""The demo shop without a browser: routes, robots.txt, sitemap, JSON listing, faults, ground truth."""
from __future__ import annotations

import json
import re

import pytest


@pytest.fixture(scope="module")
def stock():
    from crawler.shop import build_products
    return build_products(24, seed=2)


def client(stock, **kw):
    from crawler.shop import create_app
    return create_app(stock, **kw).test_client()


def test_stock_is_deterministic_and_labelled(stock):
    from crawler.shop import build_products
    from sketchshop import vocab
    again = build_products(24, seed=2)
    assert [(p.id, p.title, p.price, p.images[0]) for p in stock] == [(p.id, p.title, p.price, p.images[0]) for p in again]
    assert len({p.id for p in stock}) == 24
    for p in stock:
        assert p.category in vocab.FINE_CATEGORIES and p.colour in vocab.COLOURS
        assert set(p.attributes) <= set(vocab.attributes_for(p.category))
        assert p.images[0][:2] == b"\xff\xd8"
    sale = build_products(24, seed=2, sale=0.5)
    assert sum(a.price != b.price for a, b in zip(stock, sale)) == 8


def test_a_restarted_shop_reads_its_stock_from_the_cache(stock, tmp_path, monkeypatch, caplog):
    """`shop serve` (each `make demo`) caches the studio stock it rendered; a broken cache file is rendered again."""
    import crawler.shop.products as P
    first = P.build_products(24, seed=2, cache_dir=tmp_path)
    assert first == stock and len(list(tmp_path.glob("stock-*.zip"))) == 1

    def no_render(*a, **k):
        raise AssertionError("rendered again")
    with monkeypatch.context() as m:
        m.setattr(P, "_from_studio", no_render)
        assert P.build_products(24, seed=2, cache_dir=tmp_path) == stock
    cached = next(tmp_path.glob("stock-*.zip"))
    cached.write_bytes(cached.read_bytes()[:1000])  # a half-written or damaged file
    assert P.build_products(24, seed=2, cache_dir=tmp_path) == stock
    assert "unreadable" in caplog.text
    assert P.build_products(24, seed=3, cache_dir=tmp_path) != stock  # other inputs, another file
    assert len(list(tmp_path.glob("stock-*.zip"))) == 2


def test_robots_sitemap_and_private_pages(stock):
    c = client(stock)
    robots = c.get("/robots.txt").get_data(as_text=True)
    assert "Disallow: /cart" in robots and "Disallow: /account" in robots and "Sitemap:" in robots
    sm = c.get("/sitemap.xml").get_data(as_text=True)
    assert sm.count("<loc>") == 1 + 11 * 13 + len(stock)
    assert c.get("/cart", follow_redirects=True).status_code == 200 and c.get("/account/wishlist").status_code == 200


def test_listing_is_rendered_by_javascript(stock):
    from crawler.shop import CATEGORY_NAMES, COLOUR_NAMES
    p = stock[0]
    cat, col = CATEGORY_NAMES[p.category][1], COLOUR_NAMES[p.colour][1]
    c = client(stock, page_size=5)
    html = c.get(f"/c/{cat}?colour={col}").get_data(as_text=True)
    assert p.id not in html and p.title not in html              # no products in the initial HTML
    assert 'id="load-more"' in html and "cookie-banner" in html
    d = c.get(f"/api/products?category={cat}&colour={col}").get_json()
    assert d["total"] >= 1 and p.id in {x["id"] for x in d["items"]}
    page = c.get(d["items"][0]["url"]).get_data(as_text=True)
    assert "data-src=" in page and "product-detail" in page
    img = c.get(d["items"][0]["images"][0])
    assert img.mimetype == "image/jpeg" and img.data in {q.images[0] for q in stock}
    assert c.get("/c/nonsense").status_code == 404
    assert c.get(f"/api/products?category={cat}&offset=x").status_code == 400


def test_layout_b_structure(stock):
    from crawler.shop import CATEGORY_NAMES, COLOUR_NAMES
    p = stock[0]
    c = client(stock, layout="b", page_size=5)
    html = c.get(f"/shop/{COLOUR_NAMES[p.colour][1]}/{CATEGORY_NAMES[p.category][1]}").get_data(as_text=True)
    assert 'id="tiles"' in html and p.id not in html
    item = c.get(f"/item/{p.id}").get_data(as_text=True)
    assert re.search(r"\d+,\d\d ", item) and p.brand in item
    assert c.get(f"/media/{p.id}-0.jpg").data == p.images[0]


def test_fault_injection(stock):
    c = client(stock, fail_rate=1.0)
    assert c.get("/").status_code == 500
    assert c.get("/robots.txt").status_code == 200                  # robots.txt never fails
    c = client(stock, broken_images=1.0)
    from crawler.shop import CATEGORY_NAMES
    item = stock[0]
    assert len(c.get(f"/img/{item.id}/0.jpg").data) < len(item.images[0])
    c = client(stock, truncate_rate=1.0)
    body = c.get(f"/c/{CATEGORY_NAMES[item.category][1]}").get_data(as_text=True)
    assert "site-footer" not in body
    with pytest.raises(json.JSONDecodeError):
        json.loads(c.get(f"/api/products?category={CATEGORY_NAMES[item.category][1]}").get_data(as_text=True))


def test_bad_source_is_a_clear_error(tmp_path):
    from crawler.shop import build_products
    from sketchshop.errors import UserError
    with pytest.raises(UserError):
        build_products(5, source=tmp_path)                         # empty folder
    with pytest.raises(UserError):
        build_products(0)


def test_real_photos_as_source(shared_data):
    from crawler.shop import build_products
    ps = build_products(6, seed=1, source=shared_data / "clothing-small" / "validation")
    assert len(ps) == 6 and all(p.images[0][:2] == b"\xff\xd8" for p in ps)


def test_demo_serves_its_shop_where_the_catalogue_links(data_dir):
    """`sketchshop demo` keeps the demo shop up beside the API at the port its crawled products' links name."""
    import socket
    import urllib.request

    from catalog import open_catalog
    from catalog.store import ProductRecord
    from crawler.shop import build_products
    from sketchshop.demo import DEMO_SHOP, _wait, demo_shop_port, start_demo_shop
    from sketchshop.errors import UserError
    assert demo_shop_port() is None  # nothing crawled yet

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(UserError, match="--shop-port"):
            start_demo_shop(12, 0, port)  # another server there: said, not a crash of the shop's process

    p = build_products(12, seed=0)[3]
    base = f"http://127.0.0.1:{port}"
    cat = open_catalog()
    with cat.session() as s:
        cat.upsert_product(s, cat.get_shop(DEMO_SHOP, base), None, ProductRecord(
            external_id=p.id, url=f"{base}/p/{p.id}/{p.slug}", title=p.title, brand=p.brand, price=p.price,
            currency=p.currency, labels=[], images=[]))
    (url,) = [d["url"] for d in cat.products(per_page=5).items]
    cat.close()
    assert demo_shop_port() == port

    # a phone on the network (`demo --host 0.0.0.0`) gets the shop links at the address it reached the API by
    from server import create_app
    api = create_app().test_client()
    for reached, link in (("127.0.0.1:8000", url), ("192.168.1.7:8000", url.replace("127.0.0.1", "192.168.1.7")),
                          ("[fd00::7]:8000", url.replace("127.0.0.1", "[fd00::7]"))):
        (item,) = api.get("/v1/products", base_url=f"http://{reached}").get_json()["items"]
        assert item["url"] == link
    from server.api import _shop_url
    with api.application.test_request_context(base_url="http://192.168.1.7:8000"):
        assert _shop_url("https://shop.example/p/1") == "https://shop.example/p/1"  # a real shop's own link

    # The demo crawls its shop, stops it, then serves it again at once at that port, where the shop's ends of
    # the crawling browser's connections linger in the kernel for a minute (TIME_WAIT)
    for run in ("crawl", "serve"):
        shop = start_demo_shop(12, 0, port)
        browser = None
        try:
            _wait(f"{base}/_ground_truth.json", timeout=120)
            with urllib.request.urlopen(url, timeout=10) as r:
                assert r.status == 200 and p.title in r.read().decode()
            if run == "crawl":
                browser = socket.create_connection(("127.0.0.1", port), timeout=10)
                browser.sendall(b"GET /robots.txt HTTP/1.1\r\nHost: shop\r\n\r\n")
                assert browser.recv(12).startswith(b"HTTP/1.1 200")
        finally:
            shop.terminate()
            shop.wait(10)
            if browser:  # the shop closed its end first; now the browser closes its own
                while browser.recv(65536):
                    pass
                browser.close()
