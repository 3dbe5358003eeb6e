"""Crawl specs and politeness without a browser: validation messages, price parsing, robots, rate limit."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "crawler" / "specs").glob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_shipped_specs_load(path):
    from crawler.spec import load_spec
    s = load_spec(path, base_url="http://127.0.0.1:1234")
    tasks = s.start_tasks()
    assert len(tasks) == 11 * 13 and all(t[0].startswith("http://127.0.0.1:1234/") for t in tasks)
    assert set(s.facets["category"].values()) == {*__import__("sketchshop.vocab").vocab.FINE_CATEGORIES}


def _write(tmp_path, d) -> Path:
    f = tmp_path / "s.yaml"
    f.write_text(d if isinstance(d, str) else yaml.safe_dump(d))
    return f


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: d.pop("listing"), "missing 'listing'"),
    (lambda d: d["facets"]["colour"].update({"mauve": "octarine"}), "unknown colour 'octarine'"),
    (lambda d: d["facets"]["category"].update({"robes": "spaceship"}), "unknown category 'spaceship'"),
    (lambda d: d.update(start_urls=["/c/{material}"]), "facet 'material'"),
    # found by QA: these were "done" runs that had crawled nothing
    (lambda d: d.update(start_urls=["file:///etc/passwd"]), "'file:///etc/passwd': only http"),
    (lambda d: d.update(start_urls=["javascript:alert(1)"]), "paths on the shop can be crawled"),
    (lambda d: d.update(start_urls=[{"url": "ftp://127.0.0.1/c", "facets": {}}]), "paths on the shop can be crawled"),
    (lambda d: d["listing"]["fields"].update(id={"css": "a", "regex": "(["}), "regex"),
    (lambda d: d["attributes"].update(Fit={"name": "fit"}), "attributes.Fit"),
    (lambda d: d["politeness"].update(requests_per_second=0), "politeness"),
    (lambda d: d["politeness"].update(speed=3), "unknown keys"),
    (lambda d: d.update(base_url="not a url"), "base_url"),
    # found by fuzzing the crawler: each was a traceback at crawl time, or a crawl of nothing that said "done"
    (lambda d: d.update(base_url="http://[::1"), "Invalid IPv6 URL"),
    (lambda d: d.update(base_url="http://127.0.0.1:99999"), "out of range"),
    (lambda d: d.update(facets="x"), "invalid spec"),
    (lambda d: d.update(browser="x"), "invalid spec"),
    (lambda d: d.update(browser={"block": "*.jpg"}), "browser.block"),
    (lambda d: d.update(min_image_side="big"), "invalid spec"),
    (lambda d: d["politeness"].update(timeout_s=-1), "timeout_s"),
    (lambda d: d["politeness"].update(retries=1.5), "politeness.retries: must be int"),
    (lambda d: d["politeness"].update(requests_per_second="fast"), "politeness.requests_per_second"),
    (lambda d: d.update(start_urls=["/c/{category}}"]), "not a template"),
    (lambda d: d.update(start_urls=["/c/{category!r}"]), "not a template"),
    (lambda d: d.update(start_urls=[123, None]), "start URL 123"),
    (lambda d: d.update(start_urls=[]), "start_urls is empty"),
])
def test_bad_specs_name_the_problem(tmp_path, mutate, needle):
    from crawler.spec import load_spec
    from sketchshop.errors import UserError
    d = yaml.safe_load(SPECS[0].read_text())
    mutate(d)
    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace("[", r"\[")):
        load_spec(_write(tmp_path, d))
    with pytest.raises(UserError, match=r"not valid YAML \(line 1, column 9: expected ',' or '\]'") as e:
        load_spec(_write(tmp_path, "a: [1, 2"))
    assert "\n" not in str(e.value)  # one line, as every CLI error (was the parser's 8-line report)
    with pytest.raises(UserError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")


@pytest.mark.parametrize("text,value,cur", [
    ("€49.95", 49.95, "EUR"), ("49,95 €", 49.95, "EUR"), ("1.299,00 EUR", 1299.0, "EUR"),
    ("$1,299.00", 1299.0, "USD"), ("£5", 5.0, "GBP"), ("85.08", 85.08, None), ("1,299", 1299.0, None),
    ("sold out", None, None), (None, None, None),
])
def test_parse_price(text, value, cur):
    from crawler.spec import parse_price
    assert parse_price(text) == (value, cur)


def test_robots_and_rate_limit(tmp_path):
    from crawler.crawl import Polite
    from crawler.shop import ShopServer, build_products, create_app
    from crawler.spec import load_spec
    with ShopServer(create_app(build_products(2, seed=1), crawl_delay=0.2)) as url:
        spec = load_spec(SPECS[0], base_url=url)
        pol = Polite(spec, "sketchshop-test/1")
        assert pol.allowed(url + "/c/tees") and not pol.allowed(url + "/cart/add") and not pol.allowed(url + "/account")
        assert pol.interval(url + "/") == pytest.approx(0.2)       # Crawl-delay wins over 60 requests/s
        t0 = time.monotonic()
        for _ in range(4):
            pol.wait(url + "/x")
        assert time.monotonic() - t0 >= 0.55


def test_unreachable_shop_is_a_clear_error_and_a_failed_run(data_dir):
    """The run is recorded as failed, with its shop: it had left no record (by hand) or a queued row without a shop."""
    from catalog import open_catalog
    from crawler.crawl import crawl
    from crawler.spec import load_spec
    from sketchshop.errors import UserError
    spec = load_spec(SPECS[0], base_url="http://127.0.0.1:9")
    spec.politeness.retries, spec.politeness.backoff_s = 1, 0.05
    cat = open_catalog()
    queued = cat.request_crawl(spec.path, base_url=spec.base_url)["id"]
    for run_id in (None, queued):
        with pytest.raises(UserError, match="cannot reach"):
            crawl(spec, browsers=1, progress=False, run_id=run_id)
    runs = cat.runs()
    assert [(r["id"] == queued, r["status"], r["shop"], r["base_url"]) for r in runs] == [
        (False, "failed", spec.name, "http://127.0.0.1:9"), (True, "failed", spec.name, "http://127.0.0.1:9")]
    assert all(r["error"].startswith("cannot reach http://127.0.0.1:9") and r["finished_at"] for r in runs)


def _offline_spec():
    from crawler.spec import load_spec
    spec = load_spec(SPECS[0], base_url="http://127.0.0.1:9")
    spec.politeness.obey_robots = False   # no request: the start pages are only listed
    return spec


def _open_run(spec, cat, **kw):
    """What a crawl does before its browsers start: take the shop's lease and open (or resume) its run."""
    from crawler.crawl import Crawl
    c = Crawl(spec, browsers=1, progress=False, catalog=cat, **kw)
    c.shop_id = cat.get_shop(spec.name, spec.base_url)
    c._take_lease()
    try:
        return c._open_run()
    finally:
        cat.release_shop(c.shop_id, c.owner)
        c.pool.shutdown()


