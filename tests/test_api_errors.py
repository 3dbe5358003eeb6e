"""Everything a client can send wrong gets a JSON 4xx; a server without its index refuses to be ready."""
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import assert_documented
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """One app for the module (loading models per test would dominate the run), on an empty data dir."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SKETCHSHOP_DATA_DIR", str(tmp_path_factory.mktemp("var")))
    mp.setenv("SKETCHSHOP_ADMIN_TOKEN", "s3cret")
    mp.setenv("SKETCHSHOP_MAX_UPLOAD_MB", "2")
    from sketchshop.config import settings
    settings.cache_clear()
    from server import create_app
    yield create_app().test_client()
    mp.undo()
    settings.cache_clear()


def _encode(im: Image.Image, fmt="PNG") -> bytes:
    b = io.BytesIO()
    im.save(b, fmt)
    return b.getvalue()


def _png(size=(64, 64), fmt="PNG") -> bytes:
    return _encode(Image.new("RGB", size, (200, 30, 30)), fmt)


@pytest.fixture(scope="module")
def bomb_png() -> bytes:
    b = io.BytesIO()
    Image.new("1", (12000, 12000)).save(b, "PNG")  # 144 Mpx in a few kB
    return b.getvalue()


def _err(resp, status, code=None):
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert_documented(body, "Error")
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code
    return body["error"]


def test_health_and_not_ready_without_index(client):
    """Without an index the server is not ready and /v1/search says why; the calls that need no index answer
    (they were 503 too, found by a QA session); the first index built is picked up without a restart."""
    import numpy as np

    from catalog.index import Item, SearchIndex
    from catalog.search_cli import models_key
    from sketchshop.config import settings
    assert client.get("/healthz").status_code == 200
    r = client.get("/readyz")
    assert r.status_code == 503 and r.get_json()["ready"] is False and list(r.get_json()["problems"]) == ["index"]
    e = _err(client.post("/v1/search", data={"image": (io.BytesIO(_png()), "a.png")}), 503, "not_ready")
    assert "no search index at" in e["message"] and "sketchshop index build" in e["message"]
    for path in ("/v1/classify", "/v1/detect", "/v1/colorize"):
        drawing = Image.new("RGB", (200, 200), "white")
        ImageDraw.Draw(drawing).rectangle((50, 40, 150, 170), outline="black", width=3)
        assert client.post(path, data={"image": (io.BytesIO(_encode(drawing)), "a.png")}).status_code == 200, path

    dim = client.post("/v1/classify", data={"image": (io.BytesIO(_png()), "a.png")}).get_json()["embedding"]
    root, one = settings().data_dir / "index", [Item(1, "dress", "red")]
    # built by other weights (SKETCHSHOP_CLASSIFIER_WEIGHTS changed since): refused, not searched (a QA session)
    SearchIndex.build(root, one, np.ones((1, len(dim)), np.float32), info={"model": "v1-other-weights"})
    r = client.get("/readyz")
    assert r.status_code == 503 and "was built with other models" in r.get_json()["problems"]["index"]
    e = _err(client.post("/v1/search", data={"image": (io.BytesIO(_png()), "a.png")}), 503, "not_ready")
    assert "sketchshop index build" in e["message"]
    SearchIndex.build(root, one, np.ones((1, len(dim)), np.float32), info={"model": models_key()})
    try:
        r = client.get("/readyz")
        assert r.status_code == 200 and r.get_json()["index"]["products"] == 1
        assert client.post("/v1/search", data={"image": (io.BytesIO(_png()), "a.png")}).status_code == 200
    finally:  # the rest of this module runs without an index
        shutil.rmtree(settings().data_dir / "index")
        client.application.extensions["sketchshop"].searcher.index = None
        client.application.extensions["sketchshop"].problems["index"] = "removed by the test"


@pytest.mark.parametrize("data,status,code", [
    ({}, 400, "missing_file"),
    ({"image": "not a file"}, 400, "bad_request"),
    ({"image": (io.BytesIO(b""), "a.png")}, 400, "empty_file"),
    ({"image": (io.BytesIO(b"%PDF-1.4 not an image at all" * 20), "a.pdf")}, 415, "unsupported_media_type"),
    ({"image": (io.BytesIO(_png(fmt="GIF")), "a.gif")}, 415, "unsupported_media_type"),  # readable, not allowed
    ({"image": (io.BytesIO(_png()[:60]), "a.png")}, 400, "bad_image"),
    ({"image": (io.BytesIO(_png()[:29] + bytes([_png()[29] ^ 0xFF]) + _png()[30:]), "a.png")}, 400, "bad_image"),
    ({"image": (io.BytesIO(_png((8, 8))), "a.png")}, 400, "bad_image"),
    ({"image": (io.BytesIO(_png()), "a.png"), "top_k": "lots"}, 400, "bad_parameter"),
    ({"image": (io.BytesIO(_png()), "a.png"), "top_k": "0"}, 400, "bad_parameter"),
    ({"image": (io.BytesIO(_png()), "a.png"), "kind": "painting"}, 400, "bad_parameter"),
    ({"image": (io.BytesIO(_png()), "a.png"), "colour": "chartreuse-ish"}, 400, "bad_filter"),
    ({"image": (io.BytesIO(_png()), "a.png"), "category": "spaceship"}, 400, "bad_filter"),
    ({"image": (io.BytesIO(_png()), "a.png"), "min_price": "cheap"}, 400, "bad_filter"),
    ({"image": (io.BytesIO(_png()), "a.png"), "min_price": "50", "max_price": "10"}, 400, "bad_filter"),
    ({"image": (io.BytesIO(_png()), "a.png"), "currency": "EURO"}, 400, "bad_filter"),
    ({"image": (io.BytesIO(_png()), "a.png"), "hints": "{nope"}, 400, "bad_hints"),
    ({"image": (io.BytesIO(_png()), "a.png"), "hints": '[{"x": 1}]'}, 400, "bad_hints"),
    ({"image": (io.BytesIO(_png()), "a.png"), "hints": '[{"x": 1, "y": 2, "rgb": [300, 0, 0]}]'}, 400, "bad_hints"),
    ({"image": (io.BytesIO(_png()), "a.png"), "hints": '[{"x": 1, "y": 2, "colour": "octarine"}]'}, 400, "bad_hints"),
    # found by tests/test_api_fuzz.py: Infinity and deep nesting were 500s
    ({"image": (io.BytesIO(_png()), "a.png"), "hints": '[{"x": 1, "y": 2, "rgb": [Infinity, 0, 0]}]'}, 400, "bad_hints"),
    ({"image": (io.BytesIO(_png()), "a.png"), "hints": '[{"x": NaN, "y": 2, "colour": "red"}]'}, 400, "bad_hints"),
    ({"image": (io.BytesIO(_png()), "a.png"), "hints": "[" * 50_000}, 400, "bad_hints"),
    # found by a fuzzing session: an integer past Python's 4300 digits was a 500
    ({"image": (io.BytesIO(_png()), "a.png"), "hints": '[{"x": 1' + "0" * 5000 + ', "y": 2, "colour": "red"}]'},
     400, "bad_hints"),
])
def test_bad_search_requests(client, data, status, code):
    _err(client.post("/v1/search", data=data, content_type="multipart/form-data"), status, code)


@pytest.mark.parametrize("method,path,data,says", [
    ("post", "/v1/search", {"price_max": "20"}, "unknown parameter 'price_max' (did you mean 'max_price'?)"),
    ("post", "/v1/search?topK=1", {}, "unknown parameter 'topK' (did you mean 'top_k'?)"),
    ("post", "/v1/detect", {"kind": "photo"}, "unknown parameter 'kind'; it takes image"),
    ("post", "/v1/classify", {"category": "dress"}, "unknown parameter 'category'; it takes image, kind, hints"),
    ("post", "/v1/colorize", {"colour": "red"}, "unknown parameter 'colour'"),
    ("get", "/v1/products?categroy=skirt", None, "unknown parameter 'categroy' (did you mean 'category'?)"),
    ("get", "/v1/crawls?limt=3", None, "unknown parameter 'limt' (did you mean 'limit'?)"),
])
def test_misspelt_parameters_are_refused(client, method, path, data, says):
    """A misspelt filter was ignored, so the answer looked right and was unfiltered (found by a QA session)."""
    if data is not None:
        data = {"image": (io.BytesIO(_png()), "a.png"), **data}
    e = _err(getattr(client, method)(path, data=data, headers={"Authorization": "Bearer s3cret"}),
             400, "unknown_parameter")
    assert e["message"].startswith(says), e["message"]


def test_an_empty_sketch_is_refused_and_classify_tells_a_sketch(client):
    """A canvas drawn on and then erased searched for whatever a blank page resembles (a t-shirt at 49 %), and
    /v1/classify called every drawing sent without `kind` a photo: found by a QA session."""
    for blank, kinds in ((Image.new("RGB", (512, 512), "white"), ("sketch", "auto")),
                         (Image.new("RGBA", (300, 300), (0, 0, 0, 0)), ("sketch", "auto")),
                         (Image.new("RGB", (300, 300), "black"), ("sketch",))):  # a chalkboard app's empty slate
        for kind in kinds:   # (sent without kind, a black image is a dark photo)
            for path in ("/v1/classify", "/v1/search", "/v1/colorize"):
                fields = {} if path == "/v1/colorize" else {"kind": kind}   # a sketch there in any case
                e = _err(client.post(path, data={"image": (io.BytesIO(_encode(blank)), "a.png"), **fields}),
                         400, "bad_image")
                assert "the sketch is empty" in e["message"]
    drawing = Image.new("RGB", (300, 300), "white")
    ImageDraw.Draw(drawing).polygon([(100, 50), (200, 50), (250, 250), (50, 250)], outline="black", width=3)
    r = client.post("/v1/classify", data={"image": (io.BytesIO(_encode(drawing)), "a.png")}).get_json()
    assert r["kind"] == "sketch" and r["colour"] is None  # a drawing without hints has no colour
    photo = client.post("/v1/classify", data={"image": (io.BytesIO(_png((200, 200))), "a.png")}).get_json()
    assert photo["kind"] == "photo"


@pytest.mark.parametrize("points,says", [
    ([1, 2, 3], "must be an object"), ([[1, 2]], "must be an object"),
    ([{"x": 1, "y": 2}], "either colour"), ([{"x": 1, "y": 2, "colour": "red", "rgb": [1, 2, 3]}], "either colour"),
    ([{"x": "10", "y": 2, "colour": "red"}], "x and y must be numbers"),
    ([{"x": True, "y": 2, "colour": "red"}], "x and y must be numbers"),
    ([{"x": 10 ** 400, "y": 2, "colour": "red"}], "x and y must be numbers"),
    ([{"x": 1, "y": 2, "rgb": ["a", "b", "c"]}], "three integers"), ([{"x": 1, "y": 2, "rgb": [0.5, 0, 0]}], "three integers"),
    ([{"x": 1, "y": 2, "rgb": [1, 2]}], "three integers"), ([{"x": 1, "y": 2, "colour": 7}], "a colour name"),
    ([{"x": 1, "y": 2, "colour": "red"}, {"x": 1, "y": 2, "colur": "red"}], "#1: unknown field(s) 'colur'"),
])
def test_bad_hint_points_say_what_is_wrong(client, points, says):
    """In the API's words, not Python's (found by QA: "'int' object is not subscriptable", "invalid literal")."""
    e = _err(client.post("/v1/search", data={"image": (io.BytesIO(_png()), "a.png"), "hints": json.dumps(points)},
                         content_type="multipart/form-data"), 400, "bad_hints")
    assert says in e["message"] and e["message"].startswith("hint point #")


def test_hint_points_in_the_forms_apps_send(client):
    """"color" as well as "colour", and whole numbers written as floats, are points like any other (past the
    hints, this server has no index: 503)."""
    for point in ({"x": 1.5, "y": 2, "color": "navy"}, {"x": 1, "y": 2, "rgb": [255.0, 0, 10]}):
        _err(client.post("/v1/search", data={"image": (io.BytesIO(_png()), "a.png"), "hints": json.dumps([point])},
                         content_type="multipart/form-data"), 503, "not_ready")


@pytest.mark.parametrize("path", ["/v1/search", "/v1/detect", "/v1/classify", "/v1/colorize"])
def test_too_large_and_pixel_bomb(client, path, bomb_png):
    big = io.BytesIO(b"\xff\xd8" + b"\0" * 3_000_000)
    _err(client.post(path, data={"image": (big, "a.jpg")}, content_type="multipart/form-data"), 413, "too_large")
    e = _err(client.post(path, data={"image": (io.BytesIO(bomb_png), "bomb.png")},
                         content_type="multipart/form-data"), 413)
    assert e["message"].startswith("'image': 12000x12000")
    e = _err(client.post(path, data={"image": (io.BytesIO(_png()), "a.png"), "hints": "[" + " " * 2_100_000 + "]"},
                         content_type="multipart/form-data"), 413, "too_large")
    assert "2 MB in all, 2 MB in a non-file field and 100 parts" in e["message"]  # every limit, as any may be hit


@pytest.mark.parametrize("path", ["/v1/search", "/v1/detect", "/v1/classify", "/v1/colorize"])
def test_slivers_are_refused(client, path):
    """16 x 150,000 px is a few kB of PNG; the colouriser padded it to a square of its long side and took the
    machine's memory (found by a QA session)."""
    sliver = _png((16, 150_000))
    e = _err(client.post(path, data={"image": (io.BytesIO(sliver), "a.png")}, content_type="multipart/form-data"),
             400, "bad_image")
    assert "16x150000 is a sliver" in e["message"]
    if path in ("/v1/detect", "/v1/classify"):  # no hints there
        return
    e = _err(client.post(path, data={"image": (io.BytesIO(_png()), "a.png"), "hints": (io.BytesIO(sliver), "h.png")},
                         content_type="multipart/form-data"), 400, "bad_image")
    assert e["message"].startswith("'hints'")


