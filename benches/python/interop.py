"""GeoParquet export and load of 1M x 512 rows against pyarrow writing and reading the same table,
same machine, same run (issue 18's benchmark).

Reads ../shared/bench's `medium` set (1M x 512 float32 CLIP-like vectors and their class, sensor,
year, cloud_cover, lat, lon), which this script generates into bench-data/medium with
../shared/bench/gen_data.py when it is missing (about 3 minutes, 2 GB). Needs the release binary
(`cargo build --release --bin skysift`) and .venv/ (`scripts/setup_python.sh`: numpy, pyarrow).

    .venv/bin/python benches/python/interop.py [--size medium] [--rows N] [--out bench-data/interop.json] [--repeat 3]

Every step runs in its own process; its peak RSS is that process's own (os.wait4), and its time is
the process's wall clock, start to exit:

  pyarrow write   builds the table (id, vector as fixed_size_list<float32>[512], a WKB polygon of a
                  0.01-degree box at (lon, lat), its bbox struct, class, sensor, year, cloud_cover)
                  and writes it as GeoParquet (snappy, 32,768-row groups): the source of the load
                  and the yardstick of the export
  pyarrow read    pq.read_table of that file, every column materialised
  skysift load    `skysift load DB v --from source.parquet --metric ip --min-index-rows N+1`: parse
                  (Parquet decoded on two threads), write the rows as segments of --flush-rows rows,
                  each durable when its manifest is published (no WAL: the bulk path); searched by
                  exact scan (the graph build is the index benchmarks' subject; --with-index builds
                  it too, on 2 threads); rows/s end to end
  skysift export  `skysift export DB v --format geoparquet --with-vectors`
  check           pyarrow reads skysift's export back: the same ids, vectors bit for bit, fields
                  and footprints as the source (a mismatch fails the script)

Targets (issue 18): export rows/s >= 0.8x pyarrow's write, load rows/s >= 0.8x pyarrow's read.
Nothing is compared with a stored figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import dataset  # noqa: E402  (the set from ../shared/bench, generated when missing)

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "target" / "release" / "skysift"
GROUP_ROWS = 32768
BOX = 0.01


def read_bin(path: Path, rows: int | None = None) -> np.ndarray:
    n, d = np.fromfile(path, "<u4", count=2)
    m = np.memmap(path, "<f4", mode="r", offset=8, shape=(int(n), int(d)))
    return m if rows is None else m[:rows]


def wkb_boxes(lon: np.ndarray, lat: np.ndarray):
    """One WKB polygon (little-endian, 5 points) per row: a BOX-degree square whose south-west
    corner is (lon, lat), kept inside WGS84."""
    import pyarrow as pa

    n = len(lon)
    x0 = np.minimum(lon.astype(np.float64), 180.0 - BOX)
    y0 = np.minimum(lat.astype(np.float64), 90.0 - BOX)
    x1, y1 = x0 + BOX, y0 + BOX
    head = np.frombuffer(b"\x01" + (3).to_bytes(4, "little") + (1).to_bytes(4, "little") + (5).to_bytes(4, "little"),
                         np.uint8)
    pts = np.stack([x0, y0, x1, y0, x1, y1, x0, y1, x0, y0], axis=1)  # n x 10 float64
    rec = np.empty((n, 13 + 80), np.uint8)
    rec[:, :13] = head
    rec[:, 13:] = pts.view(np.uint8).reshape(n, 80)
    offsets = np.arange(0, (n + 1) * 93, 93, dtype=np.int32)
    geom = pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(rec)])
    bbox = pa.StructArray.from_arrays([pa.array(x0), pa.array(y0), pa.array(x1), pa.array(y1)],
                                      names=["xmin", "ymin", "xmax", "ymax"])
    return geom, bbox


def geo_metadata() -> bytes:
    return json.dumps({
        "version": "1.1.0", "primary_column": "geometry",
        "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Polygon"],
                                 "covering": {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}}}},
    }).encode()


# -- steps (each a child process: `interop.py --step NAME`) -----------------------------------------

def step_write(d: Path, rows: int, out: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = np.ascontiguousarray(read_bin(d / "base.fbin", rows))
    meta = {c: np.load(d / f"meta_{c}.npy")[:rows] for c in ("class", "sensor", "year", "cloud_cover", "lat", "lon")}
    geom, bbox = wkb_boxes(meta["lon"], meta["lat"])
    table = pa.table({
        "id": pa.array(np.arange(rows, dtype=np.uint64)),
        "class": pa.array([f"c{v}" for v in range(256)]).take(pa.array(meta["class"].astype(np.int32))),
        "sensor": pa.array([f"s{v}" for v in range(256)]).take(pa.array(meta["sensor"].astype(np.int32))),
        "year": pa.array(meta["year"].astype(np.int64)),
        "cloud_cover": pa.array(meta["cloud_cover"].astype(np.float64)),
        "geometry": geom,
        "bbox": bbox,
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(base.reshape(-1)), base.shape[1]),
    })
    table = table.replace_schema_metadata({b"geo": geo_metadata()})
    t = time.perf_counter()
    pq.write_table(table, out, compression="snappy", row_group_size=GROUP_ROWS)
    return {"write_s": time.perf_counter() - t, "bytes": out.stat().st_size}


def step_read(path: Path) -> dict:
    import pyarrow.parquet as pq

    t = time.perf_counter()
    table = pq.read_table(path)
    s = time.perf_counter() - t
    return {"read_s": s, "rows": table.num_rows, "nbytes": table.nbytes}


def step_check(d: Path, rows: int, source: Path, export: Path) -> dict:
    """The export against the source: ids, vectors bit for bit, fields, footprints."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    got = pq.read_table(export)
    src = pq.read_table(source)
    bad = []
    if got.num_rows != rows:
        bad.append(f"{got.num_rows} rows exported, {rows} loaded")
    order = pc.sort_indices(got.column("id"))
    got = got.take(order)
    if not got.column("id").equals(src.column("id")):
        bad.append("ids differ")
    gv = got.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    sv = np.ascontiguousarray(read_bin(d / "base.fbin", rows)).reshape(-1)
    if gv.view(np.uint32).shape != sv.view(np.uint32).shape or not np.array_equal(gv.view(np.uint32), sv.view(np.uint32)):
        bad.append("vectors differ (bit for bit)")
    for c in ("class", "sensor", "year", "cloud_cover"):
        if not got.column(c).cast(src.column(c).type).equals(src.column(c)):
            bad.append(f"field {c} differs")
    gb, sb = got.column("bbox").combine_chunks(), src.column("bbox").combine_chunks()
    for k in ("xmin", "ymin", "xmax", "ymax"):
        if not np.allclose(gb.field(k).to_numpy(), sb.field(k).to_numpy(), atol=1e-9, rtol=0):
            bad.append(f"footprint {k} differs")
    return {"mismatches": bad}


