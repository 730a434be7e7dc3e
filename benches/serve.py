"""Serving a large collection (issue 19 item 5): resident memory from a cold start, and how
batch search scales from one search thread to two, on the CLI and on Python's batch path.

    python3 benches/serve.py --db DB [--collection ann] [--queries Q.fbin] [--baseline OLD/skysift]
                             [--rounds 5] [--ef 64]

DB is a database of vectors with a graph index, for example the 1M `medium` database of the
README's ANN section (`benches/ann/filtered.py --data bench-data/medium --db DB --reload` builds it
from ../shared/bench's generator; this script reads only the database and the query file).

  cold      for this build (and --baseline): the page cache dropped (`echo 3 >
            /proc/sys/vm/drop_caches`, needs root; skipped with a note otherwise), then
            `skysift search DB C --queries Q -k 10 --ef E --threads 1`: its open_ms, resident
            memory (VmRSS, heap and mapped file pages) against the size of the f32 vectors
  threads   `skysift search ... --threads 1` and `--threads 2`, interleaved rounds, best QPS of
            each, and their ratio
  python    with .venv's `skysift` package: `col.search(queries).ef(E).limit(10).select()
            .threads(T).to_arrow()` (ids and scores, as the CLI writes them) for T = 1 and 2,
            same rounds (skipped when the package is not importable)

Nothing is compared with a stored figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "target" / "release" / "skysift"


def search(binary: str, a: argparse.Namespace, threads: int) -> dict:
    out = subprocess.run([binary, "search", a.db, a.collection, "--queries", a.queries, "-k", "10", "--ef",
                          str(a.ef), "--threads", str(threads), "--output", os.devnull],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{binary} search failed: {out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def drop_caches() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def python_batch(a: argparse.Namespace) -> dict[int, float] | None:
    """Best QPS of Python's batch path per thread count, or None without the package."""
    code = f"""
import json, sys, time
import numpy as np
import skysift
rows, cols = np.fromfile({a.queries!r}, "<u4", count=2)
q = np.fromfile({a.queries!r}, "<f4", offset=8).reshape(int(rows), int(cols))
col = skysift.connect({a.db!r}, read_only=True).collection({a.collection!r})
best = {{}}
col.search(q[:100]).ef({a.ef}).limit(10).select().threads(1).to_arrow()
for _ in range({a.rounds}):
    for t in (1, 2):
        s = time.perf_counter()
        col.search(q).ef({a.ef}).limit(10).select().threads(t).to_arrow()
        best[t] = max(best.get(t, 0.0), len(q) / (time.perf_counter() - s))
print(json.dumps(best))
"""
    py = ROOT / ".venv" / "bin" / "python"
    if not py.exists():
        return None
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"python batch path skipped: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return {int(k): v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True)
    ap.add_argument("--collection", default="ann")
    ap.add_argument("--queries", default=str(ROOT / "bench-data" / "medium" / "query.fbin"))
    ap.add_argument("--baseline", help="an earlier build's skysift binary for the cold-start rows")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ef", type=int, default=64)
    a = ap.parse_args()

    print("| cold start, 1 thread | open ms | QPS | RSS MB | heap MB | mapped MB | RSS / f32 vectors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    builds = [("this build", str(BIN))] + ([("baseline", a.baseline)] if a.baseline else [])
    for name, binary in builds:
        if not drop_caches():
            print(f"| {name} | (not cold: dropping the page cache needs root) | | | | | |")
            continue
        d = search(binary, a, 1)
        print(f"| {name} | {d['open_ms']:.1f} | {d['qps']:,.0f} | {d['rss_mb']:,.0f} | {d['rss_anon_mb']:,.1f} | "
              f"{d['rss_file_mb']:,.0f} | {d['rss_mb'] / d['vectors_mb']:.1%} |")

    search(str(BIN), a, 1)  # warm: the rounds below read from the page cache
    best: dict[int, float] = {}
    for r in range(a.rounds):
        for t in ((1, 2) if r % 2 == 0 else (2, 1)):
            best[t] = max(best.get(t, 0.0), search(str(BIN), a, t)["qps"])
    print(f"\n`skysift search --threads`, best of {a.rounds} interleaved rounds, ef {a.ef}: 1 thread "
          f"{best[1]:,.0f} QPS, 2 threads {best[2]:,.0f} QPS: {best[2] / best[1]:.2f}x")
    py = python_batch(a)
    if py:
        print(f"Python batch path, best of {a.rounds}: 1 thread {py[1]:,.0f} QPS, 2 threads {py[2]:,.0f} QPS: "
              f"{py[2] / py[1]:.2f}x")
    else:
        print("Python batch path: skipped (no .venv with the skysift package: scripts/setup_python.sh)")
    print(f"({os.cpu_count()} CPUs here)")


if __name__ == "__main__":
    main()
