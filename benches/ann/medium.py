#!/usr/bin/env python3
"""Side-by-side on one dataset, peers and skysift back to back (issues 3 and 4): text queries,
unfiltered and filtered, one search thread, recall@10 and QPS.

The peers' indexes are the ones `filtered.py --peers --skip-skysift` built and saved
(`<peers-db>/peers/hnswlib.bin`, `faiss.index`: M=16, efConstruction=200, 2 build threads); loading
them here instead of rebuilding lets every engine be measured within minutes of the others on a
shared machine. skysift's database is the one `filtered.py` loaded (metadata + query sample).

    target/bench-venv/bin/python ../shared/bench/gen_data.py --size medium --out target/bench-data
    target/bench-venv/bin/python benches/ann/medium.py --data target/bench-data/medium \\
        --peers-db target/ann-medium/peers-run --db target/ann-medium/skysift --out medium.json

(`target/bench-venv`: see filtered.py.)

Reads ../shared/bench output (gen_data.py); needs numpy, hnswlib and faiss (the bench's venv).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import filtered as fl  # noqa: E402

K = 10


def sweep_peer(name, search, queries, gt, passing, efs, budget):
    rows = []
    for ef in efs:
        nq = len(queries)
        t = time.perf_counter()
        labels = search(queries, ef)
        secs = time.perf_counter() - t
        r = fl.recall(np.asarray(labels).tolist(), gt[:nq], passing)
        rows.append({"ef": ef, "recall": round(r, 4), "qps": round(nq / secs, 1)})
        print(f"    {name} ef={ef}: recall={r:.3f} qps={nq / secs:.0f}", file=sys.stderr, flush=True)
        if r >= 0.999 or secs > budget:
            break
    return rows


def sweep_skysift(a, variant, where, queries_file, gt, passing, efs):
    rows = []
    for ef in efs:
        res = os.path.join(a.db, f"res-medium-{variant}-{ef}.jsonl")
        cmd = ["search", a.db, "ann", "--queries", queries_file, "-k", str(K), "--threads", "1", "--output", res]
        if ef is not None:
            cmd += ["--ef", str(ef)]
        if where:
            cmd += ["--where", where]
        out, _, _ = fl.run(cmd)
        s = json.loads(out.strip().splitlines()[-1])
        found = [None] * s["queries"]
        with open(res) as f:
            for line in f:
                r = json.loads(line)
                found[r["query"]] = r["ids"]
        r = fl.recall(found, gt, passing)
        rows.append({"ef": ef if ef is not None else "auto", "recall": round(r, 4), "qps": round(s["qps"], 1),
                     "evals": round(s["evaluations_per_query"]), "open_ms": round(s.get("open_ms", 0), 1),
                     "rss_mb": s.get("rss_mb"), "peak_rss_mb": s.get("peak_rss_mb"), "vectors_mb": s.get("vectors_mb")})
        print(f"    skysift ef={ef or 'auto'}: recall={r:.3f} qps={s['qps']:.0f} evals={s['evaluations_per_query']:.0f} "
              f"open={s.get('open_ms', 0):.1f}ms rss={s.get('rss_mb')}MB peak={s.get('peak_rss_mb')}MB",
              file=sys.stderr, flush=True)
        if r >= 0.999:
            break
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--db", required=True, help="skysift database loaded by filtered.py")
    ap.add_argument("--peers-db", required=True, help="the --db of filtered.py --peers --skip-skysift")
    ap.add_argument("--variants", default="unfiltered,f50,f5,f05,f005")
    ap.add_argument("--peer-efs", default="16,32,64,128,256,512,1024,2048")
    ap.add_argument("--efs", default="16,24,32,48,64,96,128,192,256",
                    help="skysift's unfiltered sweep, after one run with no --ef (the calibrated width); "
                         "filtered runs use the planner's own width")
    ap.add_argument("--filtered-queries", type=int, default=300,
                    help="queries per point for the peers' filtered runs (hnswlib's filter is a Python callback)")
    ap.add_argument("--budget", type=float, default=40.0, help="stop a peer's sweep past this many seconds a point")
    ap.add_argument("--peers", default="hnswlib,faiss")
    ap.add_argument("--out")
    a = ap.parse_args()
    import faiss
    import hnswlib
    manifest = json.load(open(os.path.join(a.data, "manifest.json")))
    meta = {c: np.load(os.path.join(a.data, f)) for c, f in manifest["files"]["meta"].items()}
    base = fl.read_bin(os.path.join(a.data, "base.fbin"))
    queries = fl.read_bin(os.path.join(a.data, "query.fbin"))
    n, d = base.shape
    variants = a.variants.split(",")
    masks, gts = {}, {}
    for v in variants:
        if v == "unfiltered":
            gts[v] = fl.read_bin(os.path.join(a.data, "gt_unfiltered.ibin"), "<i4")
            continue
        masks[v] = fl.FILTERS[v][1](meta)
        p = os.path.join(a.data, f"gt_{v}.ibin")
        gts[v] = fl.read_bin(p, "<i4") if os.path.exists(p) else fl.exact_gt(base, queries, masks[v])
    del base
    peers = {}
    if "hnswlib" in a.peers:
        idx = hnswlib.Index(space="ip", dim=d)
        idx.load_index(os.path.join(a.peers_db, "peers", "hnswlib.bin"), max_elements=n)
        allowed = {v: m.tolist() for v, m in masks.items()}

        def hs(qs, ef, v, idx=idx, allowed=allowed):
            idx.set_ef(max(ef, K))
            if v == "unfiltered":
                return idx.knn_query(qs, k=K, num_threads=1)[0]
            return idx.knn_query(qs, k=K, num_threads=1, filter=allowed[v].__getitem__)[0]
        peers["hnswlib"] = hs
    if "faiss" in a.peers:
        fidx = faiss.read_index(os.path.join(a.peers_db, "peers", "faiss.index"))
        faiss.omp_set_num_threads(1)
        bits = {v: np.packbits(m, bitorder="little") for v, m in masks.items()}
        sels = {v: faiss.IDSelectorBitmap(n, faiss.swig_ptr(b)) for v, b in bits.items()}

        def fs(qs, ef, v, fidx=fidx, sels=sels):
            p = faiss.SearchParametersHNSW()
            p.efSearch = max(ef, K)
            if v != "unfiltered":
                p.sel = sels[v]
            return fidx.search(qs, K, params=p)[1]
        peers["faiss"] = fs
    results = {}
    qfile = os.path.join(a.data, "query.fbin")
    peer_efs = [int(x) for x in a.peer_efs.split(",")]
    efs = [int(x) for x in a.efs.split(",")]
    for v in variants:
        passing = n if v == "unfiltered" else int(masks[v].sum())
        nq = len(queries) if v == "unfiltered" else min(len(queries), a.filtered_queries)
        print(f"== {v}: {passing} passing rows", file=sys.stderr, flush=True)
        for name, search in peers.items():
            results[(name, v)] = sweep_peer(name, lambda qs, ef: search(qs, ef, v), queries[:nq], gts[v], passing,
                                            peer_efs, a.budget)
        where = None if v == "unfiltered" else fl.FILTERS[v][0]
        results[("skysift", v)] = sweep_skysift(a, v, where, qfile, gts[v], passing, [None] + efs if v == "unfiltered" else [None])
    print("\n| set | engine | best recall@10 (QPS) | QPS at recall >= 0.90 | QPS at recall >= 0.95 |")
    print("| --- | --- | --- | --- | --- |")
    for (name, v), rows in results.items():
        best = max(rows, key=lambda r: (r["recall"], r["qps"]))

        def at(t, rows=rows):
            ok = [r for r in rows if r["recall"] >= t]
            return f"{max(r['qps'] for r in ok):,.0f}" if ok else "not reached"
        print(f"| {v} | {name} | {best['recall']:.3f} ({best['qps']:,.0f}) | {at(0.90)} | {at(0.95)} |")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({f"{k[0]}/{k[1]}": r for k, r in results.items()}, f, indent=1)


if __name__ == "__main__":
    main()
