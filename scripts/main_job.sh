#!/usr/bin/env bash
# The README's main job: build skysift, load a generated sample of embeddings with metadata into
# a fresh database, and query it. Needs only Rust (cargo) and Python 3 (standard library).
# Usage: scripts/main_job.sh [WORKDIR]   (default: target/main-job)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-target/main-job}"
rm -rf "$work"
mkdir -p "$work"
echo "== building skysift (release)"
cargo build --release --quiet
bin=target/release/skysift
echo "== generating a sample (synthetic, clustered embeddings with metadata)"
python3 scripts/gen_sample.py "$work/sample" --rows 20000 --dim 128 --queries 100
echo "== loading"
"$bin" load "$work/db" scenes --vectors "$work/sample/vectors.fbin" --metadata "$work/sample/metadata.jsonl" --batch-size 5000
echo "== info"
"$bin" info "$work/db"
echo "== search: 100 query vectors, top 5"
"$bin" search "$work/db" scenes --queries "$work/sample/queries.fbin" -k 5 --output "$work/results.jsonl"
head -n 3 "$work/results.jsonl"
echo "== count"
"$bin" count "$work/db" scenes
echo "== verify"
"$bin" verify "$work/db"
echo "main job done: database in $work/db, results in $work/results.jsonl"
