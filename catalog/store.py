"""The catalogue store: open a database, read products, write crawled products.

See the package docstring (`catalog/__init__.py`) for the public surface.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, event, func, inspect, or_, select, text, update
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from sketchshop import vocab
from sketchshop.errors import UserError

from .images import ImageStore, PhashIndex, StoredImage
from .models import (Base, CrawlRun, CrawlTask, Image, Label, Price, Product, ProductImage, Schedule,
                     Shop, utcnow)

log = logging.getLogger(__name__)


@dataclass
class ProductRecord:
    """One product as a crawler saw it. Labels are (name, value-or-None, raw, source)."""
    external_id: str
    url: str = ""
    title: str = ""
    brand: str | None = None
    price: float | None = None
    currency: str | None = None
    labels: list[tuple[str, str | None, str, str]] = field(default_factory=list)
    images: list[tuple[StoredImage, str]] = field(default_factory=list)   # (stored, source url)
    raw: dict = field(default_factory=dict)


@dataclass
class Page:
    items: list[dict]
    total: int
    page: int
    per_page: int


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _migrate(engine) -> None:
    """Create missing tables, then add missing (nullable) columns: additive migrations by code."""
    Base.metadata.create_all(engine)
    insp = inspect(engine)
    with engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            have = {c["name"] for c in insp.get_columns(table.name)}
            for col in table.columns:
                if col.name not in have:
                    ddl = col.type.compile(dialect=engine.dialect)
                    log.info("migrating: adding column %s.%s %s", table.name, col.name, ddl)
                    conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN {col.name} {ddl}'))


class Catalog:
    def __init__(self, url: str | None = None, images_dir=None, *, create: bool = True):
        from sketchshop.config import settings
        s = settings()
        self.url = url or s.database_url
        sqlite_file = Path(self.url[len("sqlite:///"):]) if self.url.startswith("sqlite:///") else None
        if not create and sqlite_file is not None and not sqlite_file.is_file():  # a reader never makes an empty one
            raise UserError(f"no catalogue at {sqlite_file}: crawl a shop first (`sketchshop crawl run`), or run `make demo`")
        self.images = ImageStore(images_dir or s.data_dir / "images")
        try:
            if sqlite_file is not None:
                sqlite_file.parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(self.url, pool_pre_ping=True)
        except (ArgumentError, NoSuchModuleError) as e:
            raise UserError(f"bad database URL {self.url!r}: {e}") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            _migrate(self.engine)
        except (OperationalError, DatabaseError) as e:
            raise UserError(f"cannot open the catalogue at {self.url}: {e.orig}") from None
        self._Session = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def session(self):
        """A transaction: committed when the block succeeds, rolled back otherwise."""
        with self._Session() as s, s.begin():
            yield s

    # ------------------------------------------------------------------ reading
    def products(self, *, category: str | None = None, colour: str | None = None, shop: str | None = None,
                 min_price: float | None = None, max_price: float | None = None, currency: str | None = None,
                 q: str | None = None, page: int = 1, per_page: int = 50) -> Page:
        """Filtered, paged product list (newest first); `q` is a plain substring of the title or brand.
        Unknown category/colour raise UserError."""
        page, per_page = max(1, int(page)), max(1, min(500, int(per_page)))
        stmt = select(Product)
        try:
            if category:
                c = vocab.category(category)
                cats = [k for k, v in vocab.FINE_TO_COARSE.items() if v == c] if c not in vocab.FINE_CATEGORIES else [c]
                stmt = stmt.where(Product.category.in_(cats))
            if colour:
                stmt = stmt.where(Product.colour == vocab.colour(colour))
            if currency:
                stmt = stmt.where(Product.currency == vocab.currency(currency))
        except vocab.VocabError as e:
            raise UserError(str(e)) from None
        if shop:
            stmt = stmt.join(Shop).where(Shop.name == shop)
        if min_price is not None:
            stmt = stmt.where(Product.price >= float(min_price))
        if max_price is not None:
            stmt = stmt.where(Product.price <= float(max_price))
        if min_price is not None and max_price is not None and min_price > max_price:
            raise UserError(f"min price {min_price} is above max price {max_price}")
        if q:
            like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(or_(Product.title.ilike(like, escape="\\"), Product.brand.ilike(like, escape="\\")))
        with self.session() as s:
            total = s.scalar(select(func.count()).select_from(stmt.subquery()))
            rows = s.scalars(stmt.options(selectinload(Product.images), selectinload(Product.labels),
                                          selectinload(Product.shop))
                             .order_by(Product.id).offset((page - 1) * per_page).limit(per_page)).all()
            return Page([_product_dict(p) for p in rows], total, page, per_page)

    def product(self, product_id: int) -> dict | None:
        """One product with its images, labels, shop and price history; None if absent."""
        with self.session() as s:
            p = s.get(Product, int(product_id))
            return _product_dict(p, full=True) if p else None

    def product_by_key(self, shop: str, external_id: str) -> dict | None:
        with self.session() as s:
            p = s.scalar(select(Product).join(Shop).where(Shop.name == shop, Product.external_id == external_id))
            return _product_dict(p, full=True) if p else None

    def iter_products(self, shop: str | None = None, batch: int = 500):
        """Every product (full dicts), in id order, in batches: for dataset builders and indexers."""
        last = 0
        while True:
            with self.session() as s:
                stmt = select(Product).where(Product.id > last)
                if shop:
                    stmt = stmt.join(Shop).where(Shop.name == shop)
                rows = s.scalars(stmt.options(selectinload(Product.images).selectinload(ProductImage.image),
                                              selectinload(Product.labels), selectinload(Product.shop),
                                              selectinload(Product.prices))
                                 .order_by(Product.id).limit(batch)).all()
                out = [_product_dict(p, full=True) for p in rows]
            if not out:
                return
            yield from out
            last = out[-1]["id"]

    def image_path(self, sha256: str) -> Path | None:
        """File of a stored image by its sha256, or None."""
        with self.session() as s:
            im = s.get(Image, sha256)
            return self.images.path(sha256, im.path) if im else None

    def shops(self) -> list[dict]:
        with self.session() as s:
            rows = s.execute(select(Shop, func.count(Product.id)).outerjoin(Product).group_by(Shop.id)).all()
            return [{"id": sh.id, "name": sh.name, "base_url": sh.base_url, "products": n} for sh, n in rows]

    def stats(self) -> dict:
        with self.session() as s:
            def grouped(col):
                return {k or "unknown": n for k, n in s.execute(select(col, func.count()).group_by(col)).all()}
            return {
                "products": s.scalar(select(func.count(Product.id))),
                "images": s.scalar(select(func.count(Image.sha256))),
                "near_duplicate_images": s.scalar(select(func.count(Image.sha256)).where(Image.duplicate_of.is_not(None))),
                "shops": s.scalar(select(func.count(Shop.id))),
                "by_category": grouped(Product.category),
                "by_colour": grouped(Product.colour),
                "by_shop": {n: c for n, c in s.execute(select(Shop.name, func.count(Product.id))
                                                       .outerjoin(Product).group_by(Shop.name)).all()},
                "unmapped_labels": s.scalar(select(func.count(Label.id)).where(Label.value.is_(None))),
                "crawl_runs": s.scalar(select(func.count(CrawlRun.id))),
                "schedules": s.scalar(select(func.count(Schedule.id))),
            }

    def runs(self, shop: str | None = None, status: str | None = None, limit: int = 20) -> list[dict]:
        with self.session() as s:
            stmt = select(CrawlRun).order_by(CrawlRun.id.desc()).limit(limit)
            if shop:
                stmt = stmt.join(Shop).where(Shop.name == shop)
            if status:
                stmt = stmt.where(CrawlRun.status == status)
            return [_run_dict(r, s) for r in s.scalars(stmt)]

    def run(self, run_id: int) -> dict | None:
        with self.session() as s:
            r = s.get(CrawlRun, int(run_id))
            return _run_dict(r, s) if r else None

    # ------------------------------------------------------------------ crawls and schedules
    def request_crawl(self, spec: str, *, base_url: str | None = None, options: dict | None = None,
                      trigger: str = "api") -> dict:
        """Queue a crawl for the scheduler process (`sketchshop scheduler`) to run. Never crawls here.
        UserError for options the crawl would not take (`crawler.schedule.crawl_options`)."""
        from crawler.schedule import crawl_options
        options = crawl_options(options)
        with self.session() as s:
            r = CrawlRun(spec=str(spec), base_url=base_url, options=options, trigger=trigger,
                         status="queued")
            s.add(r)
            s.flush()
            return _run_dict(r, s)

    def schedules(self) -> list[dict]:
        with self.session() as s:
            return [_schedule_dict(x) for x in s.scalars(select(Schedule).order_by(Schedule.name))]

    def add_schedule(self, name: str, spec: str, cron: str, *, base_url: str | None = None,
                     options: dict | None = None, reindex: bool | None = None) -> dict:
        """`reindex` may come on its own or as `options.reindex`, not as both with different values."""
        from crawler.schedule import check_schedule_name, crawl_options, parse_cron
        check_schedule_name(name)
        parse_cron(cron)
        options = crawl_options(options)
        if reindex is not None and not isinstance(reindex, bool):
            raise UserError(f"reindex: true or false, not {reindex!r}")
        if reindex is not None and options.get("reindex", reindex) != reindex:
            raise UserError("reindex and options.reindex disagree: give it once")
        reindex = bool(options.pop("reindex", reindex))
        with self.session() as s:
            same = s.scalar(select(Schedule.name).where(func.lower(Schedule.name) == name.lower()))
            if same:  # 'nightly' and 'Nightly' side by side would be one slip of the shift key apart
                raise UserError(f"schedule {same!r} already exists (remove it first)")
            x = Schedule(name=name, spec=str(spec), cron=cron, base_url=base_url, options=options,
                         reindex=reindex)
            s.add(x)
            s.flush()
            return _schedule_dict(x)

    def remove_schedule(self, name: str) -> None:
        with self.session() as s:
            x = s.scalar(select(Schedule).where(func.lower(Schedule.name) == name.lower()))  # names ignore case
            if not x:
                raise UserError(f"no schedule named {name!r}")
            s.delete(x)

    # ------------------------------------------------------------------ writing (crawler side)
    def get_shop(self, name: str, base_url: str = "") -> int:
        with self.session() as s:
            sh = s.scalar(select(Shop).where(Shop.name == name))
            if not sh:
                sh = Shop(name=name, base_url=base_url)
                s.add(sh)
            elif base_url:
                sh.base_url = base_url
            s.flush()
            return sh.id

    def acquire_shop(self, shop_id: int, owner: str, ttl_s: float = 60) -> bool:
        """Take (or renew) the one-crawl-per-shop lease with an atomic UPDATE; False if held elsewhere."""
        now = utcnow()
        with self.session() as s:
            res = s.execute(update(Shop).where(
                Shop.id == shop_id,
                or_(Shop.lock_owner.is_(None), Shop.lock_until < now, Shop.lock_owner == owner))
                .values(lock_owner=owner, lock_until=now + timedelta(seconds=ttl_s)))
            return res.rowcount == 1

    def release_shop(self, shop_id: int, owner: str) -> None:
        with self.session() as s:
            s.execute(update(Shop).where(Shop.id == shop_id, Shop.lock_owner == owner)
                      .values(lock_owner=None, lock_until=None))

    def phash_index(self) -> PhashIndex:
        with self.session() as s:
            return PhashIndex(dict(s.execute(select(Image.sha256, Image.phash)
                                             .where(Image.duplicate_of.is_(None))).all()))

    def upsert_product(self, s: Session, shop_id: int, run_id: int | None, rec: ProductRecord,
                       dup_index: PhashIndex | None = None) -> tuple[str, int, int]:
        """Insert or update one product (keyed by shop + external id) inside session `s`.

        Returns (state, new images, near-duplicates) with state 'new' | 'updated' | 'unchanged'.
        """
        now = utcnow()
        p = s.scalar(select(Product).where(Product.shop_id == shop_id, Product.external_id == rec.external_id)
                     .options(selectinload(Product.images), selectinload(Product.labels)))
        state = "unchanged"
        if p is None:
            p = Product(shop_id=shop_id, external_id=rec.external_id, first_seen=now)
            s.add(p)
            state = "new"
        before = (p.url, p.title, p.brand, p.price, p.currency, p.category, p.colour,
                  sorted((x.name, x.value, x.raw) for x in p.labels), [x.image_sha for x in p.images])
        price_changed = state == "new" or (p.price, p.currency) != (rec.price, rec.currency)
        p.url, p.title, p.brand, p.price, p.currency = rec.url, rec.title, rec.brand, rec.price, rec.currency
        p.raw, p.last_seen, p.last_run_id = rec.raw, now, run_id
        labels = {x.name: x for x in p.labels}
        for name, value, raw, source in rec.labels:
            lab = labels.get(name)
            if lab is None:
                lab = Label(name=name)
                p.labels.append(lab)
                labels[name] = lab
            lab.value, lab.raw, lab.source = value, raw, source
        p.category = labels["category"].value if "category" in labels else None
        p.colour = labels["colour"].value if "colour" in labels else None
        n_new = n_dup = 0
        shas = []
        for stored, _src in rec.images:
            if stored.sha256 not in shas and s.get(Image, stored.sha256) is None:
                dup = dup_index.nearest(stored.phash) if dup_index else None
                s.add(Image(sha256=stored.sha256, path=stored.path, width=stored.width, height=stored.height,
                            bytes=stored.bytes, phash=stored.phash, duplicate_of=dup))
                n_new += 1
                n_dup += dup is not None
                if dup_index is not None and dup is None:
                    dup_index.add(stored.sha256, stored.phash)
            shas.append(stored.sha256)
        if [x.image_sha for x in p.images] != shas:
            p.images.clear()
            s.flush()
            p.images.extend(ProductImage(position=i, image_sha=sha, source_url=src)
                            for i, (sha, (_st, src)) in enumerate(zip(shas, rec.images)))
        if price_changed:
            p.prices.append(Price(price=rec.price, currency=rec.currency, seen_at=now, run_id=run_id))
        s.flush()
        after = (p.url, p.title, p.brand, p.price, p.currency, p.category, p.colour,
                 sorted((x.name, x.value, x.raw) for x in p.labels), [x.image_sha for x in p.images])
        if state != "new" and after != before:
            state = "updated"
        return state, n_new, n_dup


def _iso(d: datetime | None) -> str | None:
    return d.isoformat(timespec="seconds") + "Z" if d else None


def _product_dict(p: Product, full: bool = False) -> dict:
    d = {
        "id": p.id, "shop": p.shop.name, "external_id": p.external_id, "url": p.url, "title": p.title,
        "brand": p.brand, "price": p.price, "currency": p.currency, "category": p.category,
        "colour": p.colour,
        "attributes": {x.name: x.value for x in p.labels
                       if x.name in vocab.ATTRIBUTES and x.value is not None},
        "images": [x.image_sha for x in p.images],
        "last_seen": _iso(p.last_seen),
    }
    if full:
        d["images"] = [{"sha256": x.image_sha, "source_url": x.source_url, "width": x.image.width,
                        "height": x.image.height, "path": x.image.path, "duplicate_of": x.image.duplicate_of}
                       for x in p.images]
        d["labels"] = [{"name": x.name, "value": x.value, "raw": x.raw, "source": x.source}
                       for x in sorted(p.labels, key=lambda x: x.name)]
        d["prices"] = [{"price": x.price, "currency": x.currency, "seen_at": _iso(x.seen_at), "run_id": x.run_id}
                       for x in p.prices]
        d["first_seen"] = _iso(p.first_seen)
    return d


_RUN_COUNTS = ("pages", "products", "new", "updated", "failed", "skipped_robots", "images_new",
               "near_duplicates")


def _run_dict(r: CrawlRun, s: Session) -> dict:
    shop = s.get(Shop, r.shop_id).name if r.shop_id else None
    d = {"id": r.id, "shop": shop, "spec": r.spec, "base_url": r.base_url, "trigger": r.trigger,
         "status": r.status, "options": r.options, "created_at": _iso(r.created_at),
         "started_at": _iso(r.started_at), "finished_at": _iso(r.finished_at),
         "heartbeat_at": _iso(r.heartbeat_at), "unknown_labels": r.unknown_labels, "error": r.error}
    d.update({k: getattr(r, k) for k in _RUN_COUNTS})
    return d


def _schedule_dict(x: Schedule) -> dict:
    return {"id": x.id, "name": x.name, "spec": x.spec, "cron": x.cron, "base_url": x.base_url,
            "options": x.options, "reindex": x.reindex, "enabled": x.enabled,
            "last_fired_at": _iso(x.last_fired_at), "last_run_id": x.last_run_id}


def open_catalog(url: str | None = None, images_dir=None, *, create: bool = True) -> Catalog:
    """Open (creating, unless `create` is False, and migrating) the catalogue at `url` (default:
    settings().database_url)."""
    return Catalog(url, images_dir, create=create)


__all__ = ["Catalog", "Page", "ProductRecord", "open_catalog", "CrawlRun", "CrawlTask", "Schedule"]
