#!/usr/bin/env python3
"""Regenerates assets/world-110m.svgpath, the world outline of the gallery's map.

Source: Natural Earth 1:110m Admin 0 Countries (public domain), as shipped in the geopandas
0.14.4 wheel on PyPI (geopandas/datasets/naturalearth_lowres; later geopandas releases dropped it).
The wheel is fetched by package name with pip; nothing else is downloaded.

    python3 scripts/world_outline.py            # writes assets/world-110m.svgpath
    python3 scripts/world_outline.py --check    # exits 1 when the committed file differs

Simplification: coordinates rounded to 0.1 degree, repeated points dropped, rings with fewer than
4 distinct points or an area under MIN_AREA square degrees dropped. Output: one SVG path
subpath per line, `M x y l dx dy ... z`, in tenths of a degree with x = longitude and
y = -latitude (north up, as SVG's y grows downwards). Only the standard library reads the
shapefile (little-endian polygons, big-endian record headers, as the ESRI spec lays them out).
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "assets" / "world-110m.svgpath"
WHEEL = "geopandas==0.14.4"
SHP = "geopandas/datasets/naturalearth_lowres/naturalearth_lowres.shp"
# Rings smaller than this (square degrees) are left out: islets that are a dot at this scale.
MIN_AREA = 0.3


def rings(shp: bytes):
    """Every ring of every polygon record of a shapefile, as lists of (lon, lat)."""
    pos = 100
    while pos + 8 <= len(shp):
        _, words = struct.unpack(">ii", shp[pos : pos + 8])
        content = shp[pos + 8 : pos + 8 + 2 * words]
        pos += 8 + 2 * words
        (kind,) = struct.unpack("<i", content[:4])
        if kind != 5:  # 5: polygon; 0: null shape
            continue
        nparts, npoints = struct.unpack("<ii", content[36:44])
        parts = list(struct.unpack(f"<{nparts}i", content[44 : 44 + 4 * nparts]))
        base = 44 + 4 * nparts
        pts = [struct.unpack("<dd", content[base + 16 * i : base + 16 * i + 16]) for i in range(npoints)]
        for a, b in zip(parts, parts[1:] + [npoints]):
            yield pts[a:b]


def area(r) -> float:
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(r, r[1:] + r[:1]))) / 2


def simplify(ring):
    out = []
    for lon, lat in ring:
        p = (round(lon * 10), round(-lat * 10))
        if not out or out[-1] != p:
            out.append(p)
    if len(out) > 1 and out[0] == out[-1]:
        out.pop()
    return out


def subpath(r) -> str:
    """`M x y l dx dy ... z`; a minus sign separates two numbers, so no space goes before one."""
    nums = [d for (x0, y0), (x1, y1) in zip(r, r[1:]) for d in (x1 - x0, y1 - y0)]
    rel = "".join(str(n) if n < 0 or i == 0 else f" {n}" for i, n in enumerate(nums))
    return f"M{r[0][0]} {r[0][1]}l{rel}z"


def build() -> str:
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "--quiet", "-d", d], check=True
        )
        wheel = next(Path(d).glob("geopandas-*.whl"))
        shp = zipfile.ZipFile(wheel).read(SHP)
    lines = [
        "# World outline for skysift's gallery map: Natural Earth 1:110m Admin 0 Countries (public domain),",
        f"# from the {WHEEL} wheel ({SHP}), simplified by scripts/world_outline.py.",
        "# One SVG subpath per line; units: tenths of a degree, x = longitude, y = -latitude.",
    ]
    kept = 0
    for ring in rings(shp):
        r = simplify(ring)
        if len(set(r)) < 4 or area(r) / 100 < MIN_AREA:
            continue
        lines.append(subpath(r))
        kept += 1
    print(f"{kept} rings", file=sys.stderr)
    return "\n".join(lines) + "\n"


def main() -> int:
    text = build()
    if "--check" in sys.argv:
        if OUT.read_text() != text:
            print(f"{OUT} differs from what the script makes", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(text.encode())} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
