#!/usr/bin/env python3
"""Filtered search, skysift against its peers: recall@10 and QPS per selectivity.

Loads a ../shared/bench dataset (gen_data.py output) with its metadata into skysift, then runs the
bench's filters f50 / f5 / f05 plus filters added here (f20, f2 and f005, a geo box near 0.05 %),
with the planner choosing per segment and with each strategy forced, and prints a table next to
hnswlib (filter callback) and faiss (IDSelectorBitmap) at their best QPS with recall >= 0.95.

Needs numpy (the bench's venv has it; hnswlib and faiss too, for --peers):

    python3 -m venv target/bench-venv && target/bench-venv/bin/pip install -r ../shared/bench/requirements.txt
    target/bench-venv/bin/python ../shared/bench/gen_data.py --size small --out target/bench-data
    target/bench-venv/bin/python benches/ann/filtered.py --data target/bench-data/small \\
        --db target/ann-filtered [--reload] [--peers [--reuse-peers]] [--filters f50,f5,f05,f005] [--out results.json]

Metadata goes to skysift as JSON lines: class, sensor and year as integers, cloud_cover as a
float, and footprint as the point box [lon, lat, lon, lat]. Ground truth for the added filters is
computed here by exact numpy scan of the passing rows. One search thread throughout; every
configuration runs --reps times and keeps its best QPS (the machine is shared: QPS compares only
within one run).
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target", "release", "skysift")
K = 10
TARGET = 0.95

# name -> (skysift filter, numpy mask over the metadata columns)
FILTERS = {
    "f50": ("year >= 2020", lambda m: m["year"] >= 2020),
    "f20": ("year >= 2022", lambda m: m["year"] >= 2022),
    "f5": ("sensor = 2 AND cloud_cover < 10.0", lambda m: (m["sensor"] == 2) & (m["cloud_cover"] < 10.0)),
    "f2": ("sensor = 2 AND cloud_cover < 4.0", lambda m: (m["sensor"] == 2) & (m["cloud_cover"] < 4.0)),
    "f05": ("class = 7 AND sensor = 0 AND year >= 2019",
            lambda m: (m["class"] == 7) & (m["sensor"] == 0) & (m["year"] >= 2019)),
    "f005": ("intersects(footprint, bbox(100, 30, 105, 35))",
             lambda m: (m["lon"] >= 100) & (m["lon"] <= 105) & (m["lat"] >= 30) & (m["lat"] <= 35)),
}


def read_bin(path, dtype="<f4"):
    with open(path, "rb") as f:
        rows, cols = np.fromfile(f, dtype="<u4", count=2)
    return np.fromfile(path, dtype=dtype, offset=8).reshape(int(rows), int(cols))


def run(args):
    t = time.time()
    out = subprocess.run([BIN] + args, check=True, capture_output=True, text=True)
    return out.stdout, out.stderr, time.time() - t


def write_metadata(data, meta, path):
    n = len(meta["year"])
    cols = {c: meta[c].tolist() for c in ("class", "sensor", "year", "cloud_cover", "lat", "lon")}
    with open(path, "w") as f:
        for i in range(n):
            lon, lat = cols["lon"][i], cols["lat"][i]
            f.write(json.dumps({"class": cols["class"][i], "sensor": cols["sensor"][i], "year": cols["year"][i],
                                "cloud_cover": cols["cloud_cover"][i], "footprint": [lon, lat, lon, lat]}))
            f.write("\n")


def exact_gt(base, queries, mask):
    ids = np.nonzero(mask)[0]
    sub = base[ids]
    out = np.full((len(queries), K), -1, dtype=np.int64)
    for s in range(0, len(queries), 100):
        scores = queries[s:s + 100] @ sub.T
        kk = min(K, len(ids))
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable")
        out[s:s + 100, :kk] = ids[np.take_along_axis(top, order, 1)]
    return out


def recall(found, gt, passing):
    want = min(K, passing)
    hits = sum(len(set(f[:K]) & set(int(x) for x in g[:want] if x >= 0)) for f, g in zip(found, gt))
    return hits / (want * len(gt))


def skysift_search(a, name, where, plan=None, ef=None):
    res = os.path.join(a.db, f"res-{name}-{plan or 'planner'}-{ef or 0}.jsonl")
    cmd = ["search", a.db, "ann", "--queries", os.path.join(a.data, "query.fbin"), "-k", str(K), "--threads", "1",
           "--where", where, "--output", res, "--explain"]
    if plan:
        cmd += ["--plan", plan]
    if ef:
        cmd += ["--ef", str(ef)]
    out, err, _ = run(cmd)
    summary = json.loads(out.strip().splitlines()[-1])
    found = [None] * summary["queries"]
    with open(res) as f:
        for line in f:
            r = json.loads(line)
            found[r["query"]] = r["ids"]
    strategy = next((ln.split()[1] for ln in err.splitlines() if ln.strip().startswith("strategy:")), "?")
    return found, summary, strategy, err


# Saved peer indexes (what bench's peers.py writes after its build), reused by --reuse-peers.
SAVED = {"hnswlib": "hnswlib.bin", "faiss": "faiss.index"}


def peer_stamp(data, d, build_seconds):
    """What a saved peer index was built from: reused only when the data is the same."""
    base = os.path.join(data, "base.fbin")
    return {"data": os.path.abspath(data), "rows": int(d.n), "dim": int(d.d), "base_bytes": os.path.getsize(base),
            "base_mtime": int(os.path.getmtime(base)), "build_seconds": build_seconds}


def load_peer(cls, d, workdir, data):
    """The peer's index saved by an earlier build of the same data, or None (then it is built).

    Builds a peer object the way peers.py's constructor leaves it, with the index read from disk
    instead of built; its build time is the one recorded beside the saved index."""
    path = os.path.join(workdir, SAVED[cls.name])
    stamp_path = os.path.join(workdir, f"{cls.name}.json")
    if not (os.path.exists(path) and os.path.exists(stamp_path)):
        return None
    stamp = json.load(open(stamp_path))
    if {k: v for k, v in stamp.items() if k != "build_seconds"} != \
            {k: v for k, v in peer_stamp(data, d, None).items() if k != "build_seconds"}:
        print(f"  {path} was built from other data: rebuilding", file=sys.stderr)
        return None
    p = cls.__new__(cls)
    p.data, p.build_seconds, p.index_bytes = d, stamp["build_seconds"], os.path.getsize(path)
    if cls.name == "hnswlib":
        import hnswlib
        p.idx = hnswlib.Index(space="ip", dim=d.d)
        p.idx.load_index(path, max_elements=d.n)
        p.allowed = {f: d.masks[f].tolist() for f in d.masks}
    else:
        import faiss
        p.faiss, p.idx = faiss, faiss.read_index(path)
        p.bits = {f: np.packbits(d.masks[f], bitorder="little") for f in d.masks}
        p.sel = {f: faiss.IDSelectorBitmap(d.n, faiss.swig_ptr(p.bits[f])) for f in p.bits}
    print(f"  {cls.name}: reusing {path} (built in {p.build_seconds:.0f}s)", file=sys.stderr, flush=True)
    return p


def peers(a, base, queries, masks, gts, names):
    sys.path.insert(0, a.bench)
    import peers as bench_peers  # noqa: E402

    class D:  # the part of peers.Data the peer classes read
        pass

    d = D()
    d.base, d.n, d.d = base, base.shape[0], base.shape[1]
    d.masks = {n: masks[n] for n in names}
    efs = [int(x) for x in a.peer_efs.split(",")]
    out = {}
    workdir = os.path.join(a.db, "peers")
    os.makedirs(workdir, exist_ok=True)
    classes = {"hnswlib": bench_peers.HnswlibPeer, "faiss": bench_peers.FaissPeer}
    for cls in (classes[x] for x in a.peer_list.split(",")):
        p = load_peer(cls, d, workdir, a.data) if a.reuse_peers else None
        if p is None:
            print(f"  building {cls.name} ...", file=sys.stderr, flush=True)
            p = cls(d, workdir)
            with open(os.path.join(workdir, f"{cls.name}.json"), "w") as f:
                json.dump(peer_stamp(a.data, d, p.build_seconds), f)
            print(f"  built {cls.name} in {p.build_seconds:.0f}s", file=sys.stderr, flush=True)
        out[(cls.name, "build")] = {"build_seconds": round(p.build_seconds, 1), "index_bytes": p.index_bytes}
        for n in names + (["unfiltered"] if a.unfiltered else []):
            rows = []
            for ef in efs:
                nq = len(queries)
                secs = float("inf")
                for _ in range(a.reps):
                    t = time.perf_counter()
                    labels = p.search(queries[:nq], K, ef, 1, None if n == "unfiltered" else n)
                    secs = min(secs, time.perf_counter() - t)
                passing = len(base) if n == "unfiltered" else int(masks[n].sum())
                r = recall(np.asarray(labels).tolist(), gts[n][:nq], passing)
                rows.append({"ef": ef, "recall": round(r, 4), "qps": round(nq / secs, 1)})
                print(f"    {cls.name} {n} ef={ef}: recall={r:.3f} qps={nq / secs:.0f}", file=sys.stderr, flush=True)
                if r >= 0.999 or secs > a.peer_budget:
                    break
            ok = [r for r in rows if r["recall"] >= TARGET]
            out[(cls.name, n)] = {"best": max(ok, key=lambda r: r["qps"]) if ok else None,
                                  "max_recall": max(r["recall"] for r in rows), "rows": rows}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--bench", default=str(Path(__file__).resolve().parents[2].parent / "shared" / "bench"),
                    help="the bench folder, whose peers.py --peers imports (default ../shared/bench)")
    ap.add_argument("--reload", action="store_true")
    ap.add_argument("--filters", default="f50,f20,f5,f2,f05,f005")
    ap.add_argument("--plans", default="exact,int8-scan,graph,two-hop", help="strategies also run forced")
    ap.add_argument("--peers", action="store_true", help="also run hnswlib and faiss on the same filters")
    ap.add_argument("--peer-efs", default="16,32,64,128,256,512,1024")
    ap.add_argument("--peer-budget", type=float, default=30.0, help="stop a peer's ef sweep past this many seconds")
    ap.add_argument("--reps", type=int, default=3, help="runs per configuration; the best QPS is kept")
    ap.add_argument("--peer-list", default="hnswlib,faiss", help="which peers --peers runs")
    ap.add_argument("--unfiltered", action="store_true", help="peers also sweep unfiltered text queries "
                    "(one build serves both tables; skysift's side of it is sweep.py on the same --db)")
    ap.add_argument("--skip-skysift", action="store_true", help="run only the peers")
    ap.add_argument("--reuse-peers", action="store_true", help="search the peers' indexes saved by an earlier "
                    "--peers run on the same data (DB/peers/) instead of building them again; build times are "
                    "the recorded ones")
    ap.add_argument("--out", help="write results JSON here")
    a = ap.parse_args()
    manifest = json.load(open(os.path.join(a.data, "manifest.json")))
    meta = {c: np.load(os.path.join(a.data, f)) for c, f in manifest["files"]["meta"].items()}
    base = read_bin(os.path.join(a.data, "base.fbin"))
    queries = read_bin(os.path.join(a.data, "query.fbin"))
    names = a.filters.split(",")
    masks = {n: FILTERS[n][1](meta) for n in names}
    gts = {}
    for n in names:
        bench_gt = os.path.join(a.data, f"gt_{n}.ibin")
        gts[n] = read_bin(bench_gt, "<i4") if os.path.exists(bench_gt) else exact_gt(base, queries, masks[n])
    if a.unfiltered:
        gts["unfiltered"] = read_bin(os.path.join(a.data, "gt_unfiltered.ibin"), "<i4")
    build = None
    if a.skip_skysift:
        peer = peers(a, base, queries, masks, gts, names)
        if a.out:
            with open(a.out, "w") as fo:
                json.dump({"peers": {f"{k[0]}/{k[1]}": v for k, v in peer.items()}}, fo, indent=1)
        return
    if a.reload or not os.path.exists(os.path.join(a.db, "MANIFEST")):
        subprocess.run(["rm", "-rf", a.db], check=True)
        os.makedirs(a.db)
        mpath = os.path.join(a.db, "metadata.jsonl")
        write_metadata(a.data, meta, mpath)
        cmd = ["load", a.db, "ann", "--vectors", os.path.join(a.data, "base.fbin"), "--metadata", mpath,
               "--metric", "ip", "--batch-size", "50000", "--index-threads", "2",
               "--query-sample", os.path.join(a.data, "query_sample.fbin")]
        _, _, build = run(cmd)
        print(f"  loaded and indexed in {build:.0f}s", file=sys.stderr)
    rows = []
    for n in names:
        where = FILTERS[n][0]
        passing = int(masks[n].sum())
        for plan in [None] + [p for p in a.plans.split(",") if p]:
            runs = [skysift_search(a, n, where, plan) for _ in range(a.reps)]
            found, s, strategy, explain = max(runs, key=lambda r: r[1]["qps"])
            assert s["passing"] == passing, (n, s["passing"], passing)
            r = recall(found, gts[n], passing)
            row = {"filter": n, "where": where, "passing": passing, "selectivity": passing / len(meta["year"]),
                   "plan": plan or f"planner ({strategy})", "recall": round(r, 4), "qps": round(s["qps"], 1),
                   "evaluations": round(s["evaluations_per_query"], 1), "filter_ms": round(1e3 * s["filter_seconds"], 2)}
            rows.append(row)
            print(f"  skysift {n:5s} {row['plan']:20s} recall={r:.3f} qps={s['qps']:8.0f} "
                  f"evals={s['evaluations_per_query']:8.0f} filter={row['filter_ms']:.1f}ms", file=sys.stderr, flush=True)
            if plan is None:
                print("    " + explain.replace("\n", "\n    "), file=sys.stderr)
    peer = peers(a, base, queries, masks, gts, names) if a.peers else {}
    print("\n| filter | passing | skysift planner: strategy, recall@10, QPS | hnswlib best QPS @ recall >= 0.95 "
          "| faiss best QPS @ recall >= 0.95 | skysift / best peer |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n in names:
        r = next(x for x in rows if x["filter"] == n and x["plan"].startswith("planner"))

        def cell(name):
            p = peer.get((name, n))
            if p is None or "best" not in p:
                return "not run", None
            if p["best"] is None:
                return f"max recall {p['max_recall']:.3f}", None
            return f"{p['best']['qps']:,.0f} (ef {p['best']['ef']}, recall {p['best']['recall']:.3f})", p["best"]["qps"]

        h, hq = cell("hnswlib")
        f, fq = cell("faiss")
        best = max([q for q in (hq, fq) if q], default=None)
        ratio = f"{r['qps'] / best:.1f}x" if best else "–"
        print(f"| {n} `{r['where']}` | {r['passing']} ({100 * r['selectivity']:.2f} %) | {r['plan']}, "
              f"{r['recall']:.3f}, {r['qps']:,.0f} | {h} | {f} | {ratio} |")
    if a.out:
        with open(a.out, "w") as fo:
            json.dump({"build_seconds": build, "rows": rows,
                       "peers": {f"{k[0]}/{k[1]}": v for k, v in peer.items()}}, fo, indent=1)


if __name__ == "__main__":
    main()
