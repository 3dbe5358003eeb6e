"""End-to-end crawls of the demo shop with real headless Chromium and a real SQLite catalogue.

Each crawl is compared with the shop's ground truth: every product once, the right labels, and
images that decode and are byte-identical to what the shop served.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
SPEC_A = ROOT / "crawler" / "specs" / "demo-a.yaml"
SPEC_B = ROOT / "crawler" / "specs" / "demo-b.yaml"
N = 40


def _need_chromium():
    import shutil
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("Chromium/chromedriver not installed (scripts/system-deps.sh)")


@pytest.fixture(scope="module")
def stock():
    from crawler.shop import build_products
    return build_products(N, seed=5)


def by_category_spec(tmp_path, **changes) -> Path:
    """demo-a with one listing per category (no colour filter): far fewer pages, colour from the card."""
    d = yaml.safe_load(SPEC_A.read_text())
    d["start_urls"] = ["/c/{category}"]
    d.update(changes)
    f = tmp_path / "by-category.yaml"
    f.write_text(yaml.safe_dump(d))
    return f


def shop(products, **kw):
    from crawler.shop import ShopServer, create_app
    kw.setdefault("page_size", 3)   # small pages: load-more and numbered pagination both happen
    port = kw.pop("port", 0)
    return ShopServer(create_app(products, **kw), port=port)


def check_against_truth(cat, products, shop_name, *, attributes=True, colour_source="facet:colour="):
    """Every product exactly once, labels right, images intact and identical to the shop's."""
    from sketchshop.images import load_image
    st = cat.stats()
    assert st["by_shop"][shop_name] == len(products)
    page = cat.products(shop=shop_name, per_page=500)
    assert page.total == len(products)
    got = {p["external_id"]: cat.product(p["id"]) for p in page.items}
    assert len(got) == len(products)
    for gt in products:
        p = got[gt.id]
        assert (p["category"], p["colour"]) == (gt.category, gt.colour), gt.id
        assert p["title"] == gt.title and p["price"] == pytest.approx(gt.price) and p["currency"] == gt.currency
        if attributes:
            assert p["brand"] == gt.brand
            assert {k: v for k, v in p["attributes"].items()} == gt.attributes, gt.id
            assert any(lab["name"] == "fit" and lab["value"] is None and lab["raw"] == gt.fit for lab in p["labels"])
        srcs = {lab["name"]: lab["source"] for lab in p["labels"]}
        assert srcs["category"].startswith("facet:category=") and srcs["colour"].startswith(colour_source)
        assert len(p["images"]) == len(gt.images)
        for im, data in zip(p["images"], gt.images):
            path = cat.image_path(im["sha256"])
            assert path is not None and path.read_bytes() == data
            assert hashlib.sha256(path.read_bytes()).hexdigest() == im["sha256"]
            load_image(path)


def test_crawl_layout_a_matches_ground_truth(stock, data_dir, catalog_db):
    _need_chromium()
    from catalog import open_catalog
    from crawler.crawl import crawl
    from crawler.spec import load_spec
    srv = shop(stock, layout="a")
    with srv as url:
        res = crawl(load_spec(SPEC_A, base_url=url), browsers=2, progress=False)
    assert res["status"] == "done" and res["failed"] == 0
    assert res["products"] == N and res["new"] == N and res["images_new"] == N
    check_against_truth(open_catalog(), stock, "demo-shop")
    hits = srv.hits
    assert not any(h.startswith(("/p/", "/cart", "/account")) for h in hits), "product pages or private pages visited"
    assert not any(h.startswith("/static/shop.css") for h in hits), "CSS should be blocked in the browser"
    assert res["unknown_labels"] and all(k.startswith("fit=") for k in res["unknown_labels"])


