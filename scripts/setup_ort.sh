#!/usr/bin/env bash
# Fetch the ONNX Runtime shared library that skysift loads at run time (ort, load-dynamic).
#
# Usage:
#   scripts/setup_ort.sh           # CPU build  -> .cache/onnxruntime/
#   scripts/setup_ort.sh --gpu     # CUDA build -> .cache/onnxruntime-gpu/
#   scripts/setup_ort.sh --quiet   # print only the library path (for ORT_DYLIB_PATH=$(...))
#
# The library comes from the official ONNX Runtime wheel on PyPI (the only registry this
# project may reach), downloaded with pip and unpacked with Python's zipfile (no unzip needed).
# Idempotent: when the library is already there with the expected sha256, nothing is fetched.
# The last line printed is the absolute path of the library: export it as ORT_DYLIB_PATH.
#
# CPU:  onnxruntime==1.32.0      onnxruntime/capi/libonnxruntime.so.1.32.0
#                                onnxruntime/capi/libonnxruntime_providers_shared.so
# GPU:  onnxruntime-gpu==1.31.1  the same two files plus libonnxruntime_providers_cuda.so
#       (and libonnxruntime_providers_tensorrt.so if present). The CUDA provider links against
#       libcudart.so.13, libcublas.so.13, libcublasLt.so.13, libcurand.so.10 and the driver's
#       libcuda.so.1, and loads cuDNN 9 (libcudnn*.so.9) and cuFFT at run time. Take them from a
#       system CUDA 13 install, or from NVIDIA's PyPI wheels (the CUDA 13 ones carry no suffix,
#       cuDNN's does):
#         python3 -m pip install nvidia-cuda-runtime nvidia-cublas nvidia-curand nvidia-cufft \
#                                nvidia-cudnn-cu13
#       and put the lib folders under site-packages/nvidia/ on LD_LIBRARY_PATH
#       (onnxruntime-gpu's own `onnxruntime.preload_dlls()` does the same from Python).
#       That part is documented only: this script does not install CUDA.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
GPU=0
QUIET=0
for arg in "$@"; do
  case "$arg" in
    --gpu) GPU=1 ;;
    --quiet|-q) QUIET=1 ;;
    -h|--help) sed -n '2,26p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "setup_ort.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

if [ "$GPU" = 1 ]; then
  PKG=onnxruntime-gpu; VER=1.31.1; DEST="$ROOT/.cache/onnxruntime-gpu"
  LIBS=("libonnxruntime.so.$VER" "libonnxruntime_providers_shared.so" "libonnxruntime_providers_cuda.so")
  OPTIONAL_LIBS=("libonnxruntime_providers_tensorrt.so")
  SHA_MAIN=""   # not recorded: verified by pip against PyPI's hash only
else
  PKG=onnxruntime; VER=1.32.0; DEST="$ROOT/.cache/onnxruntime"
  LIBS=("libonnxruntime.so.$VER" "libonnxruntime_providers_shared.so")
  OPTIONAL_LIBS=()
  SHA_MAIN="6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f"
fi
MAIN="$DEST/libonnxruntime.so.$VER"

log() { if [ "$QUIET" = 0 ]; then echo "$@" >&2; fi; }

sha_of() { "$PYTHON" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }

have_all() {
  for l in "${LIBS[@]}"; do [ -f "$DEST/$l" ] || return 1; done
  if [ -n "$SHA_MAIN" ] && [ "$(sha_of "$MAIN")" != "$SHA_MAIN" ]; then return 1; fi
  return 0
}

if have_all; then
  log "ONNX Runtime $PKG $VER already in $DEST"
else
  log "fetching $PKG==$VER from PyPI ..."
  TMP="$(mktemp -d)"
  trap 'rm -rf "$TMP"' EXIT
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 "$PKG==$VER" -d "$TMP" >&2
  WHL="$(ls "$TMP"/*.whl | head -n 1)"
  mkdir -p "$DEST"
  "$PYTHON" - "$WHL" "$DEST" "${LIBS[*]}" "${OPTIONAL_LIBS[*]:-}" <<'EOF'
import os, sys, zipfile
whl, dest, libs, optional = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
with zipfile.ZipFile(whl) as z:
    names = set(z.namelist())
    for lib in libs + optional:
        member = "onnxruntime/capi/" + lib
        if member not in names:
            if lib in optional:
                continue
            sys.exit(f"{member} not in {os.path.basename(whl)}")
        tmp = os.path.join(dest, lib + ".part")
        with z.open(member) as src, open(tmp, "wb") as out:
            while True:
                buf = src.read(1 << 20)
                if not buf:
                    break
                out.write(buf)
        os.chmod(tmp, 0o755)
        os.replace(tmp, os.path.join(dest, lib))
EOF
  if [ -n "$SHA_MAIN" ] && [ "$(sha_of "$MAIN")" != "$SHA_MAIN" ]; then
    echo "setup_ort.sh: sha256 of $MAIN does not match the recorded one" >&2
    exit 1
  fi
  log "unpacked into $DEST"
fi
# Convenience name that dlopen-style loaders often look for.
ln -sf "libonnxruntime.so.$VER" "$DEST/libonnxruntime.so"
if [ "$GPU" = 1 ]; then
  log "note: the CUDA provider needs CUDA 13 + cuDNN 9 libraries on LD_LIBRARY_PATH (see the header of this script)"
fi
log "export ORT_DYLIB_PATH=$MAIN"
echo "$MAIN"
