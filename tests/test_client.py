"""The Python client against the real app served over HTTP: real models, real index, real catalogue."""
from __future__ import annotations

import hashlib
import io

import pytest
import requests
from PIL import Image, ImageDraw, ImageOps

from conftest import assert_documented
from sketchshop import vocab
from sketchshop.client import ApiError, Client


# ---------------------------------------------------------------- without models (always runs)
@pytest.fixture
def bare_server(data_dir, serve_app):
    """The real app in an empty data dir: no index, maybe no models, so it is not ready."""
    from server import create_app
    return serve_app(create_app())


def _jpeg(colour=(200, 30, 35), size=(96, 128)) -> bytes:
    b = io.BytesIO()
    Image.new("RGB", size, colour).save(b, "JPEG")
    return b.getvalue()


def test_not_ready_server_gives_api_errors(bare_server, tmp_path):
    c = Client(bare_server)
    assert c.health() == {"ok": True}
    r = c.ready()
    assert r["ready"] is False and r["problems"]
    with pytest.raises(ApiError) as e:
        c.search(_jpeg())
    assert (e.value.status, e.value.code) == (503, "not_ready")
    # bad input is refused before any model would run
    bad = tmp_path / "notes.txt"
    bad.write_text("not a picture\n" * 50)
    with pytest.raises(ApiError) as e:
        c.search(bad)
    assert (e.value.status, e.value.code) == (415, "unsupported_media_type")
    with pytest.raises(ApiError) as e:
        c.search(_jpeg(), colour="octarine")
    assert (e.value.status, e.value.code) == (400, "bad_filter")
    with pytest.raises(ApiError) as e:
        c.image("0" * 10)
    assert e.value.status == 400
    with pytest.raises(TypeError, match="unknown filter"):
        c.search(_jpeg(), colur="red")
    with pytest.raises(ApiError, match="no such file"):
        c.search(tmp_path / "missing.jpg")


def test_images_are_served_from_a_relative_data_dir(tmp_path, monkeypatch, serve_app):
    """`make demo` runs with the default data dir, `var` relative to where it was started."""
    from catalog import open_catalog
    from conftest import add_studio_products
    from server import create_app
    from sketchshop.config import settings
    from sketchshop.studio import generate_products
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SKETCHSHOP_DATA_DIR", "var")
    monkeypatch.delenv("SKETCHSHOP_DB_URL", raising=False)
    settings.cache_clear()
    try:
        cat = open_catalog()
        (pid,) = add_studio_products(cat, list(generate_products(1, seed=3)))
        cat.close()
        client = Client(serve_app(create_app()))
        data = client.image(client.product(pid)["image_urls"][0])
        Image.open(io.BytesIO(data)).verify()
    finally:
        settings.cache_clear()


def test_unreachable_server_is_an_api_error():
    with pytest.raises(ApiError) as e:
        Client("http://127.0.0.1:9", timeout=2).health()
    assert e.value.status == 0 and e.value.code == "unreachable"


# ---------------------------------------------------------------- live: real models and index
@pytest.fixture(scope="module")
def client(live_server):
    return Client(live_server, timeout=120)


def test_ready_reports_the_index(client, live_catalog):
    r = client.ready()
    assert r["ready"] is True, r
    assert r["index"]["products"] == live_catalog.index_info["products"] > 0

    # a crawl's reindex moves CURRENT on: /readyz names the new build before any search loads it
    from catalog.index import SearchIndex
    live = SearchIndex.open(live_catalog.data_dir / "index")
    SearchIndex.build(live_catalog.data_dir / "index", live.items, live._vectors_all())
    new = SearchIndex.open(live_catalog.data_dir / "index").build_id
    assert new != r["index"]["build"] and client.ready()["index"] == {"build": new, "products": len(live)}


