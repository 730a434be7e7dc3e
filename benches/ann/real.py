#!/usr/bin/env python3
"""Text -> image search on real embeddings (issue 3): hnswlib and skysift (plain graph, and with
the query sample) on the dataset `cargo bench --bench real_ann` writes from ../shared/data/aid-rsicd.

    SKYSIFT_REAL_OUT=target/real cargo bench --bench real_ann
    target/bench-venv/bin/python benches/ann/real.py --data target/real --db target/real-db

Needs numpy and hnswlib (the ../shared/bench venv has both). One search thread; hnswlib M=16,
efConstruction=200, the same parameters as skysift's defaults. Recall@10 against exact search.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
K = 10


def read_bin(path, dtype="<f4"):
    with open(path, "rb") as f:
        rows, cols = np.fromfile(f, dtype="<u4", count=2)
    return np.fromfile(path, dtype=dtype, offset=8).reshape(int(rows), int(cols))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--efs", default="10,16,24,32,48,64,96,128,256")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    import hnswlib
    base = read_bin(os.path.join(a.data, "base.fbin"))
    queries = read_bin(os.path.join(a.data, "query.fbin"))
    gt = read_bin(os.path.join(a.data, "gt_unfiltered.ibin"), "<i4")[:, :K]
    efs = [int(x) for x in a.efs.split(",")]
    t = time.perf_counter()
    idx = hnswlib.Index(space="ip", dim=base.shape[1])
    idx.init_index(max_elements=len(base), M=16, ef_construction=200, random_seed=100)
    idx.add_items(base, np.arange(len(base)), num_threads=2)
    print(f"hnswlib built {len(base)} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    rows = []
    for ef in efs:
        idx.set_ef(max(ef, K))
        secs = float("inf")
        for _ in range(a.reps):
            t = time.perf_counter()
            labels, _ = idx.knn_query(queries, k=K, num_threads=1)
            secs = min(secs, time.perf_counter() - t)
        r = np.mean([len(set(l) & set(g)) / K for l, g in zip(labels.tolist(), gt.tolist())])
        rows.append({"engine": "hnswlib", "ef": ef, "recall": round(float(r), 4), "qps": round(len(queries) / secs)})
        print(f"  hnswlib ef={ef}: recall={r:.3f} qps={len(queries) / secs:.0f}", file=sys.stderr)
    for name, extra in (("skysift plain", []), ("skysift + query sample", ["--query-sample"])):
        db = a.db + ("-qs" if extra else "-plain")
        out = subprocess.run([sys.executable, os.path.join(HERE, "sweep.py"), "--data", a.data, "--db", db, "--reload",
                              "--variants", "unfiltered", "--efs", a.efs] + extra,
                             check=True, capture_output=True, text=True)
        sys.stderr.write(out.stderr)
        for r in json.loads(out.stdout.strip().splitlines()[-1])["rows"]:
            rows.append({"engine": name, "ef": r["ef"], "recall": r["recall"], "qps": r["qps"]})
    print("| ef | " + " | ".join(e for e in ("hnswlib", "skysift plain", "skysift + query sample")) + " |")
    print("| --- | --- | --- | --- |")
    for ef in efs:
        cells = []
        for e in ("hnswlib", "skysift plain", "skysift + query sample"):
            r = next((x for x in rows if x["engine"] == e and x["ef"] == ef), None)
            cells.append(f"{r['recall']:.3f} / {r['qps']:,}" if r else "-")
        print(f"| {ef} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
