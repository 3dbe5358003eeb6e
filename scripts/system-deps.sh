#!/usr/bin/env bash
# Debian packages the tests need: Chromium and its driver (crawler, web client) and a PostgreSQL
# server (the catalogue tests run on SQLite and again on a throwaway PostgreSQL cluster).
set -u
pkgs=""
command -v chromium >/dev/null && command -v chromedriver >/dev/null || pkgs="chromium chromium-driver"
command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || pkgs="$pkgs postgresql"
[ -z "$pkgs" ] && exit 0
cmd="apt-get update && apt-get install -y --no-install-recommends $pkgs"
if [ "$(id -u)" = 0 ]; then
  echo "installing $pkgs: $cmd"
  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $pkgs) >/dev/null \
    || { echo "apt-get failed; the tests that need them will skip: $cmd" >&2; exit 0; }
else
  echo "missing $pkgs (the tests that need them will skip); as root run: $cmd" >&2
fi
