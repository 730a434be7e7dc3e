#!/usr/bin/env bash
# Renders a gallery page in headless Chromium (Debian's `chromium` package) and saves a PNG,
# to check the REPL's `\show` output in a real browser.
# Usage: scripts/gallery_screenshot.sh GALLERY.html [OUT.png]
set -euo pipefail
page="$(realpath "$1")"
out="${2:-${page%.html}.png}"
profile="$(mktemp -d)"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$profile" --window-size=1280,1000 \
  --screenshot="$out" "file://$page" >/dev/null 2>&1
rm -rf "$profile"
test -s "$out"
echo "screenshot: $out"
