#!/usr/bin/env bash
# Headless Chromium and its WebDriver (Debian's `chromium` and `chromium-driver` packages) for the
# gallery map's browser test (python/tests/test_map.py). Idempotent; never fails the test run:
# where they cannot be installed it says why, and the test skips with the same reason.
#
# Usage: scripts/setup_browser.sh
set -uo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  echo "map browser test: $(chromium --version 2>/dev/null | head -1), chromedriver at $(command -v chromedriver)"
  exit 0
fi
why=""
if ! command -v apt-get >/dev/null; then
  why="no chromium/chromedriver and no apt-get to install them (install chromium and its driver by hand)"
elif [ "$(id -u)" != 0 ]; then
  why="no chromium/chromedriver and not root, so apt-get cannot install them (sudo apt-get install chromium chromium-driver)"
else
  echo "installing chromium and chromium-driver (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; then
    apt-get update -q >/dev/null 2>&1
    apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || why="apt-get install chromium chromium-driver failed"
  fi
fi
if [ -z "$why" ] && command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  echo "map browser test: $(chromium --version 2>/dev/null | head -1) installed"
else
  echo "map browser test: not run: ${why:-chromium or chromedriver still missing after apt-get}"
fi
exit 0
