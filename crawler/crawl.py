"""The crawler: K headless browsers read listing pages, a thread pool fetches images over plain
HTTP, one writer commits each listing page's products in one transaction.

Why it is fast: the listing already renders every field (one JavaScript call waits for the grid
and reads all cards), the browser loads no images, CSS or fonts (CDP `Network.setBlockedURLs`),
and images are downloaded outside the browser while the browsers move on. Product pages are
opened only when the spec's listing lacks a field.

Why it is safe to kill: the frontier (one row per listing page) lives in the catalogue; a page's
products, labels, images and the page's "done" mark are one transaction, and image files are
renamed into place before the row that names them is committed. Running the same spec again
resumes the interrupted run; products are keyed by (shop, product id), so none is stored twice.
"""
from __future__ import annotations

import contextlib
import logging
import os
import queue
import random
import re
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from urllib import robotparser
from urllib.parse import urljoin, urlsplit

import requests
from sqlalchemy import func, or_, select, update

from catalog import ProductRecord, open_catalog
from catalog.models import CrawlRun, CrawlTask, Product, utcnow
from sketchshop.errors import BadShape, ImageError, TooLarge, UserError
from sketchshop.net import pid_alive

from .spec import PageSpec, Spec, parse_price

log = logging.getLogger(__name__)
STOPPING = threading.Event()  # set by `stop_all`: every crawl of this process stops at its next result


class Interrupted(Exception):
    """A crawl stopped on request (`stop_all`): its run is left "interrupted", to be resumed."""


def stop_all() -> None:
    """Ask the crawls running in this process to stop soon, resumably (the scheduler on Ctrl-C or SIGTERM)."""
    STOPPING.set()

# Wait in the page (no WebDriver polling round trips) until the content is ready, an error is
# shown, or the HTML is visibly incomplete; then read every card in the same call.
WAIT_AND_READ_JS = r"""
const [ready, error, complete, cardSel, fields, moreSel, nextSel, timeoutMs, done] = arguments;
const t0 = Date.now();
function txt(n) { return n ? (n.textContent || "").trim().replace(/\s+/g, " ") : null; }
function ext(root, f) {
  const nodes = f.css ? Array.from(root.querySelectorAll(f.css)) : [root];
  if (f.name_attr || f.name_css)
    return nodes.map(n => [f.name_attr ? n.getAttribute(f.name_attr) : txt(n.querySelector(f.name_css)),
                           f.value_css ? txt(n.querySelector(f.value_css)) : txt(n)]);
  const vals = nodes.map(n => f.attr ? n.getAttribute(f.attr) : txt(n));
  return f.all ? vals : (vals.length ? vals[0] : null);
}
function visible(sel) {
  if (!sel) return false;
  const e = document.querySelector(sel);
  return !!(e && !e.hidden && !e.disabled && e.getClientRects().length);
}
function state() {
  if (error && document.querySelector(error)) return "error";
  if (document.querySelector(ready)) return "ready";
  if (document.readyState !== "loading" && complete && !document.querySelector(complete)) return "broken";
  return null;
}
(function check() {
  const st = state();
  if (st === "ready") {
    const roots = cardSel ? Array.from(document.querySelectorAll(cardSel)) : [document];
    const items = roots.map(r => { const o = {}; for (const k in fields) o[k] = ext(r, fields[k]); return o; });
    const nx = nextSel ? document.querySelector(nextSel) : null;
    return done({state: st, items: items, more: visible(moreSel), next: nx ? nx.getAttribute("href") : null});
  }
  if (st) return done({state: st});
  if (Date.now() - t0 > timeoutMs) return done({state: "timeout"});
  setTimeout(check, 10);
})();
"""


class ShopBusy(UserError):
    """Another process holds the shop's crawl lease."""


class FetchError(Exception):
    """A URL that still failed after every retry (or that must not be retried)."""


@dataclass
class Task:
    id: int
    url: str
    facet: dict


