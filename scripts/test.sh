#!/usr/bin/env bash
# The README's test command: every test of the workspace (unit, integration, doc tests).
# Tests never read ../shared and need no network beyond the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace "$@"