def test_pagination_and_load_more(stock, data_dir, tmp_path):
    """Category pages without a colour filter: several pages per category, colour read from the card."""
    _need_chromium()
    from catalog import open_catalog
    from crawler.crawl import crawl
    from crawler.spec import load_spec
    spec_file = by_category_spec(tmp_path)
    srv = shop(stock, layout="a", page_size=2)
    with srv as url:
        res = crawl(load_spec(spec_file, base_url=url), browsers=2, progress=False)
    assert res["status"] == "done" and res["products"] == N and res["failed"] == 0
    assert res["pages"] > 11                                              # numbered pages were followed
    assert any("page=2" in h for h in srv.hits) and any("offset=2" in h for h in srv.hits)  # and load more clicked
    check_against_truth(open_catalog(), stock, "demo-shop", colour_source="field:colour_name")


def test_crawl_layout_b_reads_product_pages(stock, data_dir, tmp_path):
    _need_chromium()
    from catalog import open_catalog
    from crawler.crawl import crawl
    from crawler.spec import load_spec
    from crawler.shop import CATEGORY_NAMES, COLOUR_NAMES
    d = yaml.safe_load(SPEC_B.read_text())   # listings only for the shape x colour pairs in stock (fewer pages)
    pairs = sorted({(COLOUR_NAMES[p.colour][1], CATEGORY_NAMES[p.category][1]) for p in stock})
    d["start_urls"] = [{"url": f"/shop/{c}/{k}", "facets": {"colour": c, "category": k}} for c, k in pairs]
    spec_file = tmp_path / "b.yaml"
    spec_file.write_text(yaml.safe_dump(d))
    srv = shop(stock, layout="b")
    with srv as url:
        res = crawl(load_spec(spec_file, base_url=url), browsers=2, progress=False)
    assert res["status"] == "done" and res["products"] == N and res["failed"] == 0
    check_against_truth(open_catalog(), stock, "demo-shop-b")
    assert sum(h.startswith("/item/") for h in srv.hits) >= N


def test_robots_txt_is_obeyed(stock, data_dir, tmp_path):
    _need_chromium()
    from catalog import open_catalog
    from crawler.crawl import crawl
    from crawler.spec import load_spec
    spec_file = by_category_spec(tmp_path, name="robots-shop",
                                 start_urls=["/account/wishlist", "/cart?from={category}", "/c/{category}"])
    srv = shop(stock, layout="a")
    with srv as url:
        res = crawl(load_spec(spec_file, base_url=url), browsers=1, progress=False)
    assert res["status"] == "done"
    assert res["skipped_robots"] == 1 + 11     # /account/wishlist and the 11 /cart?from=... start URLs
    assert not any(h.startswith(("/account", "/cart")) for h in srv.hits)
    assert open_catalog().stats()["products"] == N


def test_a_crawl_where_every_page_failed_is_a_failure(stock, data_dir, tmp_path, capsys, caplog):
    """A shop whose pages never show what the spec waits for (a changed layout, an error page for everything):
    the run is "failed", naming a page's error, and `crawl run` exits 1; it used to end "done" with 0 products."""
    _need_chromium()
    from crawler.crawl import crawl
    from crawler.spec import load_spec
    from sketchshop.cli import main
    d = yaml.safe_load(by_category_spec(tmp_path, name="changed-shop").read_text())
    d["listing"]["ready"] = ".a-class-this-shop-never-had"
    d["start_urls"] = ["/c/dresses", "/c/skirts"]
    d["politeness"].update(retries=0, timeout_s=1)
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(d))
    with shop(stock, layout="a") as url:
        res = crawl(load_spec(tmp_path / "changed.yaml", base_url=url), browsers=1, progress=False)
        assert (res["status"], res["products"], res["failed"]) == ("failed", 0, 2)
        assert "every page failed, e.g." in res["error"] and "/c/" in res["error"]
        assert main(["crawl", "run", "--spec", str(tmp_path / "changed.yaml"), "--base-url", url,
                     "--browsers", "1"]) == 1
        # with many pages, it stops after the first three failed (QA: 10 such pages took 273 s to fail)
        d["start_urls"] = ["/c/{category}"]
        (tmp_path / "changed.yaml").write_text(yaml.safe_dump(d))
        res = crawl(load_spec(tmp_path / "changed.yaml", base_url=url), browsers=1, progress=False, fresh=True)
        assert (res["status"], res["failed"]) == ("failed", 3) and "the first 3 pages all failed" in res["error"]

        # pages that are not there (404) fail at once, naming the status (QA: 5 attempts each, "broken")
        d["listing"]["ready"] = ".card"
        d["start_urls"] = ["/no-such-listing/{category}"]
        d["politeness"].update(retries=4, timeout_s=10)
        (tmp_path / "changed.yaml").write_text(yaml.safe_dump(d))
        with caplog.at_level("INFO", logger="crawler.crawl"):
            res = crawl(load_spec(tmp_path / "changed.yaml", base_url=url), browsers=1, progress=False, fresh=True)
        assert res["status"] == "failed" and "HTTP 404" in res["error"], res["error"]
        assert "retrying" not in caplog.text, "a 404 was retried"