def test_a_run_whose_crawler_died_is_marked_interrupted(data_dir):
    """A crawl killed outright (kill -9, or `demo` stopped mid-crawl) left its run "running" for ever; the next
    crawl of the shop, holding the shop's lease, marks it interrupted (found by a QA session)."""
    from catalog import open_catalog
    from catalog.models import CrawlRun
    spec, cat = _offline_spec(), open_catalog()
    shop = cat.get_shop(spec.name, spec.base_url)
    with cat.session() as s:
        for base in ("http://127.0.0.1:8", spec.base_url):  # another port's run is left, this one's resumed
            s.add(CrawlRun(spec=spec.path, shop_id=shop, base_url=base, status="running", owner="gone:1:x"))
    resumed = _open_run(spec, cat)
    runs = {r["id"]: r for r in cat.runs()}
    assert (runs[1]["status"], runs[1]["error"]) == ("interrupted", "its crawler stopped without closing the run")
    assert resumed.id == 2 and runs[2]["status"] == "running" and len(runs) == 2

    # a run started afresh (--fresh) supersedes the interrupted run at its address: it was resumed later (QA)
    with cat.session() as s:
        s.get(CrawlRun, 2).status = "interrupted"
    fresh = _open_run(spec, cat, fresh=True)
    runs = {r["id"]: r for r in cat.runs()}
    assert fresh.id == 3 and (runs[2]["status"], runs[2]["error"]) == ("partial", "superseded by run 3, which started afresh")
    assert runs[1]["status"] == "interrupted"   # at another address: left as it was


def test_a_queued_runs_options_outlive_its_start(data_dir):
    """A scheduled --reindex run lost `reindex` when it started, so a resumed one never rebuilt the index (a QA
    session): the options it runs with are added to those it was queued with."""
    from catalog import open_catalog
    spec, cat = _offline_spec(), open_catalog()
    queued = cat.request_crawl(spec.path, base_url=spec.base_url, options={"reindex": True, "max_pages": 5})
    _open_run(spec, cat, max_pages=5, run_id=queued["id"])
    assert cat.run(queued["id"])["options"] == {"reindex": True, "max_pages": 5, "browsers": 1, "remote_url": None}


@pytest.mark.parametrize("size,says", [((12000, 12000), "12000x12000 is more than"),
                                       ((16, 5000), "16x5000 is a sliver"), ((8, 8), "8x8 is too small")])
def test_a_pixel_bomb_or_a_sliver_fails_alone_at_once(tmp_path, size, says):
    """An image of 144 Mpx in a few kB: a FetchError for that image, named, without retrying it (the crawl keeps the
    product and its other images). It was a TooLarge that dropped the whole product as '<bytes>: ...'. An image
    too small or too thin is not fetched again either: its size will not change."""
    import io

    from flask import Flask
    from PIL import Image

    from crawler.crawl import FetchError, Polite
    from crawler.shop import ShopServer
    from crawler.spec import load_spec
    from sketchshop.images import load_image
    buf = io.BytesIO()
    Image.new("1", size).save(buf, "PNG")
    app, hits = Flask("bombs"), []

    @app.get("/bomb.png")
    def bomb():
        hits.append(1)
        return buf.getvalue(), 200, {"Content-Type": "image/png"}
    with ShopServer(app) as url:
        spec = load_spec(SPECS[0], base_url=url)
        spec.politeness.obey_robots = False
        with pytest.raises(FetchError, match=f"bomb.png: {says}") as e:
            Polite(spec, "sketchshop-test/1").get_bytes(url + "/bomb.png", load_image)
    assert "<bytes>" not in str(e.value) and len(hits) == 1
