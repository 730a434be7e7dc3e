"""skysift from Python against LanceDB and Chroma, same machine, same run (issue 14's benchmark).

Reads ../shared/bench's `small` set (100k x 512 CLIP-like vectors, out-of-distribution text
queries, exact ground truth), which this script generates into bench-data/small with
../shared/bench/gen_data.py when it is missing. Needs `scripts/setup_python.sh --bench` (a
release build of skysift plus lancedb==0.40.0 and chromadb==1.5.9 in .venv/).

    .venv/bin/python benches/python/bench.py [--size small] [--queries 1000] [--out bench-data/python.json]

Each engine runs in its own process (so peak RSS is its own). Figures printed:
  insert   rows/s of the raw insert (with metadata), peak RSS growth, and the time from an
           empty database to the rows indexed and searchable at recall@10 >= 0.95;
  search   one thread, k=10: QPS at the cheapest setting reaching recall@10 >= 0.95;
  binding  QPS from Python vs `skysift search` on the same queries, ef and threads (single
           queries and a one-thread batch against --threads 1; a batch on every core against
           the binary's default), as the cost of the binding.
Ratios are against the peers measured in the same run; nothing is compared with a stored figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "bench"


def read_bin(path: Path, dtype: str) -> np.ndarray:
    with open(path, "rb") as f:
        rows, cols = np.frombuffer(f.read(8), "<u4")
        return np.frombuffer(f.read(), dtype).reshape(int(rows), int(cols))


def dataset(size: str) -> Path:
    d = ROOT / "bench-data" / size
    if not (d / "manifest.json").exists():
        d.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(SHARED / "gen_data.py"), "--size", size, "--out", str(d.parent)], check=True)
    return d


def recall(got: list[list[int]], gt: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(g[:k]) & set(t[:k].tolist())) / k for g, t in zip(got, gt)]))


def rss_peak() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def rss_now() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def meta_columns(d: Path, n: int) -> dict[str, list]:
    out = {}
    for name in ("class", "sensor", "year", "cloud_cover"):
        p = d / f"meta_{name}.npy"
        if p.exists():
            out[name] = np.load(p, allow_pickle=False)[:n].tolist()
    return out


# -- engines (each runs in a child process: `bench.py --engine NAME`) ------------------------------

def run_skysift(d: Path, base: np.ndarray, queries: np.ndarray, gt: np.ndarray, work: Path) -> dict:
    import skysift

    meta = meta_columns(d, len(base))
    db = skysift.connect(work / "skysift.db")
    schema = {k: ("keyword" if isinstance(v[0], str) else "integer" if isinstance(v[0], int) else "float")
              for k, v in meta.items()}
    col = db.create_collection("v", dim=base.shape[1], schema=schema)
    open("/proc/self/clear_refs", "w").write("5")
    r0 = rss_now()
    t = time.perf_counter()
    col.add(base, metadata=meta)
    insert_s = time.perf_counter() - t
    peak = rss_peak() - r0
    col.flush()
    indexed_s = time.perf_counter() - t
    best = None
    sweep = []
    for ef in (16, 32, 64, 96, 128, 192, 256, 384, 512, 768):
        t = time.perf_counter()
        got = [col.search(q).ef(ef).limit(10).select().to_list() for q in queries]
        s = time.perf_counter() - t
        rec = recall([[r["id"] for r in g] for g in got], gt)
        sweep.append({"ef": ef, "recall": rec, "qps": len(queries) / s})
        if rec >= 0.95 and best is None:
            best = sweep[-1]
            break
    ef = (best or sweep[-1])["ef"]
    db.close()
    return {"insert_rows_s": len(base) / insert_s, "insert_peak_rss_mb": peak / 1e6, "indexed_s": indexed_s,
            "search": best, "sweep": sweep, "ef": ef}


def run_lancedb(d: Path, base: np.ndarray, queries: np.ndarray, gt: np.ndarray, work: Path) -> dict:
    import lancedb
    import pyarrow as pa

    meta = meta_columns(d, len(base))
    db = lancedb.connect(str(work / "lance"))
    cols = {"id": pa.array(np.arange(len(base), dtype=np.uint64)),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(base.reshape(-1)), base.shape[1])}
    cols.update({k: pa.array(v) for k, v in meta.items()})
    table_data = pa.table(cols)
    open("/proc/self/clear_refs", "w").write("5")
    r0 = rss_now()
    t = time.perf_counter()
    tbl = db.create_table("v", table_data)
    insert_s = time.perf_counter() - t
    peak = rss_peak() - r0
    tbl.create_index(metric="dot", vector_column_name="vector", index_type="IVF_HNSW_SQ")
    indexed_s = time.perf_counter() - t
    best, sweep = None, []
    for ef in (16, 32, 64, 128, 256, 512, 1024):
        for nprobes in (10, 20, 40):
            t = time.perf_counter()
            got = [tbl.search(q).metric("dot").nprobes(nprobes).ef(ef).limit(10).select(["id"]).to_arrow()
                   .column("id").to_pylist() for q in queries]
            s = time.perf_counter() - t
            rec = recall(got, gt)
            sweep.append({"ef": ef, "nprobes": nprobes, "recall": rec, "qps": len(queries) / s})
            if rec >= 0.95 and (best is None or sweep[-1]["qps"] > best["qps"]):
                best = sweep[-1]
        if best is not None:
            break
    return {"insert_rows_s": len(base) / insert_s, "insert_peak_rss_mb": peak / 1e6, "indexed_s": indexed_s,
            "search": best, "sweep": sweep}


def run_chroma(d: Path, base: np.ndarray, queries: np.ndarray, gt: np.ndarray, work: Path) -> dict:
    import chromadb

    meta = meta_columns(d, len(base))
    client = chromadb.PersistentClient(path=str(work / "chroma"))
    best, sweep = None, []
    result: dict = {}
    for ef in (64, 128, 256, 512):
        name = f"v{ef}"
        col = client.create_collection(name, metadata={"hnsw:space": "ip", "hnsw:search_ef": ef})
        open("/proc/self/clear_refs", "w").write("5")
        r0 = rss_now()
        t = time.perf_counter()
        step = 5000  # Chroma's max batch is about this size
        for i in range(0, len(base), step):
            rows = [{k: v[j] for k, v in meta.items()} for j in range(i, min(i + step, len(base)))]
            col.add(ids=[str(j) for j in range(i, min(i + step, len(base)))], embeddings=base[i:i + step],
                    metadatas=rows or None)
        insert_s = time.perf_counter() - t
        if not result:
            result = {"insert_rows_s": len(base) / insert_s, "insert_peak_rss_mb": (rss_peak() - r0) / 1e6,
                      "indexed_s": insert_s}
        t = time.perf_counter()
        got = [[int(x) for x in col.query(query_embeddings=[q], n_results=10, include=[])["ids"][0]] for q in queries]
        s = time.perf_counter() - t
        rec = recall(got, gt)
        sweep.append({"ef": ef, "recall": rec, "qps": len(queries) / s})
        client.delete_collection(name)
        if rec >= 0.95:
            best = sweep[-1]
            break
    result.update({"search": best, "sweep": sweep})
    return result


def run_cli(d: Path, queries: np.ndarray, work: Path, ef: int, threads: int) -> dict:
    """`skysift search` on the database the skysift child wrote, same queries, ef and threads."""
    qp = work / "q.npy"
    np.save(qp, queries)
    out = subprocess.run([str(ROOT / "target" / "release" / "skysift"), "search", str(work / "skysift.db"), "v",
                          "--queries", str(qp), "-k", "10", "--ef", str(ef), "--threads", str(threads),
                          "--output", str(work / "cli.jsonl")],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_binding(d: Path, queries: np.ndarray, work: Path, ef: int, reps: int = 5) -> dict:
    """Python against `skysift search` on the database the skysift child wrote, same queries, ef
    and threads, interleaved rep by rep (this machine is noisy: each mode's best of `reps` is
    compared, so a slow moment hits one rep, not one side)."""
    import pyarrow  # noqa: F401  (imported once here: a process's first to_arrow() would pay it)

    import skysift

    db = skysift.connect(work / "skysift.db", read_only=True)
    col = db.collection("v")
    cores = os.cpu_count() or 1
    col.search(queries[:20]).ef(ef).limit(10).select().to_arrow()  # warm: scratch, pages
    best: dict[str, float] = {}

    def keep(mode: str, qps: float) -> None:
        best[mode] = max(best.get(mode, 0.0), qps)

    for _ in range(reps):
        t = time.perf_counter()
        for q in queries:
            col.search(q).ef(ef).limit(10).select().to_list()
        keep("python_single", len(queries) / (time.perf_counter() - t))
        for threads, mode in ((1, "python_batch"), (0, "python_batch_all_cores")):
            t = time.perf_counter()
            col.search(queries).ef(ef).limit(10).select().threads(threads).to_arrow()
            keep(mode, len(queries) / (time.perf_counter() - t))
        keep("cli", run_cli(d, queries, work, ef, 1)["qps"])
        keep("cli_all_cores", run_cli(d, queries, work, ef, cores)["qps"])
    db.close()
    best["cost_single"] = 1 - best["python_single"] / best["cli"]
    best["cost_batch"] = 1 - best["python_batch"] / best["cli"]
    best["cost_batch_all_cores"] = 1 - best["python_batch_all_cores"] / best["cli_all_cores"]
    best.update(reps=reps, ef=ef, cores=cores)
    return best


ENGINES = {"skysift": run_skysift, "lancedb": run_lancedb, "chroma": run_chroma}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="small")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--engines", default="skysift,lancedb,chroma")
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--ef", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(ROOT / "bench-data" / "python.json"))
    a = ap.parse_args()
    d = dataset(a.size)
    if a.engine:
        base = read_bin(d / "base.fbin", "<f4")
        queries = np.ascontiguousarray(read_bin(d / "query.fbin", "<f4")[: a.queries])
        gt = read_bin(d / "gt_unfiltered.ibin", "<i4")[: a.queries]
        base = np.ascontiguousarray(base)
        if a.engine == "binding":
            print(json.dumps(run_binding(d, queries, Path(a.work), a.ef)))
        else:
            print(json.dumps(ENGINES[a.engine](d, base, queries, gt, Path(a.work))))
        return
    results = {}
    with tempfile.TemporaryDirectory(dir=ROOT / "bench-data") as work:
        for name in a.engines.split(","):
            print(f"== {name}", file=sys.stderr)
            out = subprocess.run([sys.executable, __file__, "--size", a.size, "--queries", str(a.queries),
                                  "--engine", name, "--work", work], capture_output=True, text=True)
            if out.returncode != 0:
                results[name] = {"error": out.stderr[-2000:]}
                continue
            results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        if "skysift" in results and "ef" in results["skysift"]:
            out = subprocess.run([sys.executable, __file__, "--size", a.size, "--queries", str(a.queries),
                                  "--engine", "binding", "--work", work, "--ef", str(results["skysift"]["ef"])],
                                 capture_output=True, text=True)
            results["binding"] = (json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0
                                  else {"error": out.stderr[-2000:]})
    Path(a.out).write_text(json.dumps(results, indent=2))
    print(f"\n| engine | insert rows/s | insert peak RSS MB | to index (s) | QPS @ recall 0.95 (setting) |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in results.items():
        if name == "binding":
            continue
        if "error" in r:
            print(f"| {name} | error: {r['error'].splitlines()[-1] if r['error'] else '?'} | | | |")
            continue
        best = r.get("search") or {}
        setting = {k: v for k, v in best.items() if k not in ("recall", "qps")}
        print(f"| {name} | {r['insert_rows_s']:,.0f} | {r['insert_peak_rss_mb']:,.0f} | {r['indexed_s']:.1f} | "
              f"{best.get('qps', float('nan')):,.0f} ({setting}) |")
    b = results.get("binding", {})
    if "error" in b:
        print(f"\nbinding: error: {b['error'].splitlines()[-1] if b['error'] else '?'}")
    elif b:
        print(f"\nbinding (ef {b['ef']}, best of {b['reps']} interleaved reps), one thread: Python "
              f"{b['python_single']:,.0f} QPS single queries, {b['python_batch']:,.0f} batch; `skysift search "
              f"--threads 1` {b['cli']:,.0f} QPS (cost {b['cost_single']:.1%} single, {b['cost_batch']:.1%} batch)")
        print(f"binding, every core ({b['cores']}): Python batch {b['python_batch_all_cores']:,.0f} QPS; "
              f"`skysift search --threads {b['cores']}` {b['cli_all_cores']:,.0f} QPS "
              f"(cost {b['cost_batch_all_cores']:.1%})")

if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
