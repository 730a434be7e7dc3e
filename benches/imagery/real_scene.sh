#!/usr/bin/env bash
# Issue 20, real imagery: the top tiles for a text query hold no tile with valid_fraction < 0.5.
#
# Scene: L7_ETMs.tif, a real Landsat 7 ETM+ subset (349 x 352 px, 6 bands u8, 28.5 m, EPSG:31985,
# UTM zone 25S, Olinda, Brazil), shipped in Debian's r-cran-stars package, version 0.6-0-4 (bookworm)
# as /usr/lib/R/site-library/stars/tif/L7_ETMs.tif. Landsat data are USGS, public domain; the stars
# package is Apache-2.0 (Edzer Pebesma et al., /usr/share/doc/r-cran-stars/copyright).
#   .deb  sha256 a273913b84ce428c8a6f5eb3538776c8bcefb5756d473f0c4c2fd2a914e98a53
#   .tif  sha256 3b722bf4470144b6691bf720bac08f47c99464acff4dd258252891c06312678e
# Why not rasterio's RGB.byte.tif: rasterio's sdists on PyPI (checked 1.4.3 and 1.2.10) do not ship
# tests/data/*.tif, and Debian's source tarballs are not reachable from here.
#
# The scene is smaller than --chip-max's default (1024), so it is tiled with --chip-max 64 --tile 64
# (36 tiles); bands 3,2,1 are ETM+ red, green, blue. As shipped it has no no-data collar (tiles_nodata
# 0); the second scene below is the same pixels warped into a rotated grid, with a collar.
#
# Needs: target/release/skysift (cargo build --release), models/demo, apt-get (or SKYSIFT_REAL_SCENE=FILE),
# python3 with venv and pip for the warp (or SKYSIFT_COLLAR_SCENE=FILE, the warped scene).
# Run from the repo root: bash benches/imagery/real_scene.sh   (exit 1 when the check fails)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${SKYSIFT_BIN:-target/release/skysift}
[ -x "$BIN" ] || cargo build --release --bin skysift
DEB_VERSION=0.6-0-4
DEB_SHA=a273913b84ce428c8a6f5eb3538776c8bcefb5756d473f0c4c2fd2a914e98a53
TIF_SHA=3b722bf4470144b6691bf720bac08f47c99464acff4dd258252891c06312678e
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/arc"
if [ -n "${SKYSIFT_REAL_SCENE:-}" ]; then
  cp "$SKYSIFT_REAL_SCENE" "$WORK/arc/L7_ETMs.tif"
else
  (cd "$WORK" && apt-get download "r-cran-stars=$DEB_VERSION" >/dev/null 2>&1)
  DEB=$(ls "$WORK"/r-cran-stars_*.deb)
  echo "$DEB_SHA  $DEB" | sha256sum -c --quiet
  dpkg -x "$DEB" "$WORK/x"
  cp "$WORK/x/usr/lib/R/site-library/stars/tif/L7_ETMs.tif" "$WORK/arc/"
fi
echo "$TIF_SHA  $WORK/arc/L7_ETMs.tif" | sha256sum -c --quiet

# The same scene with a real no-data collar: warped by GDAL (rasterio 1.4.4's wheel from PyPI, in a
# throwaway venv) from UTM 25S into EPSG:3031 (Antarctic polar stereographic), whose grid is rotated
# by about 35 degrees at Olinda's longitude: the footprint turns inside a collar of fill (0, written
# as the GDAL_NODATA tag), as a scene warped from its path/row into a map grid has it. About 48% of
# the warped grid is no-data; --tile 64 gives 64 tiles.
if [ -n "${SKYSIFT_COLLAR_SCENE:-}" ]; then
  mkdir -p "$WORK/collar" && cp "$SKYSIFT_COLLAR_SCENE" "$WORK/collar/L7_ETMs_3031.tif"
else
  python3 -m venv "$WORK/venv" >/dev/null
  "$WORK/venv/bin/pip" install -q "rasterio==1.4.4" >/dev/null
  mkdir -p "$WORK/collar"
  "$WORK/venv/bin/python" - "$WORK/arc/L7_ETMs.tif" "$WORK/collar/L7_ETMs_3031.tif" <<'PY'
import sys
import rasterio
from rasterio.warp import Resampling, calculate_default_transform, reproject
with rasterio.open(sys.argv[1]) as s:
    t, w, h = calculate_default_transform(s.crs, "EPSG:3031", s.width, s.height, *s.bounds)
    prof = dict(s.profile, crs="EPSG:3031", transform=t, width=w, height=h, nodata=0, tiled=False, compress=None)
    with rasterio.open(sys.argv[2], "w", **prof) as d:
        for b in range(1, s.count + 1):
            reproject(rasterio.band(s, b), rasterio.band(d, b), resampling=Resampling.nearest, dst_nodata=0)
with rasterio.open(sys.argv[2]) as d:
    m = d.read_masks(1)
    print(f"warped L7_ETMs.tif to EPSG:3031: {d.width} x {d.height} px, {(m == 0).mean():.1%} no-data (GDAL_NODATA 0)")
PY
fi

status=0
# scene ARCHIVE COLLAR: import at --min-valid 0.5 (checked) and 0 (the contrast); with COLLAR=1 the
# contrast must show collar tiles among the top 10 of some query (else the scene tests nothing).
scene() {
  local arc=$1 collar=$2 low=0
  for MIN_VALID in 0.5 0; do
    DB="$WORK/db-$(basename "$arc")-$MIN_VALID"
    "$BIN" import "$DB" "$arc" --tile 64 --chip-max 64 --bands 3,2,1 --min-valid "$MIN_VALID" \
      --device cpu --no-progress --json >"$WORK/import.json"
    for Q in "a river" "a beach" "a city"; do
      "$BIN" query "$DB" "$Q" -k 10 --json 2>/dev/null >"$WORK/query.json"
      set +e
      python3 - "$WORK/import.json" "$WORK/query.json" "$MIN_VALID" "$Q" "$(basename "$arc")" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1]))
results = json.load(open(sys.argv[2]))["results"]
min_valid, q = float(sys.argv[3]), sys.argv[4]
print(f"{sys.argv[5]} --min-valid {min_valid}: {summary['tiles_written']} tiles encoded, "
      f"{summary['tiles_nodata']} not encoded (no-data); query {q!r}, top {len(results)}")
print(f"{'rank':>4} {'id':>20} {'tile':>4} {'score':>8} {'valid_fraction':>14}")
bad = 0
for r in results:
    vf = r["fields"]["valid_fraction"]
    bad += vf < 0.5
    print(f"{r['rank']:>4} {r['id']:>20} {r['fields']['tile_index']:>4} {r['score']:>8.4f} {vf:>14.3f}")
if min_valid >= 0.5:
    print(f"check valid_fraction >= 0.5: {'PASS' if bad == 0 else f'FAIL ({bad} tiles)'}")
    sys.exit(1 if bad else 0)
print(f"(contrast: {bad} tiles under 0.5)")
sys.exit(2 if bad else 0)
PY
      rc=$?
      set -e
      case "$MIN_VALID:$rc" in
        0.5:0 | 0:0) ;;
        0:2) low=1 ;;
        *) status=1 ;;
      esac
    done
  done
  if [ "$collar" = 1 ] && [ "$low" = 0 ]; then
    echo "FAIL: without --min-valid no collar tile reached a top 10: the scene does not exercise the rule"
    status=1
  fi
}
scene "$WORK/arc" 0
scene "$WORK/collar" 1
exit $status