class Polite:
    """robots.txt, a per-host request schedule (rate limit and crawl-delay) and retried HTTP GETs."""

    def __init__(self, spec: Spec, user_agent: str):
        self.spec, self.ua = spec, user_agent
        self.p = spec.politeness
        self._robots: dict[str, robotparser.RobotFileParser | None] = {}
        self.unreachable: dict[str, str] = {}
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    def session(self) -> requests.Session:
        s = getattr(self._local, "s", None)
        if s is None:
            s = self._local.s = requests.Session()
            s.headers["User-Agent"] = self.ua
        return s

    def _robots_for(self, url: str):
        parts = urlsplit(url)
        host = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            if host in self._robots:
                return self._robots[host]
        rp = robotparser.RobotFileParser(host + "/robots.txt")
        try:
            r = self._get(host + "/robots.txt", rate_limited=False)
            rp.parse(r.text.splitlines())
            rp.float_delay = _crawl_delay(r.text, self.ua)
        except FetchError as e:
            if "HTTP 4" in str(e):
                rp.parse([])              # no robots.txt: everything allowed
            else:
                rp.disallow_all = True    # robots.txt unreachable: crawl nothing, as the convention says
                self.unreachable[host] = str(e)
                log.warning("robots.txt of %s unreachable (%s): nothing is allowed", host, e)
        with self._lock:
            self._robots[host] = rp
        return rp

    def allowed(self, url: str) -> bool:
        return not self.p.obey_robots or self._robots_for(url).can_fetch(self.ua, url)

    def interval(self, url: str) -> float:
        iv = 1.0 / self.p.requests_per_second
        if self.p.obey_robots:
            iv = max(iv, getattr(self._robots_for(url), "float_delay", None) or 0.0)
        return iv

    def wait(self, url: str) -> None:
        """Block until this host may be sent another request."""
        host = urlsplit(url).netloc
        iv = self.interval(url)
        with self._lock:
            now = time.monotonic()
            t = max(now, self._next.get(host, 0.0))
            self._next[host] = t + iv
        if t > now:
            time.sleep(t - now)

    def backoff(self, attempt: int) -> None:
        time.sleep(self.p.backoff_s * (2 ** attempt) * (0.75 + random.random() / 2))

    def _get(self, url: str, rate_limited: bool = True) -> requests.Response:
        last = None
        for attempt in range(self.p.retries + 1):
            if attempt:
                self.backoff(attempt - 1)
            if rate_limited:
                self.wait(url)
            try:
                r = self.session().get(url, timeout=self.p.timeout_s)
            except requests.RequestException as e:
                last = f"{type(e).__name__}: {e}"
                continue
            if r.status_code >= 500 or r.status_code == 429:
                last = f"HTTP {r.status_code}"
                continue
            if r.status_code >= 400:
                raise FetchError(f"HTTP {r.status_code} for {url}")
            return r
        raise FetchError(f"{url}: {last} after {self.p.retries + 1} attempts")

    def get_bytes(self, url: str, validate=None):
        """GET `url` (retries on 5xx, timeouts, and when `validate(bytes)` raises ImageError)."""
        last = None
        for attempt in range(self.p.retries + 1):
            if attempt:
                self.backoff(attempt - 1)
            r = self._get(url)
            data = r.content
            if "content-length" in r.headers and len(data) != int(r.headers["content-length"]):
                last = "short read"
                continue
            try:
                return validate(data) if validate else data
            except (TooLarge, BadShape) as e:  # a pixel bomb or a sliver stays one: no retry, and the product
                raise FetchError(f"{url}: {str(e).replace('<bytes>: ', '')}") from None  # keeps its other images
            except ImageError as e:
                last = str(e)
        raise FetchError(f"{url}: {last} after {self.p.retries + 1} attempts")


FAIL_FAST = 3  # pages failed (each after its retries) before any was read: the run stops, failed