def test_a_crawl_that_found_nothing_or_lost_pages_says_so(stock, data_dir, tmp_path, caplog):
    """Found by QA: each of these ended "done" (exit 0). A card selector that matches nothing and a robots.txt
    that bars every start page are failures; pages that failed while others were read (the shop went down
    half-way) leave the run "partial", for the next run to crawl again. Products stored without a title or a
    price (selectors that match nothing) are counted in a warning."""
    _need_chromium()
    from crawler.crawl import crawl
    from crawler.spec import load_spec

    def run(name, **changes):
        d = yaml.safe_load(by_category_spec(tmp_path, name=name).read_text())
        d["politeness"].update(retries=0, timeout_s=1)
        for k, v in changes.items():
            d[k] = v if k != "listing" else {**d["listing"], **v}
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(d))
        return crawl(load_spec(tmp_path / f"{name}.yaml", base_url=url), browsers=1, progress=False)

    with shop(stock, layout="a") as url:
        res = run("no-cards", listing={"card": ".no-such-card"}, start_urls=["/c/dresses"])
        assert res["status"] == "failed" and "no product found on 1 pages" in res["error"]
        res = run("barred", start_urls=["/account/wishlist", "/cart?from={category}"])
        assert res["status"] == "failed" and "robots.txt disallows every page" in res["error"]
        res = run("half", start_urls=["/c/dresses", "/c/no-such-category"])
        assert (res["status"], res["failed"]) == ("partial", 1) and res["products"] > 0
        fields = {**yaml.safe_load(SPEC_A.read_text())["listing"]["fields"], "title": {"css": ".no-such-title"},
                  "price": {"css": ".no-such-price", "attr": "data-price"}}
        with caplog.at_level("WARNING"):
            res = run("blank", listing={"fields": fields}, start_urls=["/c/skirts"])
        n = res["products"]
        assert res["status"] == "done" and n > 0  # stored (a shop may hide a price), but said
        assert f"{n} product(s) without a title and {n} without a price" in caplog.text


def test_faults_survived_with_every_product(stock, data_dir, tmp_path):
    _need_chromium()
    from catalog import open_catalog
    from crawler.crawl import crawl
    from crawler.spec import load_spec
    srv = shop(stock, layout="a", fail_rate=0.15, broken_images=0.25, truncate_rate=0.15, slow_ms=5, seed=1)
    # about 28 % of page loads fail or come back truncated: with the spec's 4 retries one page in
    # ~600 exhausts them (seen once under CPU load, 36/40 stored and the page reported failed), so
    # this test, about surviving faults rather than about the retry budget, allows 8
    polite = {**yaml.safe_load(SPEC_A.read_text())["politeness"], "retries": 8}
    with srv as url:
        res = crawl(load_spec(by_category_spec(tmp_path, politeness=polite), base_url=url), browsers=2, progress=False)
    assert res["status"] == "done" and res["products"] == N and res["failed"] == 0
    check_against_truth(open_catalog(), stock, "demo-shop", colour_source="field:colour_name")
    hits = srv.hits
    assert len(hits) > len(set(hits)), "no request was retried: were faults injected?"
    assert not list(Path(data_dir, "images").glob("*/.tmp-*"))


