"""The demo shop the crawler crawls offline (`sketchshop shop serve`).

    from crawler.shop import build_products, create_app, ShopServer
    products = build_products(n=40, seed=3)              # ground truth + JPEGs (studio by default)
    with ShopServer(create_app(products, layout="a")) as url:
        ...                                              # crawl `url`; ShopServer.hits lists requests
"""
from .app import ShopServer, create_app
from .products import ATTRIBUTE_NAMES, CATEGORY_NAMES, COLOUR_NAMES, ShopProduct, build_products

__all__ = ["build_products", "create_app", "ShopServer", "ShopProduct", "CATEGORY_NAMES", "COLOUR_NAMES",
           "ATTRIBUTE_NAMES"]
