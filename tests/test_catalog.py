"""The catalogue store: upserts, price history, filters, image store checks, migrations, stats CLI."""
from __future__ import annotations

import io
import json
import sqlite3

import numpy as np
import pytest
from PIL import Image


def jpeg(seed: int, size=(128, 160), shift=0) -> bytes:
    rng = np.random.default_rng(seed)
    a = (rng.random((size[1] // 16, size[0] // 16, 3)) * 255).astype(np.uint8)
    im = Image.fromarray(a).resize(size, Image.Resampling.BICUBIC)
    if shift:
        im = Image.fromarray(np.clip(np.asarray(im).astype(int) + shift, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def record(cat, pid, price=10.0, colour="red", img=None, **kw):
    from catalog import ProductRecord
    rec = ProductRecord(pid, url=f"http://shop/p/{pid}", title=f"Item {pid}", brand="B", price=price, currency="EUR",
                        labels=[("category", kw.get("category", "dress"), "Dresses", "facet:category=dresses"),
                                ("colour", colour, colour.title(), "facet:colour=x"),
                                ("pattern", "stripe", "Striped", "listing:Pattern"),
                                ("fit", None, "Slim", "listing:Fit")])
    if img is not None:
        rec.images.append((cat.images.put(img), f"http://shop/img/{pid}.jpg"))
    return rec


def test_upsert_price_history_and_queries(catalog_db):
    from catalog import open_catalog
    from sketchshop.errors import UserError
    cat = open_catalog()
    assert cat.engine.dialect.name == catalog_db
    sid = cat.get_shop("s1", "http://shop")
    with cat.session() as s:
        assert cat.upsert_product(s, sid, 1, record(cat, "a", img=jpeg(1)))[0] == "new"
        assert cat.upsert_product(s, sid, 1, record(cat, "b", 30.0, "blue", img=jpeg(2), category="t-shirt"))[0] == "new"
    with cat.session() as s:
        assert cat.upsert_product(s, sid, 2, record(cat, "a", img=jpeg(1)))[0] == "unchanged"
        assert cat.upsert_product(s, sid, 2, record(cat, "b", 25.0, "blue", img=jpeg(2), category="t-shirt"))[0] == "updated"
    assert cat.products().total == 2
    assert [p["external_id"] for p in cat.products(colour="Blue").items] == ["b"]
    assert [p["external_id"] for p in cat.products(category="top").items] == ["b"]      # coarse filter
    assert [p["external_id"] for p in cat.products(max_price=20).items] == ["a"]
    assert cat.products(shop="nope").total == 0
    assert cat.products(per_page=1, page=2).items[0]["external_id"] == "b"
    with pytest.raises(UserError):
        cat.products(colour="octarine")
    with pytest.raises(UserError):
        cat.products(category="spaceship")
    b = cat.product_by_key("s1", "b")
    assert [x["price"] for x in b["prices"]] == [30.0, 25.0]
    assert b["attributes"] == {"pattern": "stripe"} and b["category"] == "t-shirt"
    assert {x["name"]: x["value"] for x in b["labels"]}["fit"] is None
    path = cat.image_path(b["images"][0]["sha256"])
    assert path.read_bytes() == jpeg(2)
    assert cat.image_path("0" * 64) is None
    assert cat.product(10**6) is None
    assert [p["external_id"] for p in cat.iter_products()] == ["a", "b"]
    st = cat.stats()
    assert (st["products"], st["images"], st["shops"]) == (2, 2, 1)
    assert st["by_category"] == {"dress": 1, "t-shirt": 1} and st["by_colour"] == {"red": 1, "blue": 1}


def test_image_store_rejects_bad_images_and_finds_near_duplicates(data_dir, catalog_db):
    from catalog import open_catalog
    from sketchshop.errors import ImageError
    cat = open_catalog()
    data = jpeg(3)
    with pytest.raises(ImageError):
        cat.images.put(data[: len(data) // 2])             # truncated
    with pytest.raises(ImageError):
        cat.images.put(b"not an image at all")
    with pytest.raises(ImageError):
        cat.images.put(jpeg(4, size=(40, 40)))             # below the minimum side
    assert not list((data_dir / "images").glob("*/*"))   # nothing half-stored
    sid = cat.get_shop("s")
    idx = cat.phash_index()
    with cat.session() as s:
        cat.upsert_product(s, sid, 1, record(cat, "x", img=data), idx)
        _state, n_new, n_dup = cat.upsert_product(s, sid, 1, record(cat, "y", img=jpeg(3, shift=12)), idx)
        assert (n_new, n_dup) == (1, 1)                    # brighter copy: new bytes, same picture
        _state, n_new, n_dup = cat.upsert_product(s, sid, 1, record(cat, "z", img=jpeg(99)), idx)
        assert (n_new, n_dup) == (1, 0)
    assert cat.stats()["near_duplicate_images"] == 1


def test_additive_migration_adds_missing_columns(data_dir):
    from catalog import open_catalog
    db = data_dir / "catalog.db"
    data_dir.mkdir(parents=True)
    with sqlite3.connect(db) as c:   # an older catalogue: products without brand/currency
        c.execute("create table shops (id integer primary key, name varchar(100) unique, base_url varchar(500), "
                  "created_at datetime)")
        c.execute("create table products (id integer primary key, shop_id integer, external_id varchar(200), "
                  "url varchar(1000), title varchar(500), price float, category varchar(40), colour varchar(40), "
                  "first_seen datetime, last_seen datetime, last_run_id integer, raw json)")
        c.execute("insert into shops (id, name, base_url) values (1, 'old', '')")
        c.execute("insert into products (shop_id, external_id, url, title, price, raw) values (1, 'k', '', 'T', 5, '{}')")
    cat = open_catalog()
    with sqlite3.connect(db) as c:
        cols = {r[1] for r in c.execute("pragma table_info(products)")}
        assert {"brand", "currency"} <= cols
        assert c.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert cat.products().items[0]["title"] == "T"          # old rows kept


def test_catalog_stats_cli(data_dir, catalog_db, capsys):
    from sketchshop.cli import main
    from catalog import open_catalog
    cat = open_catalog()
    sid = cat.get_shop("s")
    with cat.session() as s:
        cat.upsert_product(s, sid, 1, record(cat, "a", img=jpeg(5)))
    assert main(["catalog", "stats", "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["products"] == 1 and st["images"] == 1 and st["shops"] == 1
    assert st["by_category"] == {"dress": 1} and st["by_colour"] == {"red": 1}
    bad = data_dir / "junk.db"
    bad.write_bytes(b"garbage" * 100)
    assert main(["catalog", "stats", "--db", f"sqlite:///{bad}"]) == 2
    assert "cannot open the catalogue" in capsys.readouterr().err
    assert bad.read_bytes() == b"garbage" * 100           # never touched


def test_index_is_built_from_either_database(data_dir, catalog_db):
    """The index reads the catalogue through SQLAlchemy alone: a PostgreSQL catalogue serves as SQLite does."""
    from conftest import indexed_studio_catalog
    cat, searcher, products, ids, info = indexed_studio_catalog(data_dir, 8, 3)
    assert cat.engine.dialect.name == catalog_db and info["products"] == 8
    out = searcher.search(products[2].image, kind="photo", top_k=3)
    assert ids[2] in [h.product_id for _, hits in out["items"] for h in hits]
    cat.close()


def test_schema_compiles_for_postgresql():
    """The same models must create tables on PostgreSQL (no server needed to check the DDL)."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateTable

    from catalog.models import Base
    ddl = "\n".join(str(CreateTable(t).compile(dialect=postgresql.dialect())) for t in Base.metadata.sorted_tables)
    assert "CREATE TABLE products" in ddl and "JSON" in ddl and "sqlite" not in ddl.lower()
