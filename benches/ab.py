#!/usr/bin/env python3
"""Two builds of skysift against each other on the same database, interleaved rep by rep: the
before/after check of a refactoring (issue 13: "no regression beyond noise, ratios in the same run").

Both binaries search the one database the `--before` binary loaded (so both meet the same graph,
the same segments and the same calibration: a bench that builds its graph in each run compares two
different graphs), each case alternating before, after, before, after... `--reps` times; the best
QPS of each side is compared (a slow moment of this noisy machine hits one rep, not one side),
after one uncounted warm-up run of each side.
Every case also checks that both sides return the same ids and scores for every query. Then both
import the sample archive (samples/aid-mini, 300 images, demo model) into fresh databases,
interleaved the same way.

Reads ../shared/bench's `small` set (100k x 512, text queries, metadata), generated into
bench-data/small with ../shared/bench/gen_data.py when missing. Needs numpy (.venv/) and the
demo model's text tower and ONNX Runtime (scripts/setup_models.sh) for the import.

    git worktree add --detach ../skysift-before COMMIT
    (cd ../skysift-before && cargo build --release --bin skysift)
    cargo build --release --bin skysift
    .venv/bin/python benches/ab.py --before ../skysift-before/target/release/skysift \\
        --after target/release/skysift [--reps 5] [--out bench-data/ab.json]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benches", "ann"))
import filtered as fl  # noqa: E402

SHARED = os.path.join(os.path.dirname(ROOT), "shared", "bench")


def dataset(size):
    d = os.path.join(ROOT, "bench-data", size)
    if not os.path.exists(os.path.join(d, "manifest.json")):
        os.makedirs(os.path.dirname(d), exist_ok=True)
        subprocess.run([sys.executable, os.path.join(SHARED, "gen_data.py"), "--size", size, "--out",
                        os.path.dirname(d)], check=True)
    return d


def subset(src, dst, n):
    """The first `n` rows of a big-ann .fbin file, written to `dst`."""
    rows, cols = np.fromfile(src, "<u4", count=2)
    n = min(n, int(rows))
    body = np.fromfile(src, "<f4", count=n * int(cols), offset=8)
    with open(dst, "wb") as f:
        f.write(np.array([n, cols], "<u4").tobytes())
        f.write(body.tobytes())
    return dst


def run(binary, args, cwd=ROOT):
    t = time.perf_counter()
    out = subprocess.run([binary] + args, check=True, capture_output=True, text=True, cwd=cwd)
    return out.stdout, time.perf_counter() - t


def search(binary, db, queries, extra, res):
    out, _ = run(binary, ["search", db, "ann", "--queries", queries, "-k", "10", "--threads", "1",
                          "--output", res] + extra)
    summary = json.loads(out.strip().splitlines()[-1])
    with open(res) as f:
        rows = sorted((json.loads(line) for line in f), key=lambda r: r["query"])
    return summary["qps"], [(r["ids"], r["scores"]) for r in rows]


def same(a, b):
    """Queries whose ids differ, or whose scores differ by more than 1e-6."""
    bad = 0
    for (ia, sa), (ib, sb) in zip(a, b):
        if ia != ib or any(abs(x - y) > 1e-6 for x, y in zip(sa, sb)):
            bad += 1
    return bad + abs(len(a) - len(b))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="the baseline binary")
    ap.add_argument("--after", required=True, help="the binary under test")
    ap.add_argument("--size", default="small")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--queries", type=int, default=200, help="the first N queries of each file")
    ap.add_argument("--import-reps", type=int, default=3)
    ap.add_argument("--skip-import", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench-data", "ab.json"))
    a = ap.parse_args()
    sides = {"before": os.path.abspath(a.before), "after": os.path.abspath(a.after)}
    for name, b in sides.items():
        if not os.access(b, os.X_OK):
            raise SystemExit(f"--{name} {b}: not an executable")
    data = dataset(a.size)
    os.makedirs(os.path.join(ROOT, "bench-data"), exist_ok=True)
    work = tempfile.mkdtemp(prefix="ab-", dir=os.path.join(ROOT, "bench-data"))
    result = {"before": sides["before"], "after": sides["after"], "reps": a.reps, "search": [], "import": None}
    try:
        db = os.path.join(work, "db")
        os.makedirs(db)
        meta = {c: np.load(os.path.join(data, f"meta_{c}.npy")) for c in
                ("class", "sensor", "year", "cloud_cover", "lat", "lon")}
        mpath = os.path.join(work, "metadata.jsonl")
        fl.write_metadata(data, meta, mpath)
        print("== loading with the before binary", file=sys.stderr, flush=True)
        _, secs = run(sides["before"], ["load", db, "ann", "--vectors", os.path.join(data, "base.fbin"),
                                        "--metadata", mpath, "--metric", "ip", "--batch-size", "50000",
                                        "--index-threads", "2", "--query-sample",
                                        os.path.join(data, "query_sample.fbin")])
        print(f"   loaded and indexed in {secs:.0f}s", file=sys.stderr)
        # The load's dirty pages are written back first: writeback running under the first case's
        # reps made that case alone read 0.73 in two runs (and 0.99 when rerun by hand).
        os.sync()
        text, image = (subset(os.path.join(data, f), os.path.join(work, f), a.queries)
                       for f in ("query.fbin", "query_id.fbin"))
        cases = [("text, unfiltered, ef 64", text, ["--ef", "64"]),
                 ("text, unfiltered, ef 256", text, ["--ef", "256"]),
                 ("image, unfiltered, ef 64", image, ["--ef", "64"])]
        for f in ("f50", "f5", "f05"):
            for plan in (None, "exact", "graph", "two-hop"):
                cases.append((f"text, {f}, {plan or 'planner'}", text,
                              ["--where", fl.FILTERS[f][0]] + (["--plan", plan] if plan else [])))
        for label, queries, extra in cases:
            best, answers = {}, {}
            for side, b in sides.items():  # a warm-up of each side, not counted
                search(b, db, queries, extra, os.path.join(work, f"res-{side}.jsonl"))
            for _ in range(a.reps):
                for side, b in sides.items():
                    qps, ans = search(b, db, queries, extra, os.path.join(work, f"res-{side}.jsonl"))
                    best[side] = max(best.get(side, 0.0), qps)
                    answers.setdefault(side, ans)
            diff = same(answers["before"], answers["after"])
            row = {"case": label, "before_qps": round(best["before"], 1), "after_qps": round(best["after"], 1),
                   "ratio": round(best["after"] / best["before"], 3), "queries_differing": diff}
            result["search"].append(row)
            print(f"   {label:32s} before {row['before_qps']:9.1f}  after {row['after_qps']:9.1f}  "
                  f"after/before {row['ratio']:.3f}  answers differing {diff}", file=sys.stderr, flush=True)
        if not a.skip_import:
            print("== import of samples/aid-mini (300 images), interleaved", file=sys.stderr, flush=True)
            best = {}
            for rep in range(a.import_reps):
                for side, b in sides.items():
                    idb = os.path.join(work, f"import-{side}-{rep}")
                    _, secs = run(b, ["import", idb, "samples/aid-mini", "--device", "cpu", "--no-progress"])
                    best[side] = min(best.get(side, float("inf")), secs)
                    shutil.rmtree(idb, ignore_errors=True)
            result["import"] = {"before_s": round(best["before"], 2), "after_s": round(best["after"], 2),
                                "ratio": round(best["before"] / best["after"], 3)}
            print(f"   import: before {best['before']:.2f}s  after {best['after']:.2f}s  "
                  f"(after speed / before {result['import']['ratio']:.3f})", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"\n| case | before QPS | after QPS | after/before | queries answered differently |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in result["search"]:
        print(f"| {r['case']} | {r['before_qps']:,.1f} | {r['after_qps']:,.1f} | {r['ratio']:.3f} | "
              f"{r['queries_differing']} |")
    if result["import"]:
        i = result["import"]
        print(f"| import of 300 images (best of {a.import_reps}, seconds) | {i['before_s']:.2f} | {i['after_s']:.2f} | "
              f"{i['ratio']:.3f} (speed) | |")


if __name__ == "__main__":
    main()
