#!/usr/bin/env python3
"""Scale curve (issue 19 item 6): graph build time and the recall@10 / QPS curve at several sizes of
the bench generator, skysift against hnswlib built and searched in the same run.

    target/bench-venv/bin/python benches/ann/scale.py --sizes 100000,1000000 \\
        [--data-root bench-data] [--db-root target/scale] [--peer-max-rows 1000000] [--out scale.json]

Data: `../shared/bench/gen_data.py` output (reads ../shared; writes only under --data-root): 100000
rows is its `small` set, 1000000 its `medium` set, any other size `--size medium --n N`. The
generator's bigger sets start with the smaller sets' rows and every size has the same queries, so
the sizes are one curve. A missing folder is generated (about 3 minutes per million rows).

Per size: skysift loads the rows with the query sample (`benches/ann/sweep.py --query-sample`; its
"flushed and indexed in" time is the build: graph, int8 codes, query-guided edges, calibration and
the segment write; where the final flush had nothing left, the whole load), then hnswlib (M 16,
efConstruction 200, 2 build threads; `add_items` is its build) where the size is at most --peer-max-rows. Both then sweep ef with one search thread on the
text queries (`unfiltered`: out of distribution) and the image queries (`id_unfiltered`). The
table gives, per size and engine, the build time, the QPS at the smallest ef reaching recall 0.95
(text) and 0.99 (image), and how each grows from one size to the next. Each engine's sweep follows one
untimed pass of the queries (skysift: `sweep.py --warm`; hnswlib's index is in memory already),
so that a size whose files exceed the page cache's first reads do not count as search time. Needs numpy and hnswlib
(the bench's venv: see filtered.py). Nothing is compared with a stored figure.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_time import build_seconds  # noqa: E402
from filtered import read_bin, recall as filtered_recall  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.join(ROOT, "..", "shared", "bench")
K = 10
TARGETS = {"unfiltered": 0.95, "id_unfiltered": 0.99}
QUERIES = {"unfiltered": "query.fbin", "id_unfiltered": "query_id.fbin"}


def folder_for(n, root):
    name = {100_000: "small", 1_000_000: "medium"}.get(n, f"medium-n{n}-q1000")
    path = os.path.join(root, name)
    if not os.path.exists(os.path.join(path, "manifest.json")):
        size = "small" if n == 100_000 else "medium"
        cmd = [sys.executable, os.path.join(SHARED, "gen_data.py"), "--size", size, "--out", root]
        if n not in (100_000, 1_000_000):
            cmd += ["--n", str(n)]
        print(f"generating {n:,} rows: {' '.join(cmd)}", file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True)
    return path


def skysift(data, db, efs):
    cmd = [sys.executable, os.path.join(HERE, "sweep.py"), "--data", data, "--db", db, "--query-sample",
           "--reload", "--warm", "--efs", ",".join(map(str, efs)), "--variants", ",".join(QUERIES)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["index_seconds"] = build_seconds(out.stderr, result["build_seconds"])
    return result


def recall(found, gt):
    return filtered_recall(found, gt, K)


def hnswlib_run(data, efs):
    import hnswlib
    base = read_bin(os.path.join(data, "base.fbin"))
    idx = hnswlib.Index(space="ip", dim=base.shape[1])
    idx.init_index(max_elements=len(base), M=16, ef_construction=200, random_seed=100)
    t = time.perf_counter()
    idx.add_items(base, np.arange(len(base)), num_threads=2)
    build = time.perf_counter() - t
    del base
    rows = []
    for variant, qfile in QUERIES.items():
        q = read_bin(os.path.join(data, qfile))
        gt = read_bin(os.path.join(data, f"gt_{variant}.ibin"), "<i4")
        for ef in efs:
            idx.set_ef(max(ef, K))
            best = float("inf")
            for _ in range(2):
                t = time.perf_counter()
                labels, _ = idx.knn_query(q, k=K, num_threads=1)
                best = min(best, time.perf_counter() - t)
            r = recall(labels, gt)
            rows.append({"variant": variant, "ef": ef, "recall": round(r, 4), "qps": round(len(q) / best, 1)})
            print(f"  hnswlib {variant:14s} ef={ef:4d}: recall={r:.3f} qps={len(q) / best:.0f}", file=sys.stderr,
                  flush=True)
    return {"index_seconds": build, "rows": rows}


def at_target(rows, variant):
    """(ef, recall, QPS) at the smallest ef whose recall reaches the variant's target, if any."""
    ok = [r for r in rows if r["variant"] == variant and r["recall"] >= TARGETS[variant]]
    if not ok:
        return None
    r = min(ok, key=lambda r: r["ef"])
    return r["ef"], r["recall"], r["qps"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--data-root", default=os.path.join(ROOT, "bench-data"))
    ap.add_argument("--db-root", default=os.path.join(ROOT, "target", "scale"))
    ap.add_argument("--efs", default="16,24,32,48,64,96,128,192,256,384,512,768,1024")
    ap.add_argument("--peer-max-rows", type=int, default=1_000_000,
                    help="hnswlib runs on sizes up to this many rows")
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "scale.json"))
    a = ap.parse_args()
    efs = [int(x) for x in a.efs.split(",")]
    results = {}
    for n in [int(x) for x in a.sizes.split(",")]:
        data = folder_for(n, a.data_root)
        print(f"{n:,} rows: skysift", file=sys.stderr, flush=True)
        results[n] = {"skysift": skysift(data, os.path.join(a.db_root, str(n)), efs)}
        subprocess.run(["rm", "-rf", os.path.join(a.db_root, str(n))], check=True)
        if n <= a.peer_max_rows:
            print(f"{n:,} rows: hnswlib", file=sys.stderr, flush=True)
            results[n]["hnswlib"] = hnswlib_run(data, efs)
        with open(a.out, "w") as f:
            json.dump(results, f, indent=1)

    print("\n| rows | engine | build s | text: ef, recall, QPS at >= 0.95 | image: ef, recall, QPS at >= 0.99 |")
    print("| ---: | --- | ---: | --- | --- |")
    def fmt(rows, variant):
        t = at_target(rows, variant)
        if t:
            return f"{t[0]}, {t[1]:.3f}, {t[2]:,.0f}"
        best = max((r for r in rows if r["variant"] == variant), key=lambda r: r["recall"], default=None)
        return f"not reached (best {best['recall']:.3f} at ef {best['ef']}, {best['qps']:,.0f} QPS)" if best else "n/a"

    for n, engines in results.items():
        for name, r in engines.items():
            print(f"| {n:,} | {name} | {r['index_seconds']:.1f} | {fmt(r['rows'], 'unfiltered')} | "
                  f"{fmt(r['rows'], 'id_unfiltered')} |")
    sizes = list(results)
    if len(sizes) > 1:
        print("\nGrowth from one size to the next (rows x, build time x, text QPS at 0.95 x):\n")
        for lo, hi in zip(sizes, sizes[1:]):
            for name in ("skysift", "hnswlib"):
                if name not in results[lo] or name not in results[hi]:
                    continue
                b = results[hi][name]["index_seconds"] / results[lo][name]["index_seconds"]
                t0, t1 = at_target(results[lo][name]["rows"], "unfiltered"), at_target(results[hi][name]["rows"],
                                                                                         "unfiltered")
                q = f"{t1[2] / t0[2]:.2f}x" if t0 and t1 else "n/a"
                print(f"- {name}: {lo:,} -> {hi:,} rows ({hi / lo:.0f}x): build {b:.1f}x, text QPS {q}")
        for n in sizes:
            if "hnswlib" in results[n]:
                s, h = results[n]["skysift"], results[n]["hnswlib"]
                ts, th = at_target(s["rows"], "unfiltered"), at_target(h["rows"], "unfiltered")
                ratio = f"{ts[2] / th[2]:.1f}x" if ts and th else "n/a (hnswlib below 0.95)"
                print(f"- {n:,} rows: skysift build / hnswlib {s['index_seconds'] / h['index_seconds']:.2f}, "
                      f"text QPS at 0.95 skysift / hnswlib {ratio}")
    print(f"\nall points: {a.out}")


if __name__ == "__main__":
    main()
