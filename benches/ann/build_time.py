#!/usr/bin/env python3
"""Graph build time on 2 threads, hnswlib against skysift, back to back on the same rows (issue 3):
the first --rows vectors of a ../shared/bench dataset, M=16, efConstruction=200.

    target/bench-venv/bin/python benches/ann/build_time.py --data target/bench-data/medium \\
        --rows 200000 --db target/build-time [--reps 2] [--baseline OLD/skysift]

(`target/bench-venv` and `target/bench-data/medium`: see filtered.py and medium.py.)

skysift is timed by its own "flushed and indexed in" line (the flush: graph, codes, query-guided
edges when --query-sample is given, and the segment write with fsync), or by the whole `load`
process where the commit that filled a segment built it (1M rows, the default --flush-rows: the
final flush then has nothing left), hnswlib by add_items. Each
engine runs --reps times, alternating, and keeps its best time. --baseline times another skysift
binary (a build of an earlier commit) with the query sample in the same rounds, for a before/after
on the same machine. Needs numpy and hnswlib.
"""
import argparse
import os
import re
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target", "release", "skysift")


def read_bin(path, rows=None):
    with open(path, "rb") as f:
        n, d = np.fromfile(f, dtype="<u4", count=2)
    n = int(n) if rows is None else min(int(n), rows)
    return np.fromfile(path, dtype="<f4", offset=8, count=n * int(d)).reshape(n, int(d))


def write_fbin(path, a):
    with open(path, "wb") as f:
        np.array(a.shape, dtype="<u4").tofile(f)
        a.astype("<f4").tofile(f)


def hnswlib_build(base):
    import hnswlib
    idx = hnswlib.Index(space="ip", dim=base.shape[1])
    idx.init_index(max_elements=len(base), M=16, ef_construction=200, random_seed=100)
    t = time.perf_counter()
    idx.add_items(base, np.arange(len(base)), num_threads=2)
    return time.perf_counter() - t


def skysift_build(db, vectors, sample, binary=BIN):
    subprocess.run(["rm", "-rf", db], check=True)
    cmd = [binary, "load", db, "ann", "--vectors", vectors, "--metric", "ip", "--batch-size", "50000",
           "--index-threads", "2"]
    if sample:
        cmd += ["--query-sample", sample]
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return build_seconds(out, time.perf_counter() - t)


def build_seconds(load_output, whole):
    """skysift's build time from a `load`'s output and its whole wall time: the "flushed and indexed
    in" line, or the whole load where that line had nothing left. At --flush-rows (1M by default)
    the commit that fills the segment builds it, and the final flush then has nothing left; the
    whole process also reads the rows and writes the log, so it counts against skysift."""
    m = re.search(r"flushed and indexed in ([0-9.]+)s", load_output)
    flush = float(m.group(1)) if m else 0.0
    return flush if flush >= 0.5 * whole else whole


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--db", required=True)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--baseline", help="another skysift binary (e.g. a build of an earlier commit) timed in the "
                                       "same run, with the query sample")
    a = ap.parse_args()
    os.makedirs(a.db, exist_ok=True)
    base = read_bin(os.path.join(a.data, "base.fbin"), a.rows)
    vec = os.path.join(a.db, "base.fbin")
    write_fbin(vec, base)
    sample = os.path.join(a.data, "query_sample.fbin")
    db = os.path.join(a.db, "db")
    runs = [("hnswlib", lambda: hnswlib_build(base)),
            ("skysift", lambda: skysift_build(db, vec, None)),
            ("skysift + query sample", lambda: skysift_build(db, vec, sample))]
    if a.baseline:
        runs.append(("baseline + query sample", lambda: skysift_build(db, vec, sample, a.baseline)))
    best = {name: float("inf") for name, _ in runs}
    for _ in range(a.reps):
        for name, fn in runs:
            s = fn()
            print(f"  {name}: {s:.1f}s", file=sys.stderr, flush=True)
            best[name] = min(best[name], s)
    print(f"| rows | hnswlib | skysift | ratio | skysift + query sample | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    h = best["hnswlib"]
    print(f"| {len(base):,} | {h:.1f}s | {best['skysift']:.1f}s | {best['skysift'] / h:.2f} | "
          f"{best['skysift + query sample']:.1f}s | {best['skysift + query sample'] / h:.2f} |")
    if a.baseline:
        b = best["baseline + query sample"]
        print(f"\nbaseline {a.baseline} + query sample: {b:.1f}s ({b / h:.2f} of hnswlib); "
              f"this build / baseline {best['skysift + query sample'] / b:.2f}")


if __name__ == "__main__":
    main()