class Crawl:
    """One crawl run of one spec. Use `crawl(spec, ...)` instead of this class."""

    def __init__(self, spec: Spec, *, browsers: int = 2, remote_url: str | None = None,
                 max_pages: int | None = None, image_workers: int = 4, fresh: bool = False,
                 run_id: int | None = None, trigger: str = "manual", catalog=None, progress: bool = True):
        from sketchshop.config import settings
        if browsers < 1:
            raise UserError("--browsers must be at least 1")
        self.spec, self.browsers, self.remote_url, self.max_pages = spec, browsers, remote_url, max_pages
        self.cat = catalog or open_catalog()
        self.ua = spec.politeness.user_agent or settings().user_agent
        self.polite = Polite(spec, self.ua)
        self.pool = ThreadPoolExecutor(max(1, image_workers), thread_name_prefix="img")
        self.tasks: queue.Queue[Task | None] = queue.Queue()
        self.results: queue.Queue = queue.Queue()
        self.outstanding = 0
        self.pages_taken = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.fresh, self.run_id, self.trigger, self.progress = fresh, run_id, trigger, progress
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.dup_index = None

    # ---------------------------------------------------------------- run bookkeeping
    def _take_lease(self) -> None:
        if self.cat.acquire_shop(self.shop_id, self.owner):
            return
        from catalog.models import Shop
        with self.cat.session() as s:
            holder = s.get(Shop, self.shop_id).lock_owner or ""
        host, _, rest = holder.partition(":")
        pid = rest.partition(":")[0]
        if host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid)):
            from catalog.models import Shop as S
            with self.cat.session() as s:
                s.execute(update(S).where(S.id == self.shop_id, S.lock_owner == holder).values(lock_owner=None))
            log.info("previous crawler %s is gone; taking over", holder)
            if self.cat.acquire_shop(self.shop_id, self.owner):
                return
        raise ShopBusy(f"a crawl of shop {self.spec.name!r} is already running ({holder}); "
                        f"one crawl per shop at a time")

    def _open_run(self) -> CrawlRun:
        with self.cat.session() as s:
            # we hold the shop's lease: a run of it still "running" lost its crawler without a word (kill -9)
            s.execute(update(CrawlRun).where(CrawlRun.shop_id == self.shop_id, CrawlRun.status == "running",
                                             or_(CrawlRun.owner.is_(None), CrawlRun.owner != self.owner))
                      .values(status="interrupted", error="its crawler stopped without closing the run"))
            run = None
            if self.run_id:
                run = s.get(CrawlRun, self.run_id)
            elif not self.fresh:
                run = s.scalar(select(CrawlRun).where(CrawlRun.shop_id == self.shop_id,
                                                      CrawlRun.status.in_(("running", "interrupted")))
                               .order_by(CrawlRun.id.desc()))
                if run is not None and run.base_url and run.base_url != self.spec.base_url:
                    # its pages' URLs name the other host: resuming would crawl there while saying here
                    log.warning("interrupted run %d of %s was at %s, not %s: starting a new run (the old one is "
                                "left as it was)", run.id, self.spec.name, run.base_url, self.spec.base_url)
                    run = None
                elif run is not None:
                    log.info("resuming interrupted run %d of %s", run.id, self.spec.name)
            if run is None:
                run = CrawlRun(spec=self.spec.path, trigger=self.trigger)
                s.add(run)
            run.shop_id, run.base_url = self.shop_id, self.spec.base_url
            # what it runs with, beside what it was queued with (a schedule's reindex must outlive a resume)
            run.options = {**(run.options or {}), "browsers": self.browsers, "max_pages": self.max_pages,
                           "remote_url": self.remote_url}
            run.status, run.owner, run.heartbeat_at = "running", self.owner, utcnow()
            run.started_at = run.started_at or utcnow()
            s.flush()
            if not s.scalar(select(CrawlTask.id).where(CrawlTask.run_id == run.id).limit(1)):
                # a run starting afresh (--fresh, or one queued) replaces the shop's interrupted runs at this address:
                # they would otherwise be resumed later, crawling a frontier this run has made stale
                s.execute(update(CrawlRun).where(CrawlRun.shop_id == self.shop_id, CrawlRun.status == "interrupted",
                                                 CrawlRun.base_url == self.spec.base_url, CrawlRun.id != run.id)
                          .values(status="partial", error=f"superseded by run {run.id}, which started afresh"))
                for url, facet in self.spec.start_tasks():
                    ok = self.polite.allowed(url)
                    s.add(CrawlTask(run_id=run.id, url=url, facet=facet, status="pending" if ok else "robots"))
                    run.skipped_robots += not ok
            pending = s.scalars(select(CrawlTask).where(CrawlTask.run_id == run.id, CrawlTask.status == "pending")
                                .order_by(CrawlTask.id)).all()
            for t in pending:
                self.tasks.put(Task(t.id, t.url, dict(t.facet)))
            self.outstanding = len(pending)
            return run

    def _failed_start(self, why: str) -> UserError:
        """Record a run that could not start (the shop is down) as failed, so `crawl runs` and the admin API say so."""
        with self.cat.session() as s:
            run = s.get(CrawlRun, self.run_id) if self.run_id else None
            if run is None:
                run = CrawlRun(spec=self.spec.path, trigger=self.trigger)
                s.add(run)
            run.shop_id, run.base_url, run.status, run.error = self.shop_id, self.spec.base_url, "failed", why
            run.started_at = run.started_at or utcnow()
            run.finished_at = utcnow()
        return UserError(why)

    def _heartbeat(self) -> None:
        while not self.stop.wait(10):
            if not self.cat.acquire_shop(self.shop_id, self.owner):
                log.error("lost the crawl lease of %s; stopping", self.spec.name)
                self.stop.set()
                return
            with self.cat.session() as s:
                s.get(CrawlRun, self.run.id).heartbeat_at = utcnow()

    # ---------------------------------------------------------------- products
    def _record(self, raw: dict, facet: dict, page_url: str) -> ProductRecord:
        """Map the shop's fields onto a ProductRecord and download its images (in the image pool)."""
        spec = self.spec
        fields = {**spec.listing.fields, **(spec.product_page.fields if spec.product_page else {})}
        for k, f in fields.items():
            if f.get("regex") and isinstance(raw.get(k), str):
                m = re.search(f["regex"], raw[k])
                raw[k] = (m.group(1) if m.groups() else m.group(0)) if m else None
        url = urljoin(page_url, raw["url"]) if raw.get("url") else ""
        pid = raw.get("id") or url
        price, cur = parse_price(raw.get("price"))
        rec = ProductRecord(external_id=str(pid), url=url, title=raw.get("title") or "", brand=raw.get("brand"),
                            price=price, currency=raw.get("currency") or cur, raw=dict(raw, facet=facet))
        for fname, shop_value in facet.items():
            mapping = spec.facets.get(fname, {})
            rec.labels.append((fname, mapping.get(shop_value), str(shop_value), f"facet:{fname}={shop_value}"))
        for fname, field_name in spec.label_fields.items():
            if fname not in facet and raw.get(field_name):
                shop_value = str(raw[field_name]).strip()
                mapping = {k.lower(): v for k, v in spec.facets[fname].items()}
                rec.labels.append((fname, mapping.get(shop_value.lower()), shop_value, f"field:{field_name}"))
        src = "product_page" if spec.needs_product_page() and "attributes" not in spec.listing.fields else "listing"
        for pair in raw.get("attributes") or []:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not pair[0]:
                continue
            name, value = str(pair[0]).strip(), str(pair[1] or "").strip()
            amap = spec.attributes.get(name)
            if amap:
                rec.labels.append((amap.name, amap.values.get(value), value, f"{src}:{name}"))
            else:
                key = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:40] or "attribute"
                rec.labels.append((key, None, value, f"{src}:{name}"))
        for img_url in [u for u in (raw.get("images") or []) if u][:8]:
            img_url = urljoin(page_url, img_url)
            if not self.polite.allowed(img_url):
                rec.raw.setdefault("robots_skipped", []).append(img_url)
                continue
            try:
                stored = self.polite.get_bytes(img_url, lambda b: self.cat.images.put(b, min_side=spec.min_image_side))
                rec.images.append((stored, img_url))
            except FetchError as e:
                rec.raw.setdefault("image_errors", []).append(str(e))
                log.warning("image failed: %s", e)
        return rec

    # ---------------------------------------------------------------- browsers
    # The page's HTTP status, which WebDriver does not give (Navigation Timing level 2; 0 or undefined: unknown).
    NAVIGATION_STATUS_JS = "const n = performance.getEntriesByType('navigation')[0]; return n ? n.responseStatus : null;"

    def _load(self, driver, url: str, page: PageSpec, card: str | None = None, more: str | None = None,
              nxt: str | None = None, navigate: bool = True) -> dict:
        """Open `url` (retrying on errors, truncation, timeouts) and read it. Returns the read dict."""
        from selenium.common.exceptions import TimeoutException, WebDriverException
        p = self.spec.politeness
        last = "?"
        for attempt in range(p.retries + 1):
            if attempt:  # said as it happens: a shop that hangs takes timeout_s per attempt
                log.info("%s: %s on attempt %d of %d; retrying", url, last, attempt, p.retries + 1)
                self.polite.backoff(attempt - 1)
            try:
                if navigate or attempt:
                    self.polite.wait(url)
                    driver.get(url)
                    status = driver.execute_script(self.NAVIGATION_STATUS_JS)
                    if status and 400 <= status < 500 and status not in (408, 429):  # the page is not there
                        raise FetchError(f"{url}: HTTP {status}")
                    if status and status >= 500:
                        last = f"HTTP {status}"
                        continue
                res = driver.execute_async_script(WAIT_AND_READ_JS, page.ready, page.error, page.page_complete,
                                                  card, page.fields, more, nxt, int(p.timeout_s * 1000))
            except TimeoutException as e:
                last = f"timeout ({e.msg})"
                continue
            except WebDriverException as e:
                last = (e.msg or str(e)).splitlines()[0]
                continue
            if res and res.get("state") == "ready":
                self._dismiss_banner(driver)
                return res
            last = (res or {}).get("state", "no answer")
        raise FetchError(f"{url}: {last} after {p.retries + 1} attempts")

    def _dismiss_banner(self, driver) -> None:
        sel = self.spec.cookie_banner
        if not sel or getattr(driver, "_sketchshop_consent", False):
            return
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.common.by import By
        try:
            for b in driver.find_elements(By.CSS_SELECTOR, sel):
                if b.is_displayed():
                    b.click()
                    driver._sketchshop_consent = True
        except WebDriverException as e:
            log.debug("cookie banner: %s", e.msg)

    def _listing(self, driver, task: Task) -> tuple[list[dict], str | None]:
        L = self.spec.listing
        res = self._load(driver, task.url, L, L.card, L.load_more, L.next_page)
        clicks = 0
        while res.get("more") and clicks < 500:
            from selenium.common.exceptions import WebDriverException
            from selenium.webdriver.common.by import By
            before = len(res["items"])
            try:
                driver.find_element(By.CSS_SELECTOR, L.load_more).click()
            except WebDriverException as e:
                raise FetchError(f"{task.url}: cannot click 'load more' ({(e.msg or '').splitlines()[0]})") from None
            clicks += 1
            res = self._load(driver, task.url, L, L.card, L.load_more, L.next_page, navigate=False)
            if len(res["items"]) <= before and res.get("more"):
                # the grid reported an error and kept its old cards: click again (bounded by clicks)
                continue
        nxt = urljoin(task.url, res["next"]) if res.get("next") else None
        return res["items"], nxt

    def _worker(self, idx: int) -> None:
        from .browser import make_driver
        try:
            driver = make_driver(self.remote_url, block=self.spec.block, user_agent=self.ua,
                                 page_load_timeout=self.spec.politeness.timeout_s * 3)
            driver.set_script_timeout(self.spec.politeness.timeout_s + 5)
        except UserError as e:
            self.results.put(("fatal", None, str(e)))
            return
        task = None
        try:
            while not self.stop.is_set():
                try:
                    task = self.tasks.get(timeout=0.2)
                except queue.Empty:
                    with self.lock:
                        if self.outstanding <= 0:
                            return
                    continue
                if task is None:
                    return
                with self.lock:
                    if self.max_pages is not None and self.pages_taken >= self.max_pages:
                        self.results.put(("skip", task, None))
                        task = None
                        continue
                    self.pages_taken += 1
                try:
                    items, nxt = self._listing(driver, task)
                    futures = []
                    for raw in items:
                        if self.spec.needs_product_page() and raw.get("url"):
                            purl = urljoin(task.url, raw["url"])
                            if self.polite.allowed(purl):
                                try:
                                    extra = self._load(driver, purl, self.spec.product_page)["items"][0]
                                    raw.update({k: v for k, v in extra.items() if raw.get(k) in (None, [], "")})
                                except FetchError as e:
                                    log.warning("product page failed: %s", e)
                                    raw["page_error"] = str(e)
                            else:
                                raw["robots_skipped_page"] = purl
                        futures.append(self.pool.submit(self._record, raw, task.facet, task.url))
                    self.results.put(("page", task, (futures, nxt)))
                    task = None
                    self.t_listed = time.monotonic()
                except FetchError as e:
                    log.warning("listing failed: %s", e)
                    self.results.put(("failed", task, str(e)))
                    task = None
                    driver = self._healthy(driver, make_driver)
        except Exception as e:  # a browser lost for good: the writer says why, once (not a thread's traceback)
            if not self.stop.is_set():
                if task is not None:
                    self.tasks.put(task)  # another browser takes its page
                self.results.put(("fatal", None, f"browser {idx}: {type(e).__name__}: {e}"))
        finally:
            with contextlib.suppress(Exception):
                driver.quit()

    def _healthy(self, driver, make_driver):
        """The same driver if it still answers, else a new one (a crashed Chromium must not fail the rest)."""
        from selenium.common.exceptions import WebDriverException
        try:
            driver.execute_script("return 1")
            return driver
        except WebDriverException:
            log.warning("browser stopped answering; starting a new one")
            try:
                driver.quit()
            except WebDriverException:
                pass
            d = make_driver(self.remote_url, block=self.spec.block, user_agent=self.ua,
                            page_load_timeout=self.spec.politeness.timeout_s * 3)
            d.set_script_timeout(self.spec.politeness.timeout_s + 5)
            return d

    # ---------------------------------------------------------------- writer (this thread)
    def _commit_page(self, task: Task, futures: list[Future], nxt: str | None, bar) -> None:
        recs = []
        failed = 0
        for f in futures:
            try:
                recs.append(f.result())
            except Exception as e:  # a bug or an unexpected error in one product: count it, keep going
                log.error("product failed: %s", e)
                failed += 1
        with self.cat.session() as s:
            run = s.get(CrawlRun, self.run.id)
            unknown = dict(run.unknown_labels or {})
            for rec in recs:
                if not rec.external_id or rec.external_id == "None":
                    failed += 1
                    continue
                state, n_img, n_dup = self.cat.upsert_product(s, self.shop_id, self.run.id, rec, self.dup_index)
                run.products += 1
                run.new += state == "new"
                run.updated += state == "updated"
                run.images_new += n_img
                run.near_duplicates += n_dup
                if rec.raw.get("image_errors") or (not rec.images and rec.raw.get("images")) or rec.raw.get("page_error"):
                    failed += 1
                run.skipped_robots += len(rec.raw.get("robots_skipped", [])) + bool(rec.raw.get("robots_skipped_page"))
                for name, value, raw, _src in rec.labels:
                    if value is None:
                        unknown[f"{name}={raw}"] = unknown.get(f"{name}={raw}", 0) + 1
            run.unknown_labels = unknown
            run.failed += failed
            run.pages += 1
            run.heartbeat_at = utcnow()
            t = s.get(CrawlTask, task.id)
            t.status, t.attempts = "done", t.attempts + 1
            new_task = None
            if nxt:
                if not self.polite.allowed(nxt):
                    run.skipped_robots += 1
                elif not s.scalar(select(CrawlTask.id).where(CrawlTask.run_id == run.id, CrawlTask.url == nxt)):
                    nt = CrawlTask(run_id=run.id, url=nxt, facet=task.facet)
                    s.add(nt)
                    s.flush()
                    new_task = Task(nt.id, nxt, task.facet)
        if new_task:
            with self.lock:
                self.outstanding += 1
            self.tasks.put(new_task)
        if bar is not None:
            bar.update(len(recs))

    def run_crawl(self) -> dict:
        spec = self.spec
        self.shop_id = self.cat.get_shop(spec.name, spec.base_url)
        self._take_lease()
        t0 = time.monotonic()
        hb = None
        try:
            self.cat.images.clean_temp()
            self.dup_index = self.cat.phash_index()
            if self.spec.politeness.obey_robots:
                self.polite.allowed(spec.base_url + "/")
                if self.polite.unreachable:
                    raise self._failed_start(f"cannot reach {spec.base_url}: robots.txt "
                                             f"{next(iter(self.polite.unreachable.values()))}; is the shop running?")
            self.run = self._open_run()
            hb = threading.Thread(target=self._heartbeat, daemon=True)
            hb.start()
            log.info("run %d: %d listing pages to crawl at %s with %d browser(s)", self.run.id, self.outstanding,
                     spec.base_url, self.browsers)
            workers = self.workers = [threading.Thread(target=self._worker, args=(i,), daemon=True,
                                                       name=f"browser-{i}") for i in range(self.browsers)]
            for w in workers:
                w.start()
            bar = None
            if self.progress:
                from tqdm import tqdm
                bar = tqdm(desc=f"crawl {spec.name}", unit="product", disable=None)
            fatal, fatal_msgs, read, failed = None, [], 0, 0
            while True:
                with self.lock:
                    if self.outstanding <= 0:
                        break
                if STOPPING.is_set():
                    raise Interrupted(f"run {self.run.id} stopped on request; it resumes on the next crawl of {spec.name}"
                                      + (" (the scheduler's, when it runs again)" if self.trigger != "manual" else ""))
                if not any(w.is_alive() for w in workers) and self.results.empty():
                    fatal = "; ".join(fatal_msgs) or "every browser stopped"
                    break
                try:
                    kind, task, payload = self.results.get(timeout=0.5)
                except queue.Empty:
                    continue
                if kind == "fatal":   # one browser could not start; the others carry on
                    log.error("browser: %s", payload)
                    fatal_msgs.append(payload)
                    continue
                if kind == "page":
                    self._commit_page(task, *payload, bar)
                    read += 1
                elif kind == "failed":
                    with self.cat.session() as s:
                        t = s.get(CrawlTask, task.id)
                        t.status, t.error, t.attempts = "failed", payload, t.attempts + 1
                        s.get(CrawlRun, self.run.id).failed += 1
                    failed += 1
                    if not read and failed >= FAIL_FAST:  # a shop that is down or a spec that does not fit it
                        fatal = (f"the first {failed} pages all failed, e.g. {payload}: stopped (is the shop up, and "
                                 "does the spec fit its pages?)")
                        break
                # "skip": over --max-pages, left pending
                with self.lock:
                    self.outstanding -= 1
            if bar is not None:
                bar.close()
            self.stop.set()
            for w in workers:
                w.join(timeout=30)
            with self.cat.session() as s:
                run = s.get(CrawlRun, self.run.id)
                pending = s.scalar(select(CrawlTask.id).where(CrawlTask.run_id == run.id,
                                                              CrawlTask.status == "pending").limit(1))
                done_any = s.scalar(select(CrawlTask.id).where(CrawlTask.run_id == run.id,
                                                               CrawlTask.status == "done").limit(1))
                first_error = s.scalar(select(CrawlTask.error).where(CrawlTask.run_id == run.id,
                                                                     CrawlTask.status == "failed").limit(1))
                if not fatal:  # nothing crawled is a broken shop or spec, not "done"
                    if first_error and not done_any:
                        fatal = f"every page failed, e.g. {first_error}"
                    elif not pending and not done_any and run.skipped_robots:
                        fatal = f"robots.txt disallows every page the spec starts from ({run.skipped_robots})"
                    elif not pending and done_any and not run.products:
                        fatal = (f"no product found on {run.pages} pages: does the spec's card selector match the "
                                 "shop's listing pages?")
                # pages that failed (the shop went down, say) are crawled again by the next run: not "done"
                run.status = "failed" if fatal else ("partial" if pending or first_error else "done")
                run.error = fatal
                run.finished_at = utcnow()
                untitled, unpriced = (s.scalar(select(func.count(Product.id)).where(Product.last_run_id == run.id, cond))
                                      for cond in (func.coalesce(Product.title, "") == "", Product.price.is_(None)))
            if untitled or unpriced:  # stored all the same (a shop may hide a price), but a spec's selector may be wrong
                log.warning("run %d: %d product(s) without a title and %d without a price: do the spec's title and "
                            "price selectors match the shop's pages?", self.run.id, untitled, unpriced)
            if fatal:
                log.error("run %d failed: %s", self.run.id, fatal)
        except BaseException as e:
            self.stop.set()
            if getattr(self, "run", None) is not None:
                with self.cat.session() as s:
                    run = s.get(CrawlRun, self.run.id)
                    run.status = "interrupted"
                    run.error = ("stopped (Ctrl-C or SIGTERM)" if isinstance(e, KeyboardInterrupt)
                                 else f"{type(e).__name__}: {e}")
            raise
        finally:
            self.stop.set()
            for w in getattr(self, "workers", []):   # let each browser quit (no orphaned Chromium)
                w.join(timeout=15)
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.cat.release_shop(self.shop_id, self.owner)
        res = self.cat.run(self.run.id)
        res["seconds"] = time.monotonic() - t0
        res["listing_seconds"] = (getattr(self, "t_listed", t0) - t0)   # when the browsers read their last page
        res["products_per_minute"] = res["products"] / max(res["seconds"], 1e-9) * 60
        return res