def test_wrong_method_and_unknown_route(client):
    _err(client.get("/v1/search"), 405)
    _err(client.get("/v1/nothing-here"), 404)
    _err(client.open("/v1/search", method="PROPFIND"), 405)
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'method="other"' in metrics and "PROPFIND" not in metrics  # a client's method names no new series


def test_products_and_images(client):
    _err(client.get("/v1/products/424242"), 404, "not_found")
    _err(client.get("/v1/products/99999999999999999999"), 404, "not_found")  # beyond 64 bits: was a 500
    _err(client.get("/v1/images/not-a-sha"), 400)
    _err(client.get("/v1/images/" + "0" * 64), 404)
    _err(client.get("/v1/products?colour=octarine"), 400, "bad_filter")
    _err(client.get("/v1/products?page=zero"), 400)
    r = client.get("/v1/products?category=top&page=1")
    assert r.status_code == 200 and r.get_json()["total"] == 0


@pytest.mark.parametrize("number", ["\uff12", "\u0662", " 2", "1_0", "2.0"])  # full-width, Arabic-Indic, ...
def test_numbers_are_ascii_digits(client, number):
    """Python's int() and float() read '２' as 2: ids, pages and prices take ASCII digits only."""
    from werkzeug.exceptions import NotFound
    urls = client.application.url_map.bind("localhost")
    assert urls.match("/v1/products/2")[0] == "v1.product"
    with pytest.raises(NotFound):
        urls.match(f"/v1/products/{number}")
    _err(client.get(f"/v1/products?page={number}"), 400, "bad_parameter")
    if number != "2.0":  # a price may have a fraction
        _err(client.get(f"/v1/products?max_price={number}"), 400, "bad_filter")
    _err(client.get(f"/v1/crawls?limit={number}", headers={"Authorization": "Bearer s3cret"}), 400, "bad_parameter")


