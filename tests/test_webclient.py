"""The mobile web client at `/`, driven in real headless Chromium with phone emulation and touch."""
from __future__ import annotations

import base64
import re
import time
from pathlib import Path

import numpy as np
import pytest

from sketchshop import vocab

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "server" / "web"
ARTIFACTS = ROOT / "test-artifacts"


# ---------------------------------------------------------------- static checks (no browser)
def test_palette_is_the_vocabulary():
    js = (WEB / "app.js").read_text()
    block = re.search(r"export const PALETTE = \{(.*?)\};", js, re.S).group(1)
    palette = {k: tuple(int(v) for v in rgb.split(","))
               for k, rgb in re.findall(r"(\w+): \[(\d+, \d+, \d+)\]", block)}
    assert palette == vocab.COLOUR_RGB


def test_served_without_toolchain_or_cdn(data_dir):
    from server import create_app
    c = create_app(load=False).test_client()
    page = c.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(a.startswith("/static/") for a in assets), assets
    for a in assets:
        r = c.get(a)
        assert r.status_code == 200, a
    assert c.get("/static/app.js").mimetype in ("text/javascript", "application/javascript")
    assert 'capture="environment"' in html and 'accept="image/*"' in html
    assert "touch-action: none" in (WEB / "style.css").read_text()


# ---------------------------------------------------------------- the browser
@pytest.fixture(scope="module")
def browser():
    browser_mod = pytest.importorskip("crawler.browser", reason="crawler.browser (make_driver) is not built yet")
    from sketchshop.errors import UserError
    try:
        d = browser_mod.make_driver(mobile=True, block=())
    except UserError as e:
        pytest.skip(str(e))
    d.set_script_timeout(30)
    yield d
    d.quit()


