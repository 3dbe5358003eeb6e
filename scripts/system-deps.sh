#!/usr/bin/env bash
# Debian packages the crawler and the browser tests need: Chromium and its driver.
set -u
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi
cmd="apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver"
if [ "$(id -u)" = 0 ]; then
  echo "installing Chromium and ChromeDriver: $cmd"
  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver) >/dev/null \
    || { echo "apt-get failed; the crawler and browser tests need: $cmd" >&2; exit 0; }
else
  echo "Chromium is missing; as root run: $cmd" >&2
fi