def test_admin_token_and_validation(client):
    _err(client.get("/v1/crawls"), 401, "unauthorized")
    _err(client.get("/v1/crawls", headers={"Authorization": "Bearer wrong"}), 401)
    auth = {"Authorization": "Bearer s3cret"}
    _err(client.post("/v1/crawls", data="not json", headers=auth), 400)
    _err(client.post("/v1/crawls", json={"spec": ""}, headers=auth), 400)
    for spec in ("no/such/spec.yaml", "crawler/specs", "/dev/zero", "README.md", "crawler/specs/demo-a.yaml\u0000"):
        e = _err(client.post("/v1/crawls", json={"spec": spec}, headers=auth), 400, "bad_request")
        assert spec.rstrip("\x00").split("/")[-1] in e["message"]  # said now, not when the scheduler runs it at 3 am
        _err(client.post("/v1/schedules", json={"name": "n", "spec": spec, "cron": "0 3 * * *"}, headers=auth), 400)
    r = client.post("/v1/crawls", json={"spec": "crawler/specs/demo-a.yaml"}, headers=auth)
    assert r.status_code == 202 and r.get_json()["status"] == "queued"
    assert r.get_json()["spec"] == str(ROOT / "crawler" / "specs" / "demo-a.yaml")  # what the scheduler will open
    assert_documented(r.get_json(), "CrawlRun")
    runs = client.get("/v1/crawls", headers=auth).get_json()
    assert [x["id"] for x in runs["items"]] == [r.get_json()["id"]]
    assert_documented(runs, "CrawlRunList")
    assert_documented(client.get(f"/v1/crawls/{r.get_json()['id']}", headers=auth).get_json(), "CrawlRun")
    _err(client.get("/v1/crawls/999", headers=auth), 404)
    _err(client.post("/v1/schedules", json={"name": "n", "spec": "s.yaml", "cron": "every tuesday"},
                     headers=auth), 400)
    r = client.post("/v1/schedules", json={"name": "nightly", "spec": "crawler/specs/demo-a.yaml",
                                           "cron": "0 3 * * *"}, headers=auth)
    assert r.status_code == 201
    assert_documented(r.get_json(), "Schedule")
    schedules = client.get("/v1/schedules", headers=auth).get_json()
    assert [x["name"] for x in schedules["items"]] == ["nightly"]
    assert_documented(schedules, "ScheduleList")
    e = _err(client.post("/v1/schedules", json={"name": "NIGHTLY", "spec": "crawler/specs/demo-a.yaml",
                                                "cron": "0 4 * * *"}, headers=auth), 400)
    assert "'nightly' already exists" in e["message"]
    assert client.delete("/v1/schedules/nightly", headers=auth).status_code == 204
    _err(client.delete("/v1/schedules/nightly", headers=auth), 404)


