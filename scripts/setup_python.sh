#!/usr/bin/env bash
# Build the skysift Python package into a virtual environment (idempotent; needs Python 3.11 + PyPI).
#
# Usage:
#   scripts/setup_python.sh              # .venv/ with the test dependencies and skysift (debug build,
#                                        # sharing target/ with cargo: quick after `cargo build`)
#   scripts/setup_python.sh --release    # an optimised build (for benchmarks)
#   scripts/setup_python.sh --bench      # also the peers of benches/python (lancedb, chromadb)
#
# The virtual environment is .venv/ (override with SKYSIFT_VENV). Everything comes from PyPI by
# package name: maturin builds the extension (python/Cargo.toml, PyO3, abi3 for CPython >= 3.11).
# Users without a clone of the repository's build tree install the same package with
#   pip install ./python
# (a release build by maturin through pip's build isolation).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="${SKYSIFT_VENV:-$ROOT/.venv}"
PROFILE=()
BENCH=0
for arg in "$@"; do
  case "$arg" in
    --release) PROFILE=(--release) ;;
    --bench) BENCH=1; PROFILE=(--release) ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "setup_python.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
echo "installing maturin and the test dependencies into $VENV"
"${PIP[@]}" -r "$ROOT/python/requirements-test.txt"
if [ "$BENCH" = 1 ]; then
  echo "installing the benchmark peers"
  "${PIP[@]}" -r "$ROOT/benches/python/requirements.txt"
fi
echo "building skysift (maturin develop ${PROFILE[*]:-})"
(cd "$ROOT" && VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" \
  "$VENV/bin/maturin" develop --quiet --manifest-path python/Cargo.toml "${PROFILE[@]}")
"$VENV/bin/python" -c "import skysift; print('skysift', skysift.__version__, 'ready in $VENV')"
