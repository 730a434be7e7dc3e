#!/usr/bin/env bash
# Long kill -9 campaign: a writer child is killed KILLS times at random moments (during writes,
# flushes, compactions and recovery); every reopen must show every committed batch and no
# partial one. Usage: scripts/crash_loop.sh [KILLS] [SEED]   (default 2000 kills, random seed)
set -euo pipefail
cd "$(dirname "$0")/.."
export SKYSIFT_CRASH_KILLS="${1:-2000}"
if [ -n "${2:-}" ]; then export SKYSIFT_CRASH_SEED="$2"; fi
cargo test --release --test tests -- --exact crash::kill9_loses_no_committed_batch --nocapture