def test_admin_answers_what_a_careful_client_expects(client):
    """Found by a QA session: a limit out of range was clamped, a long string got the wrong message, and a
    lower-case auth scheme was refused (RFC 7235: schemes are case-insensitive)."""
    auth = {"Authorization": "Bearer s3cret"}
    assert client.get("/v1/crawls", headers={"Authorization": "bearer s3cret"}).status_code == 200
    for limit in ("0", "-1", "201", "1000000000"):
        e = _err(client.get(f"/v1/crawls?limit={limit}", headers=auth), 400, "bad_parameter")
        assert "between 1 and 200" in e["message"]
    e = _err(client.post("/v1/schedules", json={"name": "n", "spec": "crawler/specs/demo-a.yaml", "cron": "0 " * 1500}, headers=auth),
             400, "bad_request")
    assert e["message"] == "'cron' is longer than 2000 characters"
    e = _err(client.post("/v1/crawls", json={"spec": "crawler/specs/demo-a.yaml", "options": {"max_pages": 10 ** 30}},
                         headers=auth), 400, "bad_request")
    assert "options.max_pages: an integer from 1 to 10,000,000" in e["message"]
    spec = "crawler/specs/demo-a.yaml"
    e = _err(client.post("/v1/schedules", json={"name": "both", "spec": spec, "cron": "0 3 * * *", "reindex": True,
                                                "options": {"reindex": False}}, headers=auth), 400, "bad_request")
    assert "disagree" in e["message"]
    r = client.post("/v1/schedules", json={"name": "opt", "spec": spec, "cron": "0 3 * * *",
                                           "options": {"reindex": True}}, headers=auth)
    assert r.status_code == 201 and r.get_json()["reindex"] is True and "reindex" not in r.get_json()["options"]
    assert client.delete("/v1/schedules/opt", headers=auth).status_code == 204


