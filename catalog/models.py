"""SQLAlchemy 2.x ORM models of the catalogue: shops, products, prices, images, labels, crawl
runs, crawl tasks (the resumable frontier) and schedules.

Portable SQL only (SQLite and PostgreSQL): no SQLite-specific types or statements here.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Naive UTC (portable across SQLite and PostgreSQL `timestamp without time zone`)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Shop(Base):
    __tablename__ = "shops"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    base_url: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # One crawl per shop at a time: a lease taken with an atomic UPDATE (see store.acquire_shop).
    lock_owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lock_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("shop_id", "external_id"),
                      Index("ix_products_cat_col", "category", "colour"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(1000), default="")
    title: Mapped[str] = mapped_column(String(500), default="")
    brand: Mapped[str | None] = mapped_column(String(200), nullable=True)
    price: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    currency: Mapped[str | None] = mapped_column(String(8), nullable=True)
    category: Mapped[str | None] = mapped_column(String(40), nullable=True)   # fine vocabulary name
    colour: Mapped[str | None] = mapped_column(String(40), nullable=True)     # vocabulary name
    first_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    raw: Mapped[dict] = mapped_column(JSON, default=dict)                      # fields as the shop shows them

    shop: Mapped[Shop] = relationship()
    images: Mapped[list[ProductImage]] = relationship(order_by="ProductImage.position",
                                                      cascade="all, delete-orphan")
    labels: Mapped[list[Label]] = relationship(cascade="all, delete-orphan")
    prices: Mapped[list[Price]] = relationship(order_by="Price.seen_at", cascade="all, delete-orphan")


class Price(Base):
    """Price history: a row when a product is first seen and whenever its price changes."""
    __tablename__ = "prices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    price: Mapped[float | None] = mapped_column(Float, nullable=True)
    currency: Mapped[str | None] = mapped_column(String(8), nullable=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Image(Base):
    """A stored image, content-addressed: the file is images/<sha[:2]>/<sha>.<ext>."""
    __tablename__ = "images"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(String(200))              # relative to the images directory
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(Integer)
    phash: Mapped[str] = mapped_column(String(16), index=True)  # 64-bit DCT hash, hex
    duplicate_of: Mapped[str | None] = mapped_column(String(64), nullable=True)  # near-duplicate
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ProductImage(Base):
    __tablename__ = "product_images"
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_sha: Mapped[str] = mapped_column(ForeignKey("images.sha256"), index=True)
    source_url: Mapped[str] = mapped_column(String(1000), default="")
    image: Mapped[Image] = relationship()


class Label(Base):
    """One label of a product: the vocabulary value (None when unmapped), the shop's raw value and
    where it came from (a facet of the listing URL, the card, or the product page)."""
    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("product_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    name: Mapped[str] = mapped_column(String(40))       # category, colour, sleeve, ... or a raw name
    value: Mapped[str | None] = mapped_column(String(40), nullable=True)
    raw: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(200), default="")


class CrawlRun(Base):
    __tablename__ = "crawl_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shop_id: Mapped[int | None] = mapped_column(ForeignKey("shops.id"), nullable=True, index=True)
    spec: Mapped[str] = mapped_column(String(1000))
    base_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    options: Mapped[dict] = mapped_column(JSON, default=dict)       # browsers, max_pages, remote_url
    trigger: Mapped[str] = mapped_column(String(40), default="manual")  # manual, schedule:<name>, api
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    # queued -> running -> done | failed | interrupted (a crash is found by a stale heartbeat)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    products: Mapped[int] = mapped_column(Integer, default=0)
    new: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    skipped_robots: Mapped[int] = mapped_column(Integer, default=0)
    images_new: Mapped[int] = mapped_column(Integer, default=0)
    near_duplicates: Mapped[int] = mapped_column(Integer, default=0)
    unknown_labels: Mapped[dict] = mapped_column(JSON, default=dict)  # "name=raw" -> count
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class CrawlTask(Base):
    """The persisted frontier of a run, so a killed crawl resumes where it stopped."""
    __tablename__ = "crawl_tasks"
    __table_args__ = (UniqueConstraint("run_id", "url"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("crawl_runs.id"), index=True)
    url: Mapped[str] = mapped_column(String(1000))
    facet: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending, done, failed, robots
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class Schedule(Base):
    __tablename__ = "schedules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    spec: Mapped[str] = mapped_column(String(1000))
    cron: Mapped[str] = mapped_column(String(100))                  # 5-field crontab
    base_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    reindex: Mapped[bool] = mapped_column(Boolean, default=False)   # run `index build` after a crawl
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_fired_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