def count(sql: str, before_tables: int | None = None) -> int:
    """One number from the catalogue the crawler writes (SQLite or PostgreSQL), read as another client would;
    `before_tables` while the crawler may not have created its tables yet."""
    from sqlalchemy import create_engine, exc, text

    from sketchshop.config import settings
    engine = create_engine(settings().database_url)
    try:
        with engine.connect() as c:
            return int(c.execute(text(sql)).scalar())
    except (exc.OperationalError, exc.ProgrammingError):
        if before_tables is None:
            raise
        return before_tables
    finally:
        engine.dispose()


def test_kill_and_resume(stock, data_dir, catalog_db, tmp_path):
    _need_chromium()
    from catalog import open_catalog
    from crawler.crawl import crawl
    from crawler.spec import load_spec
    spec_file = by_category_spec(tmp_path)
    srv = shop(stock, layout="a", slow_ms=120)
    with srv as url:
        cmd = [sys.executable, "-m", "sketchshop", "crawl", "run", "--spec", str(spec_file), "--base-url", url,
               "--browsers", "1", "--image-workers", "1"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy(),
                                start_new_session=True)   # its own process group: the kill takes its browser too
        t0, n = time.time(), 0
        while time.time() - t0 < 120 and proc.poll() is None:
            time.sleep(0.2)
            n = count("select count(*) from products", before_tables=0)
            if n >= 8:
                break
        assert proc.poll() is None, "the crawl finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert 8 <= n < N
        cat = open_catalog()
        (run,) = cat.runs()
        assert run["status"] == "running"          # what a kill -9 leaves behind
        res = crawl(load_spec(spec_file, base_url=url), browsers=2, progress=False)
    assert res["id"] == run["id"] and res["status"] == "done"      # the same run, resumed
    assert len(cat.runs()) == 1
    check_against_truth(cat, stock, "demo-shop", colour_source="field:colour_name")
    assert count("select count(*) from products") == count("select count(distinct external_id) from products") == N
    assert count("select count(*) from products p where not exists "
                 "(select 1 from product_images i where i.product_id = p.id)") == 0
    assert count("select count(*) from crawl_tasks where status = 'pending'") == 0
    assert not list(Path(data_dir, "images").glob("*/.tmp-*"))


def test_a_crawl_asked_to_stop_is_left_to_resume(stock, data_dir, tmp_path):
    """What the scheduler does on Ctrl-C or SIGTERM (`crawl.stop_all`): the running crawl stops at its next result, its
    run is "interrupted" (it was "failed": the interpreter's exit refused the crawl's image downloads), and the next
    crawl resumes it."""
    _need_chromium()
    import threading

    from catalog import open_catalog
    from crawler import crawl as C
    from crawler.spec import load_spec
    spec_file = by_category_spec(tmp_path)
    with shop(stock, layout="a", slow_ms=120) as url:
        spec, got, cat = load_spec(spec_file, base_url=url), {}, open_catalog()  # the schema, before the crawl's thread

        def run():
            try:
                C.crawl(spec, browsers=1, progress=False)
            except C.Interrupted as e:
                got["stopped"] = str(e)
        t = threading.Thread(target=run)
        t.start()
        t0 = time.time()
        while cat.stats()["products"] < 4 and time.time() - t0 < 60:
            time.sleep(0.1)
        C.stop_all()
        try:
            t.join(60)
        finally:
            C.STOPPING.clear()
        assert "stopped on request" in got["stopped"]
        (run_,) = cat.runs()
        assert run_["status"] == "interrupted" and 4 <= cat.stats()["products"] < N
        res = C.crawl(spec, browsers=1, progress=False)
    assert res["id"] == run_["id"] and res["status"] == "done" and cat.stats()["products"] == N