def test_admin_rejects_what_it_cannot_store(client):
    """Found by tests/test_api_fuzz.py: each of these was a 500."""
    auth = {"Authorization": "Bearer s3cret"}
    for body in ['{"spec": "\\ud800"}', '{"spec": "a", "options": {"x": NaN}}', "[" * 50_000]:
        _err(client.post("/v1/crawls", data=body, content_type="application/json", headers=auth), 400, "bad_request")
        _err(client.post("/v1/schedules", data=body, content_type="application/json", headers=auth), 400)
    _err(client.get("/v1/crawls/99999999999999999999", headers=auth), 404, "not_found")


def test_admin_refuses_what_a_crawl_could_not_run(client):
    """Found by fuzzing the admin API: each was accepted (202/201) and broke later, or was a 500."""
    auth = {"Authorization": "Bearer s3cret"}
    _err(client.get("/v1/crawls", headers={"Authorization": "s3cret"}), 401)  # the token without its scheme
    spec = "crawler/specs/demo-a.yaml"
    for body in ({"spec": spec, "options": {"browsers": "lots"}}, {"spec": spec, "options": {"max_pages": -1}},
                 {"spec": spec, "options": {"threads": 4}}, {"spec": spec, "base_url": "http://[::1"},
                 {"spec": spec, "base_url": "http://127.0.0.1:99999"}):
        _err(client.post("/v1/crawls", json=body, headers=auth), 400, "bad_request")
    sched = {"name": "n", "spec": spec, "cron": "0 3 * * *"}
    for bad in ({"cron": "0 0 30 2 *"}, {"name": "a/b"}, {"name": "nul\u0000"}, {"reindex": "false"},
                {"options": {"browsers": 0}}, {"base_url": "http://[::1"}):
        _err(client.post("/v1/schedules", json={**sched, **bad}, headers=auth), 400, "bad_request")
    assert client.get("/v1/schedules", headers=auth).get_json()["items"] == []