def test_photo_search_finds_the_product_itself(client, live_catalog):
    """Index and query share one code path, so a catalogue photo must find its own product."""
    found = 0
    picks = [0, 7, 15, 22, 31]
    for i in picks:
        p, pid = live_catalog.products[i], live_catalog.ids[i]
        buf = io.BytesIO()
        p.image.save(buf, "JPEG", quality=90)
        res = client.search(buf.getvalue(), kind="photo", top_k=5)
        assert res["kind"] == "photo" and res["items"], res
        for it in res["items"]:
            x1, y1, x2, y2 = it["box"]
            assert 0 <= x1 < x2 <= p.image.width + 1 and 0 <= y1 < y2 <= p.image.height + 1
            assert it["category"] in vocab.FINE_CATEGORIES and it["coarse_category"] in vocab.COARSE_CATEGORIES
            assert 0 <= it["category_p"] <= 1 and len(it["matches"]) <= 5
            for m in it["matches"]:
                assert m["url"].startswith("https://studio-shop.example/products/")
                assert m["image_url"].startswith("/v1/images/") and m["price"] > 0 and m["shop"] == "studio"
        found += any(pid in [m["product_id"] for m in it["matches"]] for it in res["items"])
    assert found >= len(picks) - 1, f"own product in the top 5 for only {found} of {len(picks)} queries"


def test_filters_are_hard(client, live_catalog):
    p = live_catalog.products[3]
    res = client.search(p.image, kind="photo", top_k=50, category=p.category, max_price=p.price)
    assert res["items"]
    for it in res["items"]:
        assert it["matches"], "the product itself passes these filters"
        assert all(m["category"] == p.category and m["price"] <= p.price for m in it["matches"])
    res = client.search(p.image, kind="photo", top_k=50, colour=p.colour, currency=p.currency.lower())
    assert all(m["colour"] == p.colour and m["currency"] == p.currency
               for it in res["items"] for m in it["matches"])


def test_sketch_search_with_layer_hints(client, live_catalog):
    p = live_catalog.products[5]
    for hints in (p.hints, None):
        res = client.search(p.sketch, hints=hints, top_k=8)
        assert res["kind"] == "sketch", "a line drawing on white is recognised as a sketch"
        (it,) = res["items"]
        assert it["box"] is None and it["whole_image"] is True
        assert 1 <= len(it["matches"]) <= 8
    assert "colorize" in client.search(p.sketch, kind="sketch", hints=p.hints)["timing_ms"]
    chalk = ImageOps.invert(p.sketch.convert("RGB"))  # light strokes on dark paper
    res = client.search(chalk, hints=p.hints, top_k=8)
    assert res["kind"] == "sketch" and res["items"][0]["category"] == client.search(p.sketch, hints=p.hints)["items"][0]["category"]


def test_sketch_search_with_point_hints(client, live_catalog):
    """JSON point hints, as the Android app sends them (the web client sends a PNG layer)."""
    p = live_catalog.products[5]
    w, h = p.sketch.size
    points = [{"x": w / 2, "y": h / 2, "colour": p.colour}, {"x": w / 2 + 5, "y": h / 2, "rgb": [10, 20, 30]}]
    res = client.search(p.sketch, hints=points, top_k=8)
    (it,) = res["items"]
    assert res["kind"] == "sketch" and it["matches"]


def test_colorize_detect_classify(client, live_catalog):
    p = live_catalog.products[9]
    out = client.colorize(p.sketch, hints=p.hints, category=p.category)
    assert isinstance(out, Image.Image) and min(out.size) >= 64
    colours = out.convert("RGB").resize((32, 32)).getcolors(32 * 32)
    assert len(colours) > 8, "the colouriser returned a flat image"
    with pytest.raises(ApiError) as e:
        client.colorize(p.sketch, hints=p.hints, category="spaceship")
    assert e.value.code == "bad_parameter"

    det = client.detect(p.image)
    assert (det["width"], det["height"]) == p.image.size and det["items"]
    for f in det["items"]:   # nothing found: the whole image comes back, without a category
        assert f["category"] in vocab.COARSE_CATEGORIES + vocab.FINE_CATEGORIES or (f["whole_image"] and f["category"] is None)
        x1, y1, x2, y2 = f["box"]
        assert 0 <= x1 < x2 <= p.image.width + 1 and 0 <= y1 < y2 <= p.image.height + 1

    cls = client.classify(p.image)
    assert cls["kind"] == "photo" and cls["category"] in vocab.FINE_CATEGORIES
    assert len(cls["embedding"]) == live_catalog.searcher.index.dim
    assert sum(t["p"] for t in cls["topk"]) <= 1.0001


