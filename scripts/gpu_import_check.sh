#!/usr/bin/env bash
# GPU check of `skysift import` (issue 6), prepared for the lent device machine (run from the repo root):
#
#   scripts/gpu_import_check.sh            # results in $OUT (the device tool's output folder) or /tmp
#
# What it measures, CUDA next to CPU on the same machine: images/s, tiles/s and the fraction of time the
# encoder is busy (summary field encoder_seconds / encoder_window_seconds) for
#   1. 3,000 chips (samples/aid-mini copied $COPIES times, default 10), one record each;
#   2. the same chips cut into 64-pixel tiles with 32 px overlap (16 tiles each): an encoder-bound load;
# plus the peak resident memory of each run (/usr/bin/time -v when present).
#
# Needs, on that machine (it reaches no network):
# - a skysift binary: $SKYSIFT_BIN, else target/release/skysift (carry it, stripped), else cargo to build;
# - ONNX Runtime with CUDA: $SKYSIFT_ORT_LIB, or .cache/onnxruntime-gpu/ (scripts/setup_ort.sh --gpu), and
#   the CUDA 13 runtime libraries it loads (see scripts/setup_ort.sh); models/demo with text.onnx.
# Exit status: 0 when the CUDA runs completed, 2 when a prerequisite is missing, 3 when CUDA fell back.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_import_check}
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "== device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee "$OUT/device.txt"

BIN=${SKYSIFT_BIN:-target/release/skysift}
if [ ! -x "$BIN" ]; then
  if command -v cargo >/dev/null; then
    cargo build --release --bin skysift || exit 2
  else
    echo "no skysift binary at $BIN and no cargo: carry a release build (strip it)"; exit 2
  fi
fi
if [ ! -f models/demo/text.onnx ]; then echo "models/demo/text.onnx missing: run scripts/setup_models.sh"; exit 2; fi

echo "== archive"
mkdir -p "$WORK/chips"
for i in $(seq 1 "${COPIES:-10}"); do
  mkdir -p "$WORK/chips/copy$i"
  cp -r samples/aid-mini/* "$WORK/chips/copy$i/"
done
find "$WORK/chips" -name '*.jpg' | wc -l

TIME=""
[ -x /usr/bin/time ] && TIME="/usr/bin/time -v"
status=0
run() { # name device extra-args...
  local name=$1 dev=$2; shift 2
  rm -rf "$WORK/db_$name"
  echo "== $name ($dev)"
  $TIME "$BIN" import "$WORK/db_$name" "$WORK/chips" --collection c --device "$dev" --batch-size 128 \
    --no-progress --json "$@" >"$OUT/$name.json" 2>"$OUT/$name.err"
  local rc=$?
  python3 - "$OUT/$name.json" "$OUT/$name.err" <<'EOF'
import json, re, sys
err = open(sys.argv[2]).read()
try:
    s = json.load(open(sys.argv[1]))
except ValueError:
    print("  no summary: " + (err.strip().splitlines() or ["?"])[-1][:300]); sys.exit(0)
rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
files = s["files"]; secs = s["seconds"]
busy = s["encoder_seconds"] / s["encoder_window_seconds"] if s["encoder_window_seconds"] else 0
print(f"  {files} files, {s['tiles_written']} tiles in {secs:.2f} s: {files/secs:.1f} images/s, "
      f"{s['tiles_written']/secs:.1f} tiles/s, encoder busy {busy*100:.1f}%"
      + (f", peak RSS {int(rss.group(1))/1024:.0f} MB" if rss else ""))
EOF
  grep -i "fall\|cuda\|warn" "$OUT/$name.err" | head -5
  return $rc
}
for dev in cuda cpu; do
  run "chips_$dev" "$dev" || status=1
  run "tiles_$dev" "$dev" --chip-max 64 --tile 64 --overlap 32 || status=1
done
if grep -qi "falling back\|fell back" "$OUT"/chips_cuda.err "$OUT"/tiles_cuda.err 2>/dev/null; then status=3; fi
echo "results in $OUT"
exit $status