def test_admin_disabled_without_token(data_dir, monkeypatch):
    monkeypatch.delenv("SKETCHSHOP_ADMIN_TOKEN", raising=False)
    from sketchshop.config import settings
    settings.cache_clear()
    from server import create_app
    _err(create_app().test_client().get("/v1/crawls"), 403, "admin_disabled")


def test_openapi_is_valid(client):
    from openapi_spec_validator import validate
    spec = client.get("/openapi.json").get_json()
    validate(spec)
    assert {"/v1/search", "/v1/colorize", "/v1/detect", "/v1/classify", "/v1/products",
            "/v1/products/{product_id}", "/v1/images/{sha}", "/v1/crawls", "/v1/schedules"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


def test_api_keys_and_rate_limits(data_dir, monkeypatch):
    monkeypatch.setenv("SKETCHSHOP_API_KEYS", "k1,k2")
    monkeypatch.setenv("SKETCHSHOP_RATE_LIMIT", "3/minute")
    from sketchshop.config import settings
    settings.cache_clear()
    from server import create_app
    c = create_app().test_client()
    _err(c.post("/v1/search", data={}, content_type="multipart/form-data"), 401, "unauthorized")
    codes = [c.post("/v1/search", data={}, headers={"X-API-Key": "k1"},
                    content_type="multipart/form-data").status_code for _ in range(4)]
    assert codes == [400, 400, 400, 429]
    assert c.get("/healthz").status_code == 200  # ops routes are never limited


@pytest.mark.parametrize("proxies", ["0", "1"])
def test_client_addresses_come_from_a_proxy_only_when_it_is_trusted(data_dir, monkeypatch, proxies):
    """Behind nginx (`docs/nginx.conf`) every request comes from the proxy's address: with SKETCHSHOP_TRUSTED_PROXIES
    the rate limit counts per client again; without it, a client's own X-Forwarded-For changes nothing."""
    monkeypatch.setenv("SKETCHSHOP_RATE_LIMIT", "2/minute")
    monkeypatch.setenv("SKETCHSHOP_TRUSTED_PROXIES", proxies)
    from sketchshop.config import settings
    settings.cache_clear()
    from server import create_app
    c = create_app().test_client()

    def codes(client_ip):
        return [c.post("/v1/search", data={}, headers={"X-Forwarded-For": client_ip},
                       content_type="multipart/form-data").status_code for _ in range(3)]
    assert codes("203.0.113.1") == [400, 400, 429]
    assert codes("203.0.113.2") == ([400, 400, 429] if proxies == "1" else [429, 429, 429])


def test_what_gunicorn_refuses_is_json_too(data_dir):
    """A request line or headers too long, or no HTTP at all, never reach Flask: `sketchshop serve` answers them in
    the API's JSON error shape, not with gunicorn's HTML page."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def raw(request: bytes) -> tuple[int, str, dict]:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
            c.sendall(request)
            c.shutdown(socket.SHUT_WR)  # a body cut short ends here
            data = b""
            while chunk := c.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin1").split("\r\n")
        ctype = next(v for k, _, v in (h.partition(": ") for h in lines[1:]) if k.lower() == "content-type")
        return int(lines[0].split()[1]), ctype, json.loads(body)

    chunked = (b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               b"Content-Type: multipart/form-data; boundary=a\r\n\r\n")
    srv = subprocess.Popen([sys.executable, "-m", "sketchshop", "serve", "--port", str(port), "--workers", "1"],
                           cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert srv.poll() is None and time.time() < deadline, "sketchshop serve did not start"
                time.sleep(0.3)
        for request, status, code in [
            (b"GET /v1/products?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
            (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: y\r\n" * 200 + b"\r\n", 431, "headers_too_large"),
            (b"GARBAGE\r\n\r\n", 400, "bad_request"),
            # found by a QA session: a broken or cut chunked body was a 500
            (chunked + b"zz\r\n", 400, "bad_request"),
            (chunked + b"64\r\n--a\r\nContent-Disposition: form-data; name=", 400, "bad_request"),
            (b"POST /v1/crawls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"sp", 400, "bad_request"),
        ]:
            got, ctype, body = raw(request)
            assert (got, ctype, body["error"]["code"]) == (status, "application/json", code)
            assert body["error"]["message"]
        # a second serve on the same data dir (here failing to bind) wiped the first one's metrics (a QA session)
        second = subprocess.run([sys.executable, "-m", "sketchshop", "serve", "--port", str(port), "--workers", "1"],
                                cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=120)
        assert second.returncode != 0 and "serving on" not in second.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
            assert r.headers["Content-Type"].count("charset") == 1
            assert 'sketchshop_requests_total{endpoint="v1.detect",method="POST",status="400"}' in r.read().decode()
    finally:
        srv.terminate()
        srv.wait(timeout=30)
