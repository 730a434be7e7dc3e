#!/usr/bin/env bash
# GPU check of `skysift import`, prepared for a machine with an NVIDIA GPU and no network.
# Run from the repository root:
#
#   scripts/gpu_import_check.sh [--ort-dir DIR] [--archive DIR] [--limit N] [--batch-size B]
#
# It imports an archive (default ../shared/data/aid-rsicd/images, the 8,973 AID scenes; reads
# ../shared) twice, with --device cuda and with --device cpu, into fresh databases, and prints
# for each: images/s, tiles/s, encoder busy (encoder_seconds / encoder_window_seconds), the
# encoder's own rate (tiles / encoder_seconds) and the rate of everything around it (tiles /
# (seconds - encoder_seconds): decode, resize, thumbnails, hashing, commits). Then it compares
# the CUDA embeddings with the CPU's, record by record (examples/compare_vectors.rs): every
# cosine must be >= 0.999.
#
# It fetches nothing. What it needs, found in this order:
# - skysift: $SKYSIFT_BIN, else target/release/skysift; compare_vectors: $SKYSIFT_COMPARE_BIN,
#   else target/release/examples/compare_vectors; built with cargo when missing and cargo exists;
# - ONNX Runtime with its CUDA provider: --ort-dir DIR (or $SKYSIFT_ORT_GPU_DIR), else
#   .cache/onnxruntime-gpu/ (scripts/setup_ort.sh --gpu where a registry is reachable): a folder
#   with libonnxruntime.so.* and libonnxruntime_providers_cuda.so (+ _providers_shared.so);
# - CPU runs: .cache/onnxruntime/ (scripts/setup_ort.sh), else the same library as the GPU runs;
# - the CUDA, cuBLAS, cuFFT, cuRAND and cuDNN libraries the provider links: $CUDA_LIB_DIRS
#   (colon-separated), plus every lib folder of NVIDIA's wheels under the site-packages of
#   python3 (where a PyTorch install puts them: site-packages/nvidia/*/lib) and torch/lib.
#   Missing ones are listed (ldd) and the script stops with status 2 before any import;
# - models/demo with text.onnx (scripts/setup_models.sh).
# Results (summaries, stderr, the comparison) go to $OUT (the device tool's output folder) or
# /tmp/gpu_import_check.
# Exit status: 0 all runs done and embeddings agree; 1 a run failed or cosine < 0.999; 2 a
# prerequisite is missing.
set -uo pipefail
cd "$(dirname "$0")/.."
ORT_DIR=${SKYSIFT_ORT_GPU_DIR:-.cache/onnxruntime-gpu}
ARCHIVE=../shared/data/aid-rsicd/images
LIMIT=0
BATCH=64
while [ $# -gt 0 ]; do
  case "$1" in
    --ort-dir) ORT_DIR=$2; shift 2 ;;
    --archive) ARCHIVE=$2; shift 2 ;;
    --limit) LIMIT=$2; shift 2 ;;
    --batch-size) BATCH=$2; shift 2 ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) echo "gpu_import_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-/tmp/gpu_import_check}
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
missing() { echo "missing: $*" | tee -a "$OUT/missing.txt" >&2; exit 2; }

echo "== device"
if ! nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee "$OUT/device.txt"; then
  missing "nvidia-smi (no NVIDIA driver here)"
fi

BIN=${SKYSIFT_BIN:-target/release/skysift}
CMP=${SKYSIFT_COMPARE_BIN:-target/release/examples/compare_vectors}
if [ ! -x "$BIN" ] || [ ! -x "$CMP" ]; then
  command -v cargo >/dev/null || missing "$BIN or $CMP, and no cargo to build them (carry a stripped release build)"
  cargo build --release --bin skysift --example compare_vectors || missing "a release build"
fi
[ -f models/demo/text.onnx ] || missing "models/demo/text.onnx (scripts/setup_models.sh)"
[ -d "$ARCHIVE" ] || missing "the archive $ARCHIVE"

GPU_LIB=$(ls "$ORT_DIR"/libonnxruntime.so.* 2>/dev/null | head -1)
[ -n "$GPU_LIB" ] || missing "libonnxruntime.so.* in $ORT_DIR (give --ort-dir)"
[ -f "$ORT_DIR/libonnxruntime_providers_cuda.so" ] || missing "$ORT_DIR/libonnxruntime_providers_cuda.so (a CPU build of ONNX Runtime?)"
CPU_LIB=$(ls .cache/onnxruntime/libonnxruntime.so.* 2>/dev/null | head -1)
CPU_LIB=${CPU_LIB:-$GPU_LIB}