def open_page(d, url: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait
    d.get(url)
    WebDriverWait(d, 20).until(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
    assert d.execute_script("return window.matchMedia('(pointer: coarse)').matches"), "touch emulation is on"


_clock = {"t": 0.0}


def finger(d, points) -> None:
    """One finger touching `points` (CSS pixels of the viewport): a tap for one point, else a stroke.

    CDP touch events carry explicit timestamps (16 ms apart, a 50 ms tap, a 150 ms rest before
    lifting after a move, 400 ms between gestures), so the browser's gesture recogniser sees the
    same human timing however slowly a loaded machine delivers the commands: otherwise a slow
    tap turns into a long press, a stroke into a fling, and two taps into a double tap, none
    of which click.
    """
    t = max(time.time(), _clock["t"] + 0.4)
    events = [("touchStart", [points[0]], t)]
    for i, p in enumerate(points[1:], 1):
        events.append(("touchMove", [p], t + 0.016 * i))
    end = events[-1][2] + (0.15 if len(points) > 1 else 0.05)
    events.append(("touchEnd", [], end))
    for kind, pts, ts in events:
        d.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": kind, "touchPoints": pts, "timestamp": ts})
    _clock["t"] = end


class Tappable:
    """A found element whose `click()` is a finger tap at its centre."""

    def __init__(self, d, element):
        self.d, self.element = d, element

    def __getattr__(self, name):
        return getattr(self.element, name)

    def click(self) -> None:
        """Tap, then wait for the click the browser derives from the tap (it arrives asynchronously)."""
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait
        x, y = self.d.execute_script(
            "const e = arguments[0]; e.scrollIntoView({block: 'center'}); e.dataset.tapped = '';"
            "e.addEventListener('click', () => { e.dataset.tapped = 'yes'; }, {once: true, capture: true});"
            "const r = e.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2];", self.element)
        finger(self.d, [{"x": x, "y": y}])

        def clicked(d):
            try:
                return d.execute_script("return arguments[0].dataset.tapped === 'yes'", self.element)
            except StaleElementReferenceException:   # re-rendered by its own click handler
                return True
        WebDriverWait(self.d, 10, poll_frequency=0.05).until(clicked)


def el(d, label: str = None, css: str = None) -> Tappable:
    from selenium.webdriver.common.by import By
    return Tappable(d, d.find_element(By.CSS_SELECTOR, css or f"[aria-label='{label}']"))


def touch_stroke(d, points) -> None:
    """One finger on the drawing canvas through `points` given in canvas pixels."""
    left, top, w, h, cw, ch = d.execute_script(
        "const c = document.getElementById('sketch'); c.scrollIntoView({block: 'center'});"
        "const r = c.getBoundingClientRect(); return [r.left, r.top, r.width, r.height, c.width, c.height];")
    finger(d, [{"x": left + x * w / cw, "y": top + y * h / ch} for x, y in points])


def layer_pixel(d, layer: str, x: int, y: int) -> list[int]:
    return d.execute_script(f"return Array.from(window.sketchshop.layers.{layer}.getContext('2d')"
                            f".getImageData({x}, {y}, 1, 1).data)")


def wait_idle(d, timeout: float = 120) -> None:
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(d, timeout, poll_frequency=0.1).until(
        lambda d: d.execute_script("return document.getElementById('results').getAttribute('aria-busy') === 'false'"))


def message(d) -> str | None:
    return d.execute_script("const m = document.getElementById('message'); return m.hidden ? null : "
                            "document.getElementById('message-text').textContent")


def screenshot(d, name: str) -> Path:
    """Full-page PNG in test-artifacts/ (gitignored), to look at after a run."""
    height = d.execute_script("window.scrollTo(0, 0); return document.documentElement.scrollHeight")
    shot = d.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": 390, "height": min(height, 2400), "scale": 1 / 1.5}})
    ARTIFACTS.mkdir(exist_ok=True)
    out = ARTIFACTS / name
    out.write_bytes(base64.b64decode(shot["data"]))
    return out


# ---------------------------------------------------------------- UI on a service that is not ready
@pytest.mark.browser
def test_drawing_tools_and_clear_failures(browser, data_dir, serve_app, tmp_path):
    from server import create_app
    d = browser
    open_page(d, serve_app(create_app()))
    assert not el(d, "Search sketch").is_enabled() and not el(d, "Undo").is_enabled()

    touch_stroke(d, [(440, 60), (470, 60)])                  # a line erased away leaves nothing to search for
    el(d, "Eraser").click()
    touch_stroke(d, [(430, 60), (480, 60)])
    assert not el(d, "Search sketch").is_enabled(), "a canvas drawn on and erased is empty (a QA session found it)"
    el(d, "Undo").click()
    assert el(d, "Search sketch").is_enabled()
    el(d, "Undo").click()
    assert not el(d, "Search sketch").is_enabled()
    el(d, "Pen").click()

    touch_stroke(d, [(100, 100), (256, 256), (400, 400)])                    # pen
    assert d.execute_script("return window.sketchshop.history.map(s => s.tool)") == ["pen"]
    assert layer_pixel(d, "strokes", 256, 256)[3] == 255
    assert layer_pixel(d, "hints", 256, 256)[3] == 0, "pen strokes stay out of the hint layer"

    el(d, "Hint colour red").click()                                          # a hint dot
    assert el(d, "Hint colour red").get_attribute("aria-pressed") == "true"
    assert el(d, "Pen").get_attribute("aria-pressed") == "false"
    touch_stroke(d, [(120, 380)])
    r, g, b, a = layer_pixel(d, "hints", 120, 380)
    assert (r, g, b, a) == (*vocab.COLOUR_RGB["red"], 255)
    assert layer_pixel(d, "strokes", 120, 380)[3] == 0
    assert el(d, "Colourise and preview").is_enabled()

    el(d, "Eraser").click()                                                   # erase across the line
    touch_stroke(d, [(200, 300), (256, 256), (300, 200)])
    assert layer_pixel(d, "strokes", 256, 256)[3] == 0
    assert layer_pixel(d, "strokes", 110, 110)[3] == 255, "the eraser only erased where it went"
    el(d, "Undo").click()
    assert layer_pixel(d, "strokes", 256, 256)[3] == 255, "undo brings the erased ink back"
    assert d.execute_script("return window.sketchshop.history.length") == 2

    el(d, "Search sketch").click()                                            # 503 from the server
    wait_idle(d)
    msg = message(d)
    assert msg and "not ready" in msg, msg

    assert d.execute_script("return document.documentElement.scrollWidth") <= 390, "nothing overflows the phone width"
    el(d, "Dismiss message").click()
    assert message(d) is None
    el(d, "Photo").click()
    text = tmp_path / "notes.txt"
    text.write_text("not a photo")
    el(d, "Choose photo").send_keys(str(text))                                # refused in the page
    assert "not a picture" in (message(d) or "")


# ---------------------------------------------------------------- live: real models, real catalogue
def sketch_strokes(sketch, max_points: int = 60) -> list[list[tuple[float, float]]]:
    """A studio sketch's lines as finger strokes: the outer contours of its dark pixels."""
    import cv2
    a = (np.asarray(sketch.convert("L")) < 128).astype(np.uint8) * 255
    a = cv2.dilate(a, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(a, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = []
    for c in sorted(contours, key=len, reverse=True)[:6]:
        c = c[:, 0, :].astype(float)
        step = max(1, len(c) // max_points)
        out.append([(x, y) for x, y in c[::step]])
    return out


def wait_for_results(d) -> None:
    """Until a search shows its garments (or a message, which fails the test)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(d, 120, poll_frequency=0.2).until(
        lambda d: message(d) or d.find_elements(By.CSS_SELECTOR, ".item"))
    wait_idle(d)
    assert message(d) is None, message(d)


def items_state(d) -> list[dict]:
    return d.execute_script("return window.sketchshop.query.items.map(it => ({"
                            "data: {category: it.data.category, colour: it.data.colour, box: it.data.box},"
                            "chips: it.chips, matches: it.matches}))")


@pytest.mark.browser
def test_sketch_colourise_search_and_chips(browser, live_server, live_catalog):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    d = browser
    open_page(d, live_server)
    p = live_catalog.products[4]
    scale = 512 / p.sketch.width
    for stroke in sketch_strokes(p.sketch):
        touch_stroke(d, [(x * scale, y * scale) for x, y in stroke])
    el(d, f"Hint colour {p.colour}").click()
    ys, xs = np.nonzero(np.asarray(p.mask) > 127)
    cx, cy = float(xs.mean()) * scale, float(ys.mean()) * scale
    touch_stroke(d, [(cx - 20, cy), (cx + 20, cy)])
    touch_stroke(d, [(cx, cy + 30)])

    el(d, "Colourise and preview").click()
    wait_idle(d)
    assert message(d) is None, message(d)
    preview = d.find_element(By.ID, "preview")
    assert preview.is_displayed() and d.execute_script("return arguments[0].naturalWidth", preview) >= 64

    el(d, "Search sketch").click()
    wait_idle(d)
    assert message(d) is None, message(d)
    WebDriverWait(d, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".item"))
    (item,) = items_state(d)
    assert item["data"]["box"] is None
    chips = d.find_elements(By.CSS_SELECTOR, ".item .chip")
    assert [c.get_attribute("data-key") for c in chips][:2] == ["category", "colour"]
    on = {c.get_attribute("data-key"): c.get_attribute("aria-pressed") == "true" for c in chips}
    assert on["category"] and not any(v for k, v in on.items() if k not in ("category", "colour"))
    colour_p = d.execute_script("return window.sketchshop.query.items[0].data.colour_p")
    assert "colour" in on, "a sketch with colour hints has a colour"
    assert on["colour"] == (colour_p >= 0.5)
    category, colour = item["data"]["category"], item["data"]["colour"]
    agree = [m for m in item["matches"] if m["category"] == category and (not on["colour"] or m["colour"] == colour)]
    cards = d.find_elements(By.CSS_SELECTOR, ".item .card")
    assert len(cards) == min(12, len(agree)), "the cards are the matches that agree with every chip that is on"
    in_catalogue = sum(q.category == category and (not on["colour"] or q.colour == colour) for q in live_catalog.products)
    assert len(cards) == min(12, in_catalogue), "agreeing products past the first answer are asked for (a QA session)"
    for card in cards:
        assert card.find_element(By.CSS_SELECTOR, ".buy").get_attribute("href").startswith(
            "https://studio-shop.example/products/")
        assert card.find_element(By.CSS_SELECTOR, ".card-price").text
    WebDriverWait(d, 20).until(lambda d: d.execute_script(  # the product pictures arrive from /v1/images
        "return [...document.querySelectorAll('.item .card-image')].every(i => i.complete)"))
    assert d.execute_script("return [...document.querySelectorAll('.item .card-image')].map(i => i.naturalWidth)"
                            ) == [p.image.width] * len(cards)
    screenshot(d, "webclient-sketch.png")

    # colour chip off (or on, then off): the search re-runs with only the category filter, from the server
    if not on["colour"]:
        el(d, css=".item .chip[data-key='colour']").click()
        wait_idle(d)
    el(d, css=".item .chip[data-key='colour']").click()
    wait_idle(d)
    assert message(d) is None, message(d)
    (item,) = items_state(d)
    assert item["matches"], f"the catalogue has {category} products"
    assert {m["category"] for m in item["matches"]} == {category}
    assert d.find_element(By.CSS_SELECTOR, ".item .chip[data-key='colour']").get_attribute("aria-pressed") == "false"
    assert d.find_elements(By.CSS_SELECTOR, ".item .card")
    screenshot(d, "webclient-sketch-category.png")

    # every chip off: nothing is required, so the whole ranking shows
    for key in [c["key"] for c in item["chips"] if c["on"]]:
        el(d, css=f".item .chip[data-key='{key}']").click()
        wait_idle(d)
    (item,) = items_state(d)
    assert not any(c["on"] for c in item["chips"])
    assert len({m["category"] for m in item["matches"]}) > 1, "without the category filter other categories appear"
    cards = d.find_elements(By.CSS_SELECTOR, ".item .card")
    assert len(cards) == min(12, len(item["matches"])) > 0


@pytest.mark.browser
def test_photo_upload_draws_boxes_and_cards(browser, live_server, live_catalog, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    d = browser
    open_page(d, live_server)
    p = live_catalog.products[20]
    photo = tmp_path / "outfit.jpg"
    p.image.save(photo, "JPEG", quality=92)
    el(d, "Photo").click()
    el(d, "Take photo").send_keys(str(photo))
    wait_for_results(d)
    assert d.find_element(By.ID, "photo-view").is_displayed()
    items = items_state(d)
    assert items and all(it["data"]["box"] for it in items)
    # the first box is drawn in the first badge colour (#e11d48) on the photo canvas, at its left edge
    x1, y1, x2, y2 = items[0]["data"]["box"]
    edge = d.execute_script("return Array.from(document.getElementById('photo-view').getContext('2d')"
                            f".getImageData({round(x1) - 2}, {round((y1 + y2) / 2)}, 5, 1).data)")
    pixels = np.array(edge).reshape(-1, 4)[:, :3]
    assert (np.abs(pixels - [225, 29, 72]).max(axis=1) <= 12).any(), pixels
    out = screenshot(d, "webclient-photo.png")
    assert out.stat().st_size > 10_000

    # each garment either shows cards or says why not; with its chips off, the first shows cards
    for node in d.find_elements(By.CSS_SELECTOR, ".item"):
        assert node.find_elements(By.CSS_SELECTOR, ".card") or "Tap a chip" in node.find_element(
            By.CSS_SELECTOR, ".item-note").text
    first = ".item[data-index='0']"
    for key in [c["key"] for c in items[0]["chips"] if c["on"]]:
        el(d, css=f"{first} .chip[data-key='{key}']").click()
        wait_idle(d)
    assert message(d) is None, message(d)
    hrefs = [a.get_attribute("href") for a in d.find_elements(By.CSS_SELECTOR, f"{first} .card .buy")]
    assert hrefs and all(h.startswith("https://studio-shop.example/products/") for h in hrefs)
    img = d.find_element(By.CSS_SELECTOR, f"{first} .card-image")   # lazy: loads once scrolled into view
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", img)
    WebDriverWait(d, 20).until(lambda d: d.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth > 0", img))

    # a failed upload says why and leaves none of this photo's garments under its message (found by QA)
    junk = tmp_path / "notes.jpg"
    junk.write_text("not a photo at all")
    el(d, "Photo").click()
    el(d, "Take photo").send_keys(str(junk))
    WebDriverWait(d, 30).until(lambda d: message(d))
    wait_idle(d)
    assert "not a picture" in message(d)
    assert not d.find_elements(By.CSS_SELECTOR, ".item") and not d.find_element(By.ID, "photo-view").is_displayed()


@pytest.mark.browser
def test_photo_of_a_drawing_on_paper_searches_as_a_sketch(browser, live_server, live_catalog, tmp_path):
    from conftest import photographed_on_paper
    d = browser
    open_page(d, live_server)
    photo = tmp_path / "drawing.jpg"
    photographed_on_paper(live_catalog.products[7].sketch).save(photo, "JPEG", quality=95)
    el(d, "Photo").click()
    el(d, "It is a drawing on paper").click()
    el(d, "Choose photo").send_keys(str(photo))
    wait_for_results(d)
    assert d.execute_script("return window.sketchshop.query.kind") == "sketch"
    (item,) = items_state(d)
    assert item["data"]["box"] is None and item["matches"]