def test_an_interrupted_run_is_not_resumed_at_another_address(stock, data_dir, tmp_path):
    """Its pending pages' URLs name the first shop's address: a crawl pointed elsewhere starts a run of its own."""
    _need_chromium()
    from catalog import open_catalog
    from catalog.models import CrawlRun
    from crawler.crawl import crawl
    from crawler.spec import load_spec
    spec_file = by_category_spec(tmp_path)
    with shop(stock, layout="a") as first:
        res = crawl(load_spec(spec_file, base_url=first), browsers=1, max_pages=1, progress=False)
    cat = open_catalog()
    with cat.session() as s:  # as a kill leaves it
        s.get(CrawlRun, res["id"]).status = "interrupted"
    with shop(stock, layout="a") as second:
        again = crawl(load_spec(spec_file, base_url=second), browsers=1, max_pages=1, progress=False)
    assert again["id"] != res["id"] and again["base_url"] == second.rstrip("/")
    assert cat.run(res["id"])["status"] == "interrupted"


def test_recrawl_updates_without_duplicates(stock, data_dir, catalog_db, tmp_path):
    _need_chromium()
    from catalog import open_catalog
    from crawler.crawl import crawl
    from crawler.shop import build_products
    from crawler.spec import load_spec
    spec_file = by_category_spec(tmp_path)
    srv = shop(stock, layout="a")
    with srv as url:
        first = crawl(load_spec(spec_file, base_url=url), browsers=2, progress=False)
    on_sale = build_products(N, seed=5, sale=0.5)
    port = int(url.rsplit(":", 1)[1])   # the same shop URL: only the prices change
    with shop(on_sale, layout="a", port=port) as url:
        second = crawl(load_spec(spec_file, base_url=url), browsers=2, progress=False)
    assert first["new"] == N and second["new"] == 0 and second["id"] != first["id"]
    changed = sum(a.price != b.price for a, b in zip(stock, on_sale))
    assert changed > 0 and second["updated"] == changed and second["images_new"] == 0
    cat = open_catalog()
    check_against_truth(cat, on_sale, "demo-shop", colour_source="field:colour_name")
    for a, b in zip(stock, on_sale):
        prices = [x["price"] for x in cat.product_by_key("demo-shop", a.id)["prices"]]
        assert prices == ([a.price, b.price] if a.price != b.price else [a.price])


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for p in Path("/proc").glob("[0-9]*"):
        try:
            if text.encode() in (p / "cmdline").read_bytes():
                pids.append(int(p.name))
        except OSError:
            pass
    return pids


def test_a_browser_dies_with_its_killed_process():
    """kill -9 of a crawl (or the OOM killer) leaves no chromedriver or Chromium running, and the next browser
    start removes the profile it left."""
    _need_chromium()
    if not sys.platform.startswith("linux"):
        pytest.skip("parent-death signals are Linux's")
    from crawler import browser
    if browser._setpriv() is None:
        pytest.skip("no setpriv with --pdeathsig on this machine (util-linux)")
    import shutil
    import tempfile
    tmp = Path(tempfile.mkdtemp(prefix="ss-"))  # short: Chromium's socket path under TMPDIR must fit 108 bytes
    code = "from crawler.browser import make_driver; d = make_driver(); print('up', flush=True); import time; time.sleep(120)"
    proc = None
    try:
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "TMPDIR": str(tmp)}, start_new_session=True)
        assert proc.stdout.readline().strip() == "up"
        (profile,) = tmp.glob(browser.PROFILE_PREFIX + "*")
        assert _processes_mentioning(str(profile)), "Chromium should be running with the fresh profile"
        os.kill(proc.pid, signal.SIGKILL)  # the process alone, as the OOM killer does, not its group
        proc.wait()
        deadline = time.time() + 15
        while _processes_mentioning(str(profile)) and time.time() < deadline:
            time.sleep(0.2)
        assert not _processes_mentioning(str(profile)), "Chromium outlived the process that started it"
        alive = tmp / (browser.PROFILE_PREFIX + "alive")
        alive.mkdir()
        (alive / "owner").write_text(f"{os.getpid()} {browser._start_time(os.getpid())}")
        unowned = tmp / (browser.PROFILE_PREFIX + "unowned")
        unowned.mkdir()
        assert browser.remove_stale_profiles(str(tmp)) == 1
        assert not profile.exists() and alive.exists() and unowned.exists()
    finally:
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in _processes_mentioning(str(tmp)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)
