"""The product catalogue: what every search answer links to.

Small surface, used by the crawler, the dataset builders and the server::

    from catalog import open_catalog
    cat = open_catalog()                        # settings().database_url (SQLite WAL in the data dir)
    page = cat.products(category="dress", colour="red", shop=None,
                        min_price=None, max_price=100, page=1, per_page=50)
    page.items, page.total                      # list of JSON-ready dicts, total matches
    cat.product(42)                             # one product: url, shop, images, labels, prices; or None
    cat.image_path(sha256)                      # Path in the content-addressed store, or None
    cat.iter_products()                         # every product (full dicts), for builders and indexers
    cat.stats()                                 # counts: products, images, shops, by_category, by_colour
    cat.runs(shop=None, limit=20); cat.run(7)   # crawl runs with their counts
    cat.schedules(); cat.add_schedule(name, spec, cron, base_url=None, reindex=False)
    cat.remove_schedule(name)
    cat.request_crawl(spec, base_url=None)      # queue a crawl; the scheduler process runs it

Unknown category or colour filters raise `sketchshop.errors.UserError` (a 400 in the API).
Any SQLAlchemy URL works (`SKETCHSHOP_DB_URL=postgresql+psycopg://...`); tables and additive
column migrations are created by code when the catalogue is opened. Images live under
`<data_dir>/images/<sha[:2]>/<sha256>.<ext>` (see `catalog.images`). The search index over the
catalogue lives in `catalog/index.py` (separate module; not imported here).
"""
from .images import ImageStore, StoredImage
from .store import Catalog, Page, ProductRecord, open_catalog

__all__ = ["open_catalog", "Catalog", "Page", "ProductRecord", "ImageStore", "StoredImage"]
