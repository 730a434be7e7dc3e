#!/usr/bin/env python3
"""skysift side of the ANN comparison: load a ../shared/bench dataset, sweep ef, report recall@10
and QPS (one search thread by default) for text (OOD) and image (ID) queries.

Reads the dataset written by ../shared/bench/gen_data.py (copy that folder somewhere writable and
run it there; this script only reads its data/<size>/ files). Standard library only.

    python3 ../shared/bench/gen_data.py --size small --out target/bench-data   # needs numpy
    python3 benches/ann/sweep.py --data target/bench-data/small --db target/ann-small \
        [--query-sample] [--efs 16,32,64,128] [--threads 1] [--reload]
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target", "release", "skysift")


def read_ibin(path):
    with open(path, "rb") as f:
        rows, cols = struct.unpack("<II", f.read(8))
        data = f.read()
    vals = struct.unpack("<%di" % (rows * cols), data)
    return [vals[i * cols:(i + 1) * cols] for i in range(rows)]


def run(args, **kw):
    t = time.time()
    out = subprocess.run([BIN] + args, check=True, capture_output=True, text=True, **kw)
    return out.stdout, time.time() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--query-sample", action="store_true")
    ap.add_argument("--efs", default="16,24,32,48,64,96,128,192,256,384,512")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--index-threads", type=int, default=2)
    ap.add_argument("--reload", action="store_true")
    ap.add_argument("--extra-edges", type=int, default=16)
    ap.add_argument("--quantization", default="int8")
    ap.add_argument("--variants", default="unfiltered,id_unfiltered")
    ap.add_argument("--out", help="write results JSON here")
    ap.add_argument("--search-args", default="", help="extra arguments for skysift search")
    ap.add_argument("--warm", action="store_true",
                    help="one untimed pass of each variant's queries at the largest ef first (pages in the "
                         "rows a search reads, so that QPS is the index's, not the disk's)")
    a = ap.parse_args()
    build_s = None
    if a.reload or not os.path.exists(os.path.join(a.db, "MANIFEST")):
        subprocess.run(["rm", "-rf", a.db], check=True)
        cmd = ["load", a.db, "ann", "--vectors", os.path.join(a.data, "base.fbin"), "--metric", "ip",
               "--batch-size", "50000", "--index-threads", str(a.index_threads),
               "--extra-edges", str(a.extra_edges if a.query_sample else 0), "--quantization", a.quantization]
        if a.query_sample:
            cmd += ["--query-sample", os.path.join(a.data, "query_sample.fbin")]
        out, secs = run(cmd)
        build_s = secs
        for line in out.splitlines():
            if "flushed and indexed" in line or "loaded" in line:
                print("  " + line, file=sys.stderr)
    rows = []
    for variant in a.variants.split(","):
        qfile = "query.fbin" if variant == "unfiltered" else "query_id.fbin"
        gt = read_ibin(os.path.join(a.data, f"gt_{variant}.ibin"))
        if a.warm:
            top = max(int(x) for x in a.efs.split(","))
            run(["search", a.db, "ann", "--queries", os.path.join(a.data, qfile), "-k", "10", "--ef", str(top),
                 "--threads", str(a.threads), "--output", os.path.join(a.db, "warm.jsonl")] + a.search_args.split())
        for ef in [int(x) for x in a.efs.split(",")]:
            res = os.path.join(a.db, f"res-{variant}-{ef}.jsonl")
            out, _ = run(["search", a.db, "ann", "--queries", os.path.join(a.data, qfile), "-k", "10",
                          "--ef", str(ef), "--threads", str(a.threads), "--output", res] + a.search_args.split())
            summary = json.loads(out.strip().splitlines()[-1])
            hits = 0
            with open(res) as f:
                for line in f:
                    r = json.loads(line)
                    hits += len(set(r["ids"][:10]) & set(gt[r["query"]][:10]))
            recall = hits / (10 * len(gt))
            row = {"variant": variant, "ef": ef, "recall": round(recall, 4), "qps": round(summary["qps"], 1),
                   "threads": a.threads, "evals": round(summary.get("evaluations_per_query", 0))}
            rows.append(row)
            print(f"  skysift {variant:14s} ef={ef:4d}: recall={recall:.3f} qps={summary['qps']:.0f} "
                  f"evals/query={row['evals']}", file=sys.stderr)
    result = {"build_seconds": build_s, "query_sample": a.query_sample, "rows": rows}
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