def _crawl_delay(robots_txt: str, user_agent: str) -> float | None:
    """Crawl-delay for our agent (its own group first, else '*'); decimals allowed, unlike urllib's."""
    token = user_agent.split("/")[0].strip().lower()
    delays: dict[str, float] = {}
    agents: list[str] = []
    in_rules = False
    for line in robots_txt.splitlines():
        key, _, value = line.split("#")[0].partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "user-agent":
            if in_rules:
                agents, in_rules = [], False
            agents.append(value.lower())
        elif key:
            in_rules = True
            if key == "crawl-delay":
                try:
                    for a in agents:
                        delays[a] = float(value)
                except ValueError:
                    pass
    mine = next((v for a, v in delays.items() if a != "*" and a in token), None)
    return mine if mine is not None else delays.get("*")


def crawl(spec: Spec, *, browsers: int = 2, remote_url: str | None = None, max_pages: int | None = None,
          image_workers: int = 4, fresh: bool = False, run_id: int | None = None, trigger: str = "manual",
          catalog=None, progress: bool = True) -> dict:
    """Crawl `spec` into the catalogue; returns the run (counts, status) plus seconds and products/minute.

    Resumes the shop's interrupted run unless `fresh`; `run_id` runs a queued run (scheduler).
    """
    return Crawl(spec, browsers=browsers, remote_url=remote_url, max_pages=max_pages, image_workers=image_workers,
                 fresh=fresh, run_id=run_id, trigger=trigger, catalog=catalog, progress=progress).run_crawl()
