"""One way to start a browser: Debian's headless Chromium via an explicit chromedriver path (so
Selenium Manager never tries to download a driver), or a Selenium Grid when `remote_url` is given.

Used by the crawler and by the browser tests of the web client.

A local browser dies with the thread that started it, even when its process is killed outright
(`kill -9`, the OOM killer): chromedriver and Chromium each run under `setpriv --pdeathsig KILL`
(Linux), so nothing is left running. A profile directory left by such a death is removed by the
next browser start.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

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


PROFILE_PREFIX = "sketchshop-chromium-"


def _start_time(pid: int) -> str | None:
    """The kernel's start time of process `pid` (with the pid, one process for ever), None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@functools.cache
def _setpriv() -> str | None:
    """`setpriv` if it can give a child a parent-death signal here (util-linux on Linux), else None."""
    path = shutil.which("setpriv")
    if path and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            if subprocess.run([path, "--pdeathsig", "KILL", "true"], capture_output=True, timeout=10).returncode == 0:
                return path
    return None


def _dies_with_parent(exe: str, profile: str) -> str:
    """A script in `profile` that runs `exe` killed when its parent dies; `exe` itself where that cannot be
    done (no setpriv, or a temporary directory mounted noexec)."""
    setpriv = _setpriv()
    if not setpriv:
        return exe
    script = Path(profile) / f"{Path(exe).name}-tied"
    script.write_text(f'#!/bin/sh\nexec {shlex.quote(setpriv)} --pdeathsig KILL {shlex.quote(exe)} "$@"\n')
    script.chmod(0o700)
    return str(script) if os.access(script, os.X_OK) else exe


def remove_stale_profiles(root: str | None = None) -> int:
    """Remove the profile directories of browsers whose process is gone without quitting them; returns how many."""
    removed = 0
    for d in Path(root or tempfile.gettempdir()).glob(PROFILE_PREFIX + "*"):
        try:
            pid, started = (d / "owner").read_text().split()
        except (OSError, ValueError):
            continue  # not ours to judge: no owner recorded (yet)
        if _start_time(int(pid)) != started:
            shutil.rmtree(d, ignore_errors=True)
            removed += 1
    if removed:
        log.info("removed %d profile directories of browsers whose process had died", removed)
    return removed


def make_driver(remote_url: str | None = None, mobile: bool = False, block=BLOCK_DEFAULT,
                user_agent: str | None = None, page_load_timeout: float = 30.0, window=(1280, 900)):
    """A ready WebDriver. `block`: URL patterns the browser must not load (CDP Network.setBlockedURLs);
    images are also switched off by preference when they are blocked. `mobile`: phone emulation.
    Call `driver.quit()` when done (it also removes the fresh profile directory); a local browser also
    ends when the thread that called this ends."""
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
            remove_stale_profiles()
            profile = tempfile.mkdtemp(prefix=PROFILE_PREFIX)
            started = _start_time(os.getpid())
            if started:  # the owner, for a later start to tell whether this one died (Linux's /proc)
                (Path(profile) / "owner").write_text(f"{os.getpid()} {started}")
            opts.binary_location = _dies_with_parent(binary, profile)
            opts.add_argument(f"--user-data-dir={profile}")
            driver = webdriver.Chrome(service=Service(_dies_with_parent(driver_path, profile)), options=opts)
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