def test_responses_are_what_the_spec_says(client, live_catalog):
    """A client generated from /openapi.json parses every answer: each validates against its schema and names no
    field the schema leaves out (found by a QA session: /v1/detect's null category, product fields)."""
    p = live_catalog.products[4]
    answers = {"SearchResponse": client.search(p.image, kind="photo", top_k=3),
               "DetectResponse": client.detect(Image.new("RGB", (200, 300), "white")),  # nothing found
               "ClassifyResponse": client.classify(p.image),
               "ProductPage": client.products(per_page=3),
               "Product": client.product(live_catalog.ids[4]),
               "Ready": client.ready(), "Health": client.health()}
    assert answers["DetectResponse"]["items"][0]["category"] is None
    for name, body in answers.items():
        assert_documented(body, name)


def test_large_uploads_answer_in_their_own_pixels(client, live_catalog):
    """A phone-size upload is read reduced, but boxes and point hints stay in the uploaded pixels."""
    p = live_catalog.products[9]
    k = 2000 // min(p.image.size) + 1
    big = p.image.resize((p.image.width * k, p.image.height * k), Image.BICUBIC)
    jpeg = io.BytesIO()
    big.save(jpeg, "JPEG", quality=90)  # as a phone sends it
    big_bytes = jpeg.getvalue()
    small, large = client.detect(p.image), client.detect(big_bytes)
    assert (large["width"], large["height"]) == big.size
    assert len(large["items"]) == len(small["items"])
    for a, b in zip(small["items"], large["items"]):
        assert a["category"] == b["category"]
        assert max(abs(x * k - y) for x, y in zip(a["box"], b["box"])) < 0.03 * max(big.size), (a, b)
    (it,) = client.search(big_bytes, kind="photo", top_k=3)["items"][:1]
    assert max(abs(x * k - y) for x, y in zip(small["items"][0]["box"], it["box"])) < 0.03 * max(big.size)

    sketch = p.sketch.resize((p.sketch.width * k, p.sketch.height * k), Image.NEAREST)
    w, h = sketch.size  # one red dot near the far corner: lost if the points were not scaled with the image
    cls = client.classify(sketch, kind="sketch", hints=[{"x": w * 0.6, "y": h * 0.6, "rgb": [200, 20, 30]}])
    assert cls["colour"] == "red", cls["colour"]


def test_products_product_and_image(client, live_catalog):
    page = client.products(per_page=20)
    assert page["total"] == len(live_catalog.products) and len(page["items"]) == 20
    dresses = client.products(category="dress", per_page=200)
    assert dresses["total"] == sum(p.category == "dress" for p in live_catalog.products)
    assert all(d["category"] == "dress" for d in dresses["items"])

    i = 12
    p, pid = live_catalog.products[i], live_catalog.ids[i]
    d = client.product(pid)
    assert (d["id"], d["title"], d["price"], d["category"], d["colour"]) == (pid, p.title, p.price, p.category, p.colour)
    data = client.image(d["image_urls"][0])
    sha = hashlib.sha256(data).hexdigest()
    assert d["image_urls"][0].endswith(sha) and client.image(sha) == data
    Image.open(io.BytesIO(data)).verify()
    url = f"{client.base_url}/v1/images/{sha}"
    part = requests.get(url, headers={"Range": "bytes=0-9"}, timeout=30)
    assert part.status_code == 206 and part.content == data[:10]
    for junk in ("bytes=abc", "pages=1-2", "bytes=9-0"):  # a Range that cannot be parsed is ignored: the whole image
        whole = requests.get(url, headers={"Range": junk}, timeout=30)
        assert whole.status_code == 200 and whole.content == data, junk

    with pytest.raises(ApiError) as e:
        client.product(10**9)
    assert (e.value.status, e.value.code) == (404, "not_found")
    with pytest.raises(ApiError) as e:
        client.image("ab" * 32)
    assert e.value.status == 404


