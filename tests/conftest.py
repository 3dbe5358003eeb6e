"""Shared fixtures. Real data tests read ../shared/data and skip, with the reason, when it is absent."""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SKETCHSHOP_SHARED_DATA", ROOT.parent / "shared" / "data"))
# The files the product builds and caches (ONNX copies, the demo shop's stock) go to a cache of the tests' own,
# kept between runs, never to the user's: the tests' throw-away weights would push the user's out of it.
os.environ.setdefault("SKETCHSHOP_CACHE_DIR", str(ROOT / ".pytest_cache" / "sketchshop"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "clothing-small").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set SKETCHSHOP_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """A fresh SKETCHSHOP_DATA_DIR for one test."""
    from sketchshop.config import settings
    d = tmp_path / "var"
    monkeypatch.setenv("SKETCHSHOP_DATA_DIR", str(d))
    monkeypatch.delenv("SKETCHSHOP_DB_URL", raising=False)
    settings.cache_clear()
    yield d
    settings.cache_clear()


# ---------------------------------------------------------------- PostgreSQL, for real
def _postgres_bin() -> Path | None:
    import glob
    import shutil
    found = shutil.which("initdb") or max(glob.glob("/usr/lib/postgresql/*/bin/initdb"), default=None)
    return Path(found).resolve().parent if found else None


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster on a Unix socket (no TCP), for the session: yields (socket dir, port).

    Skips, saying why, without the server binaries (Debian: `apt-get install postgresql`) or the driver.
    """
    import subprocess
    pytest.importorskip("psycopg", reason="the PostgreSQL driver psycopg is not installed")
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    import shutil
    import tempfile
    # under /tmp itself: the unprivileged user must reach it, and a socket path must stay short
    root = Path(tempfile.mkdtemp(prefix="sketchshop-pg-"))
    as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []  # postgres refuses to run as root
    if as_user:
        os.chmod(root, 0o777)
    data, port = root / "data", 5432  # no TCP: the port only names the socket file in `root`

    def pg(program, *args):
        return subprocess.run([*as_user, str(bin_dir / program), *args], capture_output=True, text=True, timeout=120)
    r = pg("initdb", "-D", str(data), "-A", "trust", "-U", "sketchshop", "-E", "UTF8", "--no-sync")
    if r.returncode:
        pytest.skip(f"initdb failed: {r.stderr.strip()[-300:]}")
    r = pg("pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "start",
           "-o", f"-k {root} -p {port} -c listen_addresses= -c fsync=off")
    if r.returncode:
        log = root / "log"
        pytest.skip(f"PostgreSQL did not start: {(log.read_text() if log.exists() else r.stderr)[-300:]}")
    yield root, port
    pg("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
    shutil.rmtree(root, ignore_errors=True)


_DB_NUMBERS = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_db(request, data_dir, monkeypatch) -> str:
    """Run a catalogue test on SQLite (the default) and again on a fresh PostgreSQL database,
    through `SKETCHSHOP_DB_URL` as a user sets it. Returns the dialect name."""
    if request.param == "postgresql":
        import psycopg

        from sketchshop.config import settings
        sock, port = request.getfixturevalue("postgres_server")
        name = f"t{next(_DB_NUMBERS)}_{os.getpid()}"
        with psycopg.connect(host=str(sock), port=port, user="sketchshop", dbname="postgres", autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        monkeypatch.setenv("SKETCHSHOP_DB_URL", f"postgresql+psycopg://sketchshop@/{name}?host={sock}&port={port}")
        settings.cache_clear()
    return request.param


# ---------------------------------------------------------------- a live service on real models
LIVE_PRODUCTS, LIVE_SEED = 60, 11


def serve_in_thread(app):
    """Serve a WSGI app on a free local port in a daemon thread: (server, base URL)."""
    import threading

    from werkzeug.serving import make_server
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=srv.serve_forever, name="live-server", daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_port}"


@pytest.fixture
def serve_app():
    """Serve apps in threads for one test: `url = serve_app(create_app())`; shut down afterwards."""
    servers = []

    def serve(app) -> str:
        srv, url = serve_in_thread(app)
        servers.append(srv)
        return url
    yield serve
    for srv in servers:
        srv.shutdown()


def add_studio_products(cat, products) -> list[int]:
    """Store studio products in catalogue `cat` as a crawl would (shop "studio"); their catalogue ids."""
    import io

    from catalog.store import ProductRecord
    shop_id = cat.get_shop("studio", "https://studio-shop.example")
    with cat.session() as s:
        for p in products:
            buf = io.BytesIO()
            p.image.save(buf, "JPEG", quality=90)
            url = f"https://studio-shop.example/products/{p.id}"
            labels = [("category", p.category, p.category, "studio"), ("colour", p.colour, p.colour, "studio")]
            labels += [(a, v, v, "studio") for a, v in p.attributes.items()]
            cat.upsert_product(s, shop_id, None, ProductRecord(
                external_id=p.id, url=url, title=p.title, brand=p.brand, price=p.price, currency=p.currency,
                labels=labels, images=[(cat.images.put(buf.getvalue()), url + "/main.jpg")]))
    return [cat.product_by_key("studio", p.id)["id"] for p in products]


def indexed_studio_catalog(data_dir: Path, n: int, seed: int):
    """Catalogue, searcher (shipped models, index attached), products, ids and index info for `n`
    studio products in `data_dir` (SKETCHSHOP_DATA_DIR must already point there). Skips, naming
    the file, while the shipped weights are missing or do not load."""
    from catalog import open_catalog
    from catalog.index import SearchIndex
    from catalog.search import Searcher
    from catalog.search_cli import build_index
    from sketchshop.errors import UserError
    from sketchshop.registry import weights_path
    from sketchshop.studio import generate_products
    for task in ("classifier", "detector", "colorizer"):
        path = weights_path(task, must_exist=False)
        if not path.is_file():
            pytest.skip(f"shipped {task} weights missing: {path}")
    try:
        searcher = Searcher.load(with_index=False)
    except UserError as e:
        pytest.skip(f"shipped models do not load: {e}")
    cat = open_catalog()
    products = list(generate_products(n, seed=seed))
    ids = add_studio_products(cat, products)
    info = build_index(cat, searcher, data_dir / "index", progress=False)
    searcher.index = SearchIndex.open(data_dir / "index")
    return cat, searcher, products, ids, info


@pytest.fixture(scope="session")
def live_catalog(tmp_path_factory):
    """A real catalogue of studio products, indexed with the shipped models, in a temp data dir.

    Yields a namespace with data_dir, catalog, searcher (models loaded once, index attached) and
    products (StudioProduct list, same order as the catalogue ids in `ids`).
    """
    from types import SimpleNamespace

    from sketchshop.config import settings
    mp = pytest.MonkeyPatch()
    d = tmp_path_factory.mktemp("live") / "var"
    mp.setenv("SKETCHSHOP_DATA_DIR", str(d))
    mp.delenv("SKETCHSHOP_DB_URL", raising=False)
    settings.cache_clear()
    try:
        cat, searcher, products, ids, info = indexed_studio_catalog(d, LIVE_PRODUCTS, LIVE_SEED)
        yield SimpleNamespace(data_dir=d, catalog=cat, searcher=searcher, products=products, ids=ids,
                              index_info=info)
        cat.close()
    finally:
        mp.undo()
        settings.cache_clear()


@pytest.fixture(scope="session")
def live_server(live_catalog):
    """Base URL of the real app (`server.create_app`) on the live catalogue, served in a thread."""
    from server import create_app
    app = create_app(searcher=live_catalog.searcher, catalog=live_catalog.catalog)
    srv, url = serve_in_thread(app)
    yield url
    srv.shutdown()


def photographed_on_paper(drawing):
    """A phone photo of `drawing` on paper: grey, unevenly lit, a pencil's grey strokes, saved as JPEG."""
    import io

    import numpy as np
    from PIL import Image
    g = np.asarray(drawing.convert("L"), np.float32) / 255
    y, x = np.mgrid[0:g.shape[0], 0:g.shape[1]] / max(g.shape)
    paper = (0.62 + 0.25 * x - 0.1 * y) * (0.35 + 0.65 * g) * 255
    buf = io.BytesIO()
    Image.fromarray(np.repeat(paper[..., None], 3, axis=2).astype(np.uint8)).save(buf, "JPEG", quality=85)
    return Image.open(buf)


def _undocumented(x, schema: dict, schemas: dict, path: str = "") -> list[str]:
    """Paths of the fields in `x` that `schema` does not name (where it lists its properties)."""
    if "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
    out = []
    if isinstance(x, dict) and "properties" in schema:
        for k, v in x.items():
            if k in schema["properties"]:
                out += _undocumented(v, schema["properties"][k], schemas, f"{path}.{k}")
            elif not schema.get("additionalProperties"):
                out.append(f"{path}.{k}")
    elif isinstance(x, dict) and isinstance(schema.get("additionalProperties"), dict):
        for k, v in x.items():
            out += _undocumented(v, schema["additionalProperties"], schemas, f"{path}.{k}")
    elif isinstance(x, list) and "items" in schema:
        for i, v in enumerate(x):
            out += _undocumented(v, schema["items"], schemas, f"{path}[{i}]")
    return out


def assert_documented(body, name: str) -> None:
    """`body` validates against the OpenAPI schema `name` and has no field the schema leaves out: what a client
    generated from the spec needs to parse it."""
    from openapi_schema_validator import OAS30Validator

    from server import openapi
    components = openapi.spec()["components"]
    OAS30Validator({"$ref": f"#/components/schemas/{name}", "components": components}).validate(body)
    assert not _undocumented(body, components["schemas"][name], components["schemas"]), name