# CUDA libraries: given folders, NVIDIA's wheels (PyTorch's dependencies), torch/lib.
dirs=${CUDA_LIB_DIRS:-}
if command -v python3 >/dev/null; then
  found=$(python3 - <<'EOF'
import glob, os, site, sys
roots = list(site.getsitepackages()) + [site.getusersitepackages()]
out = []
for r in roots:
    out += sorted(glob.glob(os.path.join(r, "nvidia", "*", "lib")))
    out += [p for p in [os.path.join(r, "torch", "lib")] if os.path.isdir(p)]
print(":".join(dict.fromkeys(out)))
EOF
)
  dirs=${dirs:+$dirs:}$found
fi
export LD_LIBRARY_PATH="$ORT_DIR${dirs:+:$dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== CUDA libraries (LD_LIBRARY_PATH=$LD_LIBRARY_PATH)"
unresolved=$(ldd "$ORT_DIR/libonnxruntime_providers_cuda.so" 2>&1 | grep "not found" || true)
if [ -n "$unresolved" ]; then
  echo "$unresolved" | tee "$OUT/ldd_missing.txt"
  missing "libraries of the CUDA provider (above): give their folders in CUDA_LIB_DIRS"
fi
for lib in libcudnn.so.9 libcufft.so; do
  if ! ls $(echo "$LD_LIBRARY_PATH" | tr ':' ' ' | sed 's|\([^ ]*\)|\1/'"$lib"'*|g') >/dev/null 2>&1; then
    echo "warning: $lib* not found on LD_LIBRARY_PATH (the CUDA provider loads it at run time)"
  fi
done

echo "== archive"
SRC=$ARCHIVE
if [ "$LIMIT" -gt 0 ]; then
  SRC=$WORK/archive
  find "$ARCHIVE" -type f \( -name '*.jpg' -o -name '*.png' -o -name '*.tif' \) | sort | head -n "$LIMIT" |
    while read -r f; do
      # Copies: import refuses links that lead out of the archive.
      rel=${f#"$ARCHIVE"/}; mkdir -p "$SRC/$(dirname "$rel")"; cp "$f" "$SRC/$rel"
    done
fi
echo "$(find -L "$SRC" -type f | wc -l) files from $ARCHIVE"

status=0
run() { # device ort-lib
  local dev=$1 lib=$2
  echo "== import --device $dev"
  ORT_DYLIB_PATH=$lib "$BIN" import "$WORK/db_$dev" "$SRC" --collection c --device "$dev" --batch-size "$BATCH" \
    --no-progress --json >"$OUT/$dev.json" 2>"$OUT/$dev.err"
  local rc=$?
  python3 - "$OUT/$dev.json" "$OUT/$dev.err" <<'EOF'
import json, sys
err = open(sys.argv[2]).read()
try:
    s = json.load(open(sys.argv[1]))
except ValueError:
    print("  no summary: " + (err.strip().splitlines() or ["?"])[-1][:300]); sys.exit(0)
files, tiles, secs, enc = s["files"], s["tiles_written"], s["seconds"], s["encoder_seconds"]
busy = enc / s["encoder_window_seconds"] if s["encoder_window_seconds"] else 0
around = tiles / (secs - enc) if secs > enc else float("inf")
print(f"  {files} files, {tiles} tiles in {secs:.2f} s: {files/secs:.1f} images/s, {tiles/secs:.1f} tiles/s, "
      f"encoder busy {busy*100:.1f}%, encoder alone {tiles/enc if enc else 0:.1f} tiles/s, "
      f"everything else {around:.1f} tiles/s")
EOF
  [ $rc -eq 0 ] || { echo "  exit $rc: $(tail -3 "$OUT/$dev.err")"; status=1; }
}
run cuda "$GPU_LIB"
run cpu "$CPU_LIB"
echo "== CUDA embeddings against the CPU's"
if [ -d "$WORK/db_cuda" ] && [ -d "$WORK/db_cpu" ]; then
  "$CMP" "$WORK/db_cuda" "$WORK/db_cpu" c 0.999 | tee "$OUT/compare.txt" || status=1
else
  echo "  not compared: an import did not complete"; status=1
fi
echo "results in $OUT"
exit $status
