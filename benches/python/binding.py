"""The binding's batch cost on an existing database: Python's batch search (the chain, and the
native call alone) against `skysift search --threads 1` on the same queries and ef, best of
`--reps` interleaved, one search thread each (issue 14's "cost of the binding" for batches).

    .venv/bin/python benches/python/binding.py --db DB --collection NAME --queries Q.fbin [--ef 384]

DB: any skysift database with a vector collection, e.g. the one `benches/ab.py` or
`benches/ann/sweep.py` loads from ../shared/bench's `small` set. Needs the release binary
(`cargo build --release --bin skysift`) and the release extension (`scripts/setup_python.sh --release`).
"""

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np

import skysift

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True)
    ap.add_argument("--collection", default="ann")
    ap.add_argument("--queries", required=True, help="a big-ann .fbin file of queries")
    ap.add_argument("--ef", type=int, default=384)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    rows, cols = np.fromfile(a.queries, "<u4", count=2)
    q = np.fromfile(a.queries, "<f4", offset=8).reshape(int(rows), int(cols))
    col = skysift.connect(a.db, read_only=True).collection(a.collection)
    chain = lambda: col.search(q).ef(a.ef).limit(10).select().threads(1)  # noqa: E731
    chain().to_arrow()  # warm: pages, scratch, pyarrow
    opts = chain()._opts()
    best: dict[str, float] = {}
    cli = [str(ROOT / "target" / "release" / "skysift"), "search", a.db, a.collection, "--queries", a.queries,
           "-k", "10", "--ef", str(a.ef), "--threads", "1", "--output", str(ROOT / "bench-data" / "binding.jsonl")]
    (ROOT / "bench-data").mkdir(exist_ok=True)
    for _ in range(a.reps):
        t = time.perf_counter()
        chain().to_arrow()
        best["python_batch"] = max(best.get("python_batch", 0.0), len(q) / (time.perf_counter() - t))
        t = time.perf_counter()
        col._c.search_vectors(q, opts)
        best["native_batch"] = max(best.get("native_batch", 0.0), len(q) / (time.perf_counter() - t))
        out = subprocess.run(cli, check=True, capture_output=True, text=True).stdout
        best["cli"] = max(best.get("cli", 0.0), json.loads(out.strip().splitlines()[-1])["qps"])
    print(f"ef {a.ef}, {len(q)} queries, best of {a.reps}: Python batch {best['python_batch']:,.0f} QPS "
          f"(native call alone {best['native_batch']:,.0f}), `skysift search --threads 1` {best['cli']:,.0f}: "
          f"cost {1 - best['python_batch'] / best['cli']:.1%} (native {1 - best['native_batch'] / best['cli']:.1%})")


if __name__ == "__main__":
    main()
