"""Ray scale-out figures (issue 15), all in one run on this machine:

1. import: the 8,973 images of ../shared/data/aid-rsicd/images by one `skysift import` process
   (both cores), by skysift.ray.import_archive with 1 worker and with 2 workers (one CPU each),
   and with 1 worker whose Ray run is held to one core (see time_ray_import); images/s of each
   and the ratios the issue sets (2 workers / 1 worker >= 1.6; 2 workers / `skysift import` >=
   0.8);
2. sharded search: ../shared/bench's `small` set (generated into bench-data/ when missing) split
   over 4 shard databases, searched by skysift.ray.ShardedCollection and as one collection, same
   queries and ef: recall@10 of both and QPS.

    .venv/bin/python benches/python/ray_bench.py [--images N] [--queries 1000] [--ef 384]

Needs a release build (`scripts/setup_python.sh --release` and `cargo build --release`) and
reads ../shared (benchmarks may; tests never do).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
from bench import dataset, read_bin, recall  # noqa: E402


def subset(src: Path, n: int | None, work: Path) -> Path:
    """The archive, or its first `n` images (hard links) when `n` is given."""
    if n is None:
        return src
    dst = work / "subset"
    files = sorted(src.rglob("*.jpg"))[:n]
    for f in files:
        t = dst / f.relative_to(src)
        t.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(f, t)
        except OSError:
            shutil.copy(f, t)
    return dst


def time_cli_import(archive: Path, db: Path) -> float:
    t = time.perf_counter()
    subprocess.run([str(ROOT / "target" / "release" / "skysift"), "import", str(db), str(archive), "--device", "cpu",
                    "--no-progress", "--json"], check=True, capture_output=True)
    return time.perf_counter() - t


def time_ray_import(archive: Path, db: Path, workers: int, pin: bool = False) -> tuple[float, dict]:
    """skysift.ray.import_archive with `workers` actors of one CPU each (Ray's accounting). With
    `pin`, the whole Ray run (driver, raylet, actors) is held to `workers` cores by
    sched_setaffinity, so one CPU per worker is also what the operating system gives it: each
    actor's encoder runs one thread, but its decode and write threads would otherwise use the
    other cores of the machine."""
    code = f"""
import json, time, ray, skysift.ray as sray
ray.init(num_cpus={workers}, include_dashboard=False, log_to_driver=False)
t = time.perf_counter()
s = sray.import_archive({str(db)!r}, {str(archive)!r}, num_workers={workers})
print(json.dumps({{"seconds": time.perf_counter() - t, "summary": s}}))
"""
    cores = sorted(os.sched_getaffinity(0))
    pinned = (lambda: os.sched_setaffinity(0, cores[:workers])) if pin and workers < len(cores) else None
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         preexec_fn=pinned).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return r["seconds"], r["summary"]


def sharded(d: Path, work: Path, queries_n: int, ef: int) -> dict:
    import ray

    import skysift
    import skysift.ray as sray

    base = np.ascontiguousarray(read_bin(d / "base.fbin", "<f4"))
    queries = np.ascontiguousarray(read_bin(d / "query.fbin", "<f4")[:queries_n])
    gt = read_bin(d / "gt_unfiltered.ibin", "<i4")[:queries_n]
    one = skysift.connect(work / "one").create_collection("v", dim=base.shape[1])
    one.add(base, ids=np.arange(len(base)))
    one.flush()
    paths = []
    for s in range(4):
        rows = np.arange(s, len(base), 4)
        c = skysift.connect(work / f"shard{s}").create_collection("v", dim=base.shape[1])
        c.add(np.ascontiguousarray(base[rows]), ids=rows)
        c.flush()
        paths.append(work / f"shard{s}")
    t = time.perf_counter()
    got_one = [one.search(q).ef(ef).limit(10).select().to_arrow().column("id").to_pylist() for q in queries]
    one_qps = len(queries) / (time.perf_counter() - t)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    sc = sray.ShardedCollection(paths, collection="v")
    t = time.perf_counter()
    got_sh = [sc.search(q, k=10, ef=ef).column("id").to_pylist() for q in queries]
    sh_qps = len(queries) / (time.perf_counter() - t)
    t = time.perf_counter()
    batch = sc.search(queries, k=10, ef=ef)
    batch_qps = len(queries) / (time.perf_counter() - t)
    ray.shutdown()
    return {"ef": ef, "one_recall": recall(got_one, gt), "one_qps": one_qps, "sharded_recall": recall(got_sh, gt),
            "sharded_qps": sh_qps, "sharded_batch_qps": batch_qps, "batch_rows": batch.num_rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, help="only the first N images (default: all 8,973)")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--ef", type=int, default=384)
    ap.add_argument("--skip-import", action="store_true")
    ap.add_argument("--skip-search", action="store_true")
    a = ap.parse_args()
    src = ROOT.parent / "shared" / "data" / "aid-rsicd" / "images"
    results: dict = {}
    (ROOT / "bench-data").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "bench-data") as w:
        work = Path(w)
        if not a.skip_import:
            archive = subset(src, a.images, work)
            n = sum(1 for _ in archive.rglob("*.jpg"))
            cli_s = time_cli_import(archive, work / "cli.db")
            one_s, one = time_ray_import(archive, work / "ray1.db", 1)
            two_s, two = time_ray_import(archive, work / "ray2.db", 2)
            pin_s, pinned = time_ray_import(archive, work / "ray1-pinned.db", 1, pin=True)
            results["import"] = {
                "images": n, "cores": len(os.sched_getaffinity(0)), "skysift_import_images_s": n / cli_s,
                "ray_1_worker_images_s": n / one_s, "ray_1_worker_on_1_core_images_s": n / pin_s,
                "ray_2_workers_images_s": n / two_s, "two_over_one": one_s / two_s,
                "two_over_one_on_1_core": pin_s / two_s, "two_over_cli": cli_s / two_s,
                "ray_summaries": [one, two, pinned]}
            print(json.dumps(results["import"], indent=2))
        if not a.skip_search:
            results["sharded"] = sharded(dataset("small"), work, a.queries, a.ef)
            print(json.dumps(results["sharded"], indent=2))
    (ROOT / "bench-data" / "ray.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