def measure(args: list[str]) -> dict:
    """Runs one child process: its exit status, stdout, wall seconds (spawn to exit) and peak RSS
    (its own, from os.wait4)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        p = subprocess.Popen(args, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if p.returncode != 0:
            sys.stderr.write(err.read()[-4000:])
        return {"code": p.returncode, "stdout": out.read()[-8000:], "wall_s": wall, "peak_rss": usage.ru_maxrss * 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="medium")
    ap.add_argument("--rows", type=int, help="the first N rows of the set (default: all)")
    ap.add_argument("--out", default=str(ROOT / "bench-data" / "interop.json"))
    ap.add_argument("--keep", action="store_true", help="keep the work folder (printed)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of every step, interleaved; best of each (default 3)")
    ap.add_argument("--with-index", action="store_true",
                    help="the load also builds the collection's graph (minutes for 1M rows on 2 cores)")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--args", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.step:
        x = json.loads(a.args)
        d, rows = Path(x["data"]), x["rows"]
        if a.step == "write":
            r = step_write(d, rows, Path(x["out"]))
        elif a.step == "read":
            r = step_read(Path(x["path"]))
        else:
            r = step_check(d, rows, Path(x["source"]), Path(x["export"]))
        print(json.dumps(r))
        return
    if not BIN.exists():
        raise SystemExit(f"{BIN.relative_to(ROOT)} is missing: cargo build --release --bin skysift")
    d = dataset(a.size)
    n = int(np.fromfile(d / "base.fbin", "<u4", count=1)[0])
    rows = min(a.rows or n, n)
    (ROOT / "bench-data").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="interop-", dir=ROOT / "bench-data"))
    try:
        source, export, db = work / "source.parquet", work / "export.parquet", work / "db"
        me = [sys.executable, __file__]

        def step(name: str, **x) -> dict:
            m = measure(me + ["--step", name, "--args", json.dumps({"data": str(d), "rows": rows, **x})])
            if m["code"] != 0:
                raise SystemExit(f"step {name} failed (exit {m['code']})")
            m.update(json.loads(m["stdout"].strip().splitlines()[-1]))
            return m

        print(f"== {rows:,} x 512 rows of {a.size}; work folder {work.relative_to(ROOT)}", file=sys.stderr)
        res: dict = {"rows": rows, "size": a.size, "repeat": a.repeat, "runs": []}
        best = lambda k, t: min((r[k] for r in res["runs"]), key=lambda m: m[t])  # noqa: E731
        for i in range(a.repeat):
            # Interleaved: every step once per round, so that the page cache and the disk's state
            # (this machine reclaims cold pages in the background) weigh on each alike.
            run: dict = {}
            shutil.rmtree(db, ignore_errors=True)
            print(f"== round {i + 1}/{a.repeat}: pyarrow write", file=sys.stderr)
            run["pyarrow_write"] = step("write", out=str(source))
            print("== pyarrow read", file=sys.stderr)
            run["pyarrow_read"] = step("read", path=str(source))
            print("== skysift load", file=sys.stderr)
            # Inner product: the vectors are kept as given (cosine would normalise them again,
            # which moves the last bits of vectors that are already unit length).
            load = [str(BIN), "load", str(db), "v", "--from", str(source), "--metric", "ip", "--index-threads", "2"]
            if not a.with_index:
                # The rows stay exactly scanned: no graph (its build is the index benchmarks' subject).
                load += ["--min-index-rows", str(rows + 1)]
            m = measure(load)
            if m["code"] != 0:
                raise SystemExit(f"skysift load failed (exit {m['code']})")
            m["with_index"] = a.with_index
            run["skysift_load"] = m
            print("== skysift export", file=sys.stderr)
            m = measure([str(BIN), "export", str(db), "v", "--format", "geoparquet", "--with-vectors", "-o", str(export)])
            if m["code"] != 0:
                raise SystemExit(f"skysift export failed (exit {m['code']})")
            run["skysift_export"] = m
            res["runs"].append(run)
        res["pyarrow_write"] = best("pyarrow_write", "write_s")
        res["pyarrow_read"] = best("pyarrow_read", "read_s")
        res["skysift_load"] = best("skysift_load", "wall_s")
        res["skysift_export"] = best("skysift_export", "wall_s")
        print("== check", file=sys.stderr)
        res["check"] = step("check", source=str(source), export=str(export))
    finally:
        if a.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    Path(a.out).write_text(json.dumps(res, indent=2))

    w, r, ld, ex = res["pyarrow_write"], res["pyarrow_read"], res["skysift_load"], res["skysift_export"]
    rate = lambda s: rows / s if s else float("nan")  # noqa: E731
    mb = lambda b: b / 1e6  # noqa: E731
    print(f"\n{rows:,} x 512 rows, {mb(w['bytes']):,.0f} MB of GeoParquet (snappy); best of {a.repeat} interleaved "
          f"rounds\n")
    print("| step | seconds | rows/s | peak RSS MB | vs pyarrow (rows/s) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| pyarrow write_table (in memory -> file) | {w['write_s']:.2f} | {rate(w['write_s']):,.0f} | "
          f"{mb(w['peak_rss']):,.0f} | 1.00 |")
    print(f"| skysift export (process: open, read, write) | {ex['wall_s']:.2f} | {rate(ex['wall_s']):,.0f} | "
          f"{mb(ex['peak_rss']):,.0f} | {w['write_s'] / ex['wall_s']:.2f} |")
    print(f"| pyarrow read_table (file -> memory) | {r['read_s']:.2f} | {rate(r['read_s']):,.0f} | "
          f"{mb(r['peak_rss']):,.0f} | 1.00 |")
    what = "with the graph build" if ld["with_index"] else "exact scan, no graph"
    print(f"| skysift load (process: open, read, write durable segments; {what}) | {ld['wall_s']:.2f} | "
          f"{rate(ld['wall_s']):,.0f} | {mb(ld['peak_rss']):,.0f} | {r['read_s'] / ld['wall_s']:.2f} |")
    bad = res["check"]["mismatches"]
    print(f"\nround trip (export read back by pyarrow against the source): "
          f"{'identical ids, vectors bit for bit, fields, footprints' if not bad else '; '.join(bad)}")
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