def test_odd_uploads_are_refused_cleanly(client, tmp_path):
    huge = Image.new("L", (9000, 9000), 255)   # 81 Mpx: above the pixel limit, small as PNG
    ImageDraw.Draw(huge).line((0, 0, 9000, 9000), fill=0, width=5)
    with pytest.raises(ApiError) as e:
        client.search(huge)
    assert e.value.status == 413
    with pytest.raises(ApiError) as e:
        client.search(_jpeg()[:200])
    assert e.value.status == 400
    with pytest.raises(ApiError) as e:
        client.search(_jpeg(), hints='[{"x": 1, "y": 2, "colour": "octarine"}]')
    assert e.value.code == "bad_hints"


# ---------------------------------------------------------------- found by fuzzing the served API
def test_products_filter_by_currency_and_read_text_literally(client, live_catalog):
    total = client.products(per_page=200)["total"]
    counts = {}
    for c in sorted({p.currency for p in live_catalog.products}):
        page = client.products(per_page=200, currency=c.lower())
        assert page["items"] and all(it["currency"] == c for it in page["items"])
        counts[c] = page["total"]
    assert sum(counts.values()) == total  # the filter was ignored before: every currency gave them all
    assert client.products(currency="XYZ")["total"] == 0
    for q in ("%", "_", "\\"):
        assert client.products(q=q)["total"] == 0  # SQL's wildcards and its escape are plain text
    assert client.products(q=live_catalog.products[0].title.split()[-1].lower())["total"] >= 1
    for q in ("a\x00b", "a\nb", "x" * 201):  # a NUL ended the pattern in SQLite: "a\0b" found every "...a"
        with pytest.raises(ApiError) as e:
            client.products(q=q)
        assert (e.value.status, e.value.code) == (400, "bad_parameter")


def test_empty_hints_are_no_hints(client, live_catalog):
    p = live_catalog.products[9]
    plain = client.classify(p.image)
    for hints in ([], Image.new("RGBA", p.image.size, (0, 0, 0, 0))):
        got = client.classify(p.image, hints=hints)
        assert (got["colour"], got["colour_p"]) == (plain["colour"], plain["colour_p"])


def test_hints_drawn_on_white_read_like_hints_on_transparent(client, live_catalog):
    """A hint image without transparency (colour strokes on white) is read as strokes by every model."""
    p = live_catalog.products[5]
    on_white = Image.new("RGB", p.hints.size, "white")
    on_white.paste(p.hints, mask=p.hints.getchannel("A"))
    want = client.classify(p.sketch, kind="sketch", hints=p.hints)["colour"]
    assert want not in (None, "white")
    assert client.classify(p.sketch, kind="sketch", hints=on_white)["colour"] == want  # was "white": the paper
    assert client.search(p.sketch, kind="sketch", hints=on_white)["items"][0]["colour"] == want


@pytest.mark.parametrize("size", [(2000, 100), (100, 2000)])
def test_long_thin_images_get_boxes_inside_their_frame_and_slivers_a_400(client, size):
    det = client.detect(Image.new("RGB", size, (200, 30, 35)))
    assert (det["width"], det["height"]) == size and det["items"]
    for f in det["items"]:
        x1, y1, x2, y2 = f["box"]
        assert 0 <= x1 < x2 <= size[0] and 0 <= y1 < y2 <= size[1]
    with pytest.raises(ApiError) as e:  # longer than 20:1
        client.detect(Image.new("RGB", (size[0] * 3, size[1]) if size[0] > size[1] else (size[0], size[1] * 3)))
    assert e.value.status == 400 and e.value.code == "bad_image"
