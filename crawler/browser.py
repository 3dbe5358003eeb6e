"""One way to start a browser: Debian's headless Chromium via an explicit chromedriver path (so
Selenium Manager never tries to download a driver), or a Selenium Grid when `remote_url` is given.

Used by the crawler and by the browser tests of the web client.
"""
from __future__ import annotations

import logging
import shutil
import tempfile

from sketchshop.errors import UserError

log = logging.getLogger(__name__)

# What a crawl never needs the browser to fetch: images come over plain HTTP outside the browser.
BLOCK_DEFAULT = ("*.jpg", "*.jpeg", "*.png", "*.gif", "*.webp", "*.avif", "*.svg", "*.ico", "*.css",
                 "*.woff", "*.woff2", "*.ttf", "*.otf", "*.mp4", "*.webm")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--disable-extensions", "--disable-default-apps", "--mute-audio",
         "--disable-features=Translate,MediaRouter,OptimizationHints")


def chromium_paths() -> tuple[str, str]:
    """(chromium binary, chromedriver) or UserError naming the fix."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        raise UserError("Chromium or chromedriver not found; install them with scripts/system-deps.sh "
                        "(apt-get install chromium chromium-driver) or pass --remote-url for a Selenium Grid")
    return binary, driver


def make_driver(remote_url: str | None = None, mobile: bool = False, block=BLOCK_DEFAULT,
                user_agent: str | None = None, page_load_timeout: float = 30.0, window=(1280, 900)):
    """A ready WebDriver. `block`: URL patterns the browser must not load (CDP Network.setBlockedURLs);
    images are also switched off by preference when they are blocked. `mobile`: phone emulation.
    Call `driver.quit()` when done (it also removes the fresh profile directory)."""
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.page_load_strategy = "eager"   # DOM ready is enough: we wait explicitly for what we need
    for f in FLAGS:
        opts.add_argument(f)
    opts.add_argument(f"--window-size={window[0]},{window[1]}")
    if user_agent:
        opts.add_argument(f"--user-agent={user_agent}")
    if mobile:
        opts.add_experimental_option("mobileEmulation", {
            "deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 3.0, "touch": True},
            "userAgent": user_agent or ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
                                        "(KHTML, like Gecko) Chrome/156.0 Mobile Safari/537.36")})
    block = tuple(block or ())
    if any(p.endswith((".jpg", ".png")) for p in block):
        opts.add_experimental_option("prefs", {"profile.managed_default_content_settings.images": 2})
    profile = None
    try:
        if remote_url:
            driver = webdriver.Remote(command_executor=remote_url, options=opts)
        else:
            binary, driver_path = chromium_paths()
            opts.binary_location = binary
            profile = tempfile.mkdtemp(prefix="sketchshop-chromium-")
            opts.add_argument(f"--user-data-dir={profile}")
            driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    except WebDriverException as e:
        if profile:
            shutil.rmtree(profile, ignore_errors=True)
        raise UserError(f"cannot start the browser{' at ' + remote_url if remote_url else ''}: "
                        f"{e.msg or e}".strip()) from None
    driver.set_page_load_timeout(page_load_timeout)
    if block:
        try:
            driver.execute_cdp_cmd("Network.enable", {})
            driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": list(block)})
        except (AttributeError, WebDriverException):  # a Grid node may not expose CDP
            log.debug("CDP URL blocking unavailable; relying on the images preference")
    if profile:
        quit_ = driver.quit

        def quit_and_clean():
            try:
                quit_()
            finally:
                shutil.rmtree(profile, ignore_errors=True)
        driver.quit = quit_and_clean
    return driver
