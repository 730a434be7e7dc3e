#!/usr/bin/env python3
"""Refits the planner's cost model (src/query/plan.rs) to this machine and checks EXPLAIN against it.

Runs every strategy forced (exact, int8-scan, graph, two-hop) and the planner's own choice over a
ladder of filters from 0.5 % to 50 % passing on a collection loaded by filtered.py, one search
thread, and for each run records the time per query, the vectors scored, recall@10 and the
estimated costs EXPLAIN printed. Scans run both one query at a time (`--one-by-one`) and in blocks
(the default: a scan reads each passing row once for a block of queries). Then:

1. fits the model's constants by least squares on relative error (see plan.rs's module
   documentation for the model) and prints them as a Rust `CostModel` to paste into plan.rs (it
   keeps one per kernel family, `CostModel::AVX512` and `CostModel::AVX2`, and a search takes its
   CPU's);
2. prints, for every run, the measured time per query against the time EXPLAIN estimated (its
   cost times the model's row_read_ns) and against the refitted model; `--check` exits 1 when any of EXPLAIN's
   estimates is off by more than 2x;
3. prints, per filter, the planner's choice (recall, QPS) beside the fastest forced strategy that
   reaches recall 0.95.

Reads the collection and data of filtered.py (which needs ../shared/bench's data; this script
only reads the generated folder):

    target/bench-venv/bin/python benches/ann/filtered.py --data target/bench-data/medium --db target/ann-medium/skysift --plans ""
    target/bench-venv/bin/python benches/ann/plan_fit.py --data target/bench-data/medium --db target/ann-medium/skysift [--check]

Times are the best of --reps runs (the machine is shared); nothing here is a test.
"""
import argparse
import json
import os
import re
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from filtered import BIN, K, TARGET, exact_gt, read_bin, recall  # noqa: E402

LADDER = [
    ("y2020", "year >= 2020", lambda m: m["year"] >= 2020),
    ("y2022", "year >= 2022", lambda m: m["year"] >= 2022),
    ("y2023", "year >= 2023", lambda m: m["year"] >= 2023),
    ("y2024", "year >= 2024", lambda m: m["year"] >= 2024),
    ("s2c10", "sensor = 2 AND cloud_cover < 10.0", lambda m: (m["sensor"] == 2) & (m["cloud_cover"] < 10.0)),
    ("s2c4", "sensor = 2 AND cloud_cover < 4.0", lambda m: (m["sensor"] == 2) & (m["cloud_cover"] < 4.0)),
    ("s2c1", "sensor = 2 AND cloud_cover < 1.0", lambda m: (m["sensor"] == 2) & (m["cloud_cover"] < 1.0)),
    ("c7s0", "class = 7 AND sensor = 0 AND year >= 2019",
     lambda m: (m["class"] == 7) & (m["sensor"] == 0) & (m["year"] >= 2019)),
]
STRATEGIES = ["exact", "int8-scan", "graph", "two-hop"]
BLOCK = 32  # src/query/exec.rs::BLOCK
CACHE_BYTES = 12 << 20  # src/query/plan.rs::CACHE_BYTES


def cached(r, dim, row_bytes):
    """Whether run r's scanned rows fit CACHE_BYTES (row_bytes per dimension: 4 for f32, 1 int8)."""
    return r["passing"] * dim * row_bytes <= CACHE_BYTES


def write_fbin(path, rows):
    with open(path, "wb") as f:
        np.array(rows.shape, dtype="<u4").tofile(f)
        rows.astype("<f4").tofile(f)


def parse_explain(err):
    """The chosen strategy, its ef, and the estimated cost (row reads) and time (ms) of each."""
    out = {"costs": {}, "est_ms": {}, "row_read_ns": None}
    for ln in err.splitlines():
        ln = ln.strip()
        if ln.startswith("strategy:"):
            out["strategy"] = ln.split()[1]
            m = re.search(r"ef=(\d+)", ln)
            out["ef"] = int(m.group(1)) if m else None
            m = re.search(r"rescoring (\d+)", ln)
            out["rescore"] = int(m.group(1)) if m else None
        elif ln.startswith("estimated cost per query"):
            out["costs"] = {k: float(v) for k, v in re.findall(r"([a-z0-9-]+) ([0-9.]+)", ln.split(":", 1)[1])}
        elif ln.startswith("estimated time per query"):
            out["row_read_ns"] = float(re.search(r"ms, ([0-9.]+) ns", ln).group(1))
            out["est_ms"] = {k: float(v) for k, v in re.findall(r"([a-z0-9-]+) ([0-9.]+)", ln.split(":", 1)[1])}
    return out


def search(a, qpath, where, plan, one_by_one):
    res = os.path.join(a.db, "fit-res.jsonl")
    cmd = [BIN, "search", a.db, "ann", "--queries", qpath, "-k", str(K), "--threads", "1", "--where", where,
           "--output", res, "--explain"]
    if plan:
        cmd += ["--plan", plan]
    if one_by_one:
        cmd.append("--one-by-one")
    best = None
    for _ in range(a.reps):
        p = subprocess.run(cmd, check=True, capture_output=True, text=True)
        s = json.loads(p.stdout.strip().splitlines()[-1])
        if best is None or s["seconds"] < best[0]["seconds"]:
            found = {}
            with open(res) as f:
                for line in f:
                    r = json.loads(line)
                    found[r["query"]] = r["ids"]
            best = (s, parse_explain(p.stderr), [found[i] for i in range(s["queries"])])
    return best


def lstsq(rows):
    """x minimising the relative error of A x = y, for rows of (A row, y)."""
    A = np.array([r[0] for r in rows], dtype=float)
    y = np.array([r[1] for r in rows], dtype=float)
    x, *_ = np.linalg.lstsq(A / y[:, None], np.ones(len(y)), rcond=None)
    return [float(v) for v in x]


def fit(runs, rows, dim):
    """The constants of plan.rs from the forced runs, strategy by strategy (times in row reads)."""
    def of(plan, one_by_one=None, in_cache=None):
        bytes_per = 4 if plan == "exact" else 1
        return [r for r in runs if r["plan"] == plan and (one_by_one is None or r["one_by_one"] == one_by_one)
                and (in_cache is None or cached(r, dim, bytes_per) == in_cache)]

    # ns per row read: the least relative error over the exact scans one query at a time whose
    # rows do not fit the caches (those that do scan faster: EXACT_CACHED)
    (unit,) = lstsq([([r["passing"]], r["ns"]) for r in of("exact", True, False)])
    b_e = float(np.median([r["ns"] / (unit * r["passing"]) for r in of("exact", False, False)]))
    exact_memory = (1 - b_e) / (1 - 1 / BLOCK)
    # from the caches: the geometric mean of the hot scans' times (whether a set of about a third
    # of the last-level cache stays there between queries varies from run to run, by up to 2.8x
    # here, so the estimate sits in the middle)
    hot = of("exact", True, True)
    hot_time = float(np.exp(np.mean(np.log([r["ns"] / (unit * r["passing"]) for r in hot])))) if hot else float("nan")
    exact_cached = (hot_time - (1 - exact_memory)) / exact_memory
    # int8 scan: t = passing * (INT8_MEMORY [* INT8_CACHED] / n + INT8_ARITHMETIC) + RESCORE *
    # rescored, the last term taking what a query costs beyond its rows (rescoring, quantizing the
    # query, the heap); the memory part of scans from the caches is a column of its own
    def int8_row(r):
        share = r["passing"] / (1 if r["one_by_one"] else BLOCK)
        hot = cached(r, dim, 1)
        return [0.0 if hot else share, share if hot else 0.0, r["passing"], 1.0], r["ns"] / unit
    int8_memory, int8_memory_cached, int8_arith, per_query = lstsq([int8_row(r) for r in of("int8-scan")])
    int8_cached = int8_memory_cached / int8_memory
    rescore = max(per_query, 0.0) / float(np.median([r["rescore"] for r in of("int8-scan")]))
    # graph: t = SCORE * scored + RESCORE * ef (scored: the vectors scored less the ef rescored)
    score = float(np.median([(r["ns"] / unit - rescore * r["ef"]) / (r["evaluations"] - r["ef"]) for r in of("graph")]))
    # two-hop, where it is fast enough to matter: per scored node, SCORE + TWO_HOP_LISTS / s
    t2 = [r for r in of("two-hop") if r["selectivity"] >= 0.1]
    lists = float(np.median([((r["ns"] / unit - rescore * r["ef"]) / (r["evaluations"] - r["ef"]) - score)
                             * r["selectivity"] for r in t2])) if t2 else float("nan")
    # ... up to TWO_HOP_LISTS_MAX, what a scored node costs beyond SCORE where the passing set is
    # sparse (below 5 %: lists read per node found stop growing as 1/s, the same lists are hit)
    t2 = [r for r in of("two-hop") if r["selectivity"] < 0.05]
    lists_max = float(np.median([(r["ns"] / unit - rescore * r["ef"]) / (r["evaluations"] - r["ef"]) - score
                                 for r in t2])) if t2 else float("nan")
    # graph, vectors scored = GRAPH_SCORED * ef / s^GRAPH_EXPONENT: fitted on the time, not on the
    # count, so that the cost carries what a score costs where the passing set is sparse (more
    # of the nodes visited are far apart: misses)
    g = [r for r in of("graph") if r["evaluations"] - r["ef"] < 0.9 * rows]
    gp = np.polyfit(np.log([r["selectivity"] for r in g]),
                    np.log([(r["ns"] / unit - rescore * r["ef"]) / (score * r["ef"]) for r in g]), 1)
    t2 = [r for r in of("two-hop") if r["evaluations"] - r["ef"] < 0.9 * r["passing"]]
    tp = np.polyfit(np.log([r["selectivity"] for r in t2]), np.log([(r["evaluations"] - r["ef"]) / r["ef"] for r in t2]), 1) \
        if len(t2) >= 2 else [float("nan")] * 2
    return {"ROW_READ_NS": unit, "EXACT_MEMORY": exact_memory, "EXACT_CACHED": exact_cached,
            "INT8_MEMORY": int8_memory, "INT8_ARITHMETIC": int8_arith, "INT8_CACHED": int8_cached, "SCORE": score, "RESCORE": rescore,
            "GRAPH_SCORED": float(np.exp(gp[1])), "GRAPH_EXPONENT": float(-gp[0]),
            "TWO_HOP_SCORED": float(np.exp(tp[1])), "TWO_HOP_EXPONENT": float(tp[0]), "TWO_HOP_LISTS": lists,
            "TWO_HOP_LISTS_MAX": lists_max}


def model_ms(c, r, rows, dim):
    """The refitted model's estimate for run r, in ms per query (plan.rs's formulas)."""
    n = 1 if r["one_by_one"] else BLOCK
    p, s, ef = r["passing"], r["selectivity"], r["ef"] or 0
    if r["plan"] == "exact":
        memory = c["EXACT_MEMORY"] * (c["EXACT_CACHED"] if cached(r, dim, 4) else 1)
        cost = p * (memory / n + 1 - c["EXACT_MEMORY"])
    elif r["plan"] == "int8-scan":
        memory = c["INT8_MEMORY"] * (c["INT8_CACHED"] if cached(r, dim, 1) else 1)
        cost = p * (memory / n + c["INT8_ARITHMETIC"]) + c["RESCORE"] * r["rescore"]
    elif r["plan"] == "graph":
        cost = c["SCORE"] * min(rows, c["GRAPH_SCORED"] * ef / s ** c["GRAPH_EXPONENT"]) + c["RESCORE"] * ef
    else:
        scored = min(p, c["TWO_HOP_SCORED"] * ef * s ** c["TWO_HOP_EXPONENT"])
        cost = (c["SCORE"] + min(c["TWO_HOP_LISTS_MAX"], c["TWO_HOP_LISTS"] / s)) * scored + c["RESCORE"] * ef
    return cost * c["ROW_READ_NS"] / 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--queries", type=int, default=200, help="text queries per run (the first N)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--filters", default=",".join(n for n, _, _ in LADDER))
    ap.add_argument("--check", action="store_true", help="exit 1 when an EXPLAIN estimate is off by more than 2x")
    ap.add_argument("--out", help="write the runs and the fit as JSON here")
    ap.add_argument("--runs", help="refit the runs of earlier --out files (comma-separated) instead of running searches")
    a = ap.parse_args()
    manifest = json.load(open(os.path.join(a.data, "manifest.json")))
    meta = {c: np.load(os.path.join(a.data, f)) for c, f in manifest["files"]["meta"].items()}
    base = read_bin(os.path.join(a.data, "base.fbin"))
    queries = read_bin(os.path.join(a.data, "query.fbin"))[:a.queries]
    qpath = os.path.join(a.db, "fit-queries.fbin")
    write_fbin(qpath, queries)
    rows, dim = base.shape
    runs = [r for path in a.runs.split(",") for r in json.load(open(path))["runs"]] if a.runs else []
    wanted = [] if a.runs else a.filters.split(",")
    for name, where, mask_of in (x for x in LADDER if x[0] in wanted):
        mask = mask_of(meta)
        passing = int(mask.sum())
        gt = exact_gt(base, queries, mask)
        configs = [(None, False)] + [(p, obo) for p in STRATEGIES for obo in
                                     ((True, False) if p in ("exact", "int8-scan") else (False,))]
        for plan, obo in configs:
            s, e, found = search(a, qpath, where, plan, obo)
            ran = plan or e.get("strategy", "?")
            r = {"filter": name, "where": where, "passing": passing, "selectivity": passing / rows,
                 "plan": ran, "planner": plan is None, "one_by_one": obo, "ef": e.get("ef"), "rescore": e.get("rescore"),
                 "recall": recall(found, gt, passing), "qps": s["queries"] / s["seconds"],
                 "ns": 1e9 * s["seconds"] / s["queries"], "evaluations": s["evaluations_per_query"],
                 "explain_ms": e["est_ms"].get(ran), "explain_row_read_ns": e["row_read_ns"]}
            runs.append(r)
            est = f"{r['explain_ms']:.3f}" if r["explain_ms"] is not None else "-"
            print(f"  {name:6s} {100 * r['selectivity']:6.2f}% {('planner: ' if plan is None else '') + ran:20s} "
                  f"{'one-by-one' if obo else 'blocked':10s} recall={r['recall']:.3f} qps={r['qps']:7.0f} "
                  f"ms={r['ns'] / 1e6:7.3f} explain={est} evals={r['evaluations']:.0f}", file=sys.stderr, flush=True)
    forced = [r for r in runs if not r["planner"]]
    c = fit(forced, rows, dim)
    print("\n// fitted by benches/ann/plan_fit.py: a `CostModel` of src/query/plan.rs")
    print("CostModel {")
    for k, v in c.items():
        print(f"    {k.lower()}: {v:.3g},")
    print("}")
    print("\n| filter | passing | strategy | mode | recall@10 | QPS | measured ms | EXPLAIN ms | ratio | refit ms | ratio |")
    print("| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    worst, refit_worst = {}, {}
    for r in forced:
        m = r["ns"] / 1e6
        ex = r["explain_ms"]
        fm = model_ms(c, r, rows, dim)
        ratio = ex / m if ex else float("nan")
        key = (r["plan"], r["one_by_one"])
        if ex:
            worst[key] = max(worst.get(key, 1.0), ratio, 1 / ratio)
        refit_worst[key] = max(refit_worst.get(key, 1.0), fm / m, m / fm)
        print(f"| {r['filter']} `{r['where']}` | {100 * r['selectivity']:.2f} % | {r['plan']} | "
              f"{'one by one' if r['one_by_one'] else 'blocked'} | {r['recall']:.3f} | {r['qps']:,.0f} | {m:.3f} | "
              f"{ex if ex is not None else '-'} | {ratio:.2f} | {fm:.3f} | {fm / m:.2f} |")
    print("\nWorst factor per strategy (estimate/measured or its inverse), EXPLAIN's and the refit's:")
    for (p, obo), w in sorted(worst.items()):
        print(f"  {p:10s} {'one by one' if obo else 'blocked':10s} {w:.2f}x  {refit_worst[(p, obo)]:.2f}x")
    print("\n| filter | passing | planner: strategy, recall@10, QPS | fastest forced at recall >= 0.95 |")
    print("| --- | ---: | --- | --- |")
    for name in dict.fromkeys(r["filter"] for r in runs):
        p = next(r for r in runs if r["filter"] == name and r["planner"])
        ok = [r for r in forced if r["filter"] == name and r["recall"] >= TARGET and not r["one_by_one"]]
        b = max(ok, key=lambda r: r["qps"]) if ok else None
        best = f"{b['plan']}, {b['recall']:.3f}, {b['qps']:,.0f}" if b else "none"
        print(f"| {name} `{p['where']}` | {100 * p['selectivity']:.2f} % | {p['plan']}, {p['recall']:.3f}, "
              f"{p['qps']:,.0f} | {best} |")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"fit": c, "runs": runs}, f, indent=1)
    bad = {k: w for k, w in worst.items() if w > 2.0}
    if a.check and bad:
        print(f"\nEXPLAIN off by more than 2x for {sorted(bad)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
