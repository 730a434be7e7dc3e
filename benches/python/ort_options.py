"""How skysift's image-tower settings were chosen (issue 19 item 3): ONNX Runtime's options and the
batch size, each measured against the alternatives in the same run.

    .venv/bin/python benches/python/ort_options.py [--images ../shared/data/aid-rsicd/images]
                                                    [--tower-images 512] [--import-images 1000]
                                                    [--rounds 2] [--out target/ort-options.json]

Reads ../shared/data/aid-rsicd/images (8,973 AID scenes; see its README) unless --images names
another folder of JPEG/PNG files. Needs .venv (`scripts/setup_python.sh`: numpy, Pillow, the same
onnxruntime build skysift loads), the demo model (`scripts/setup_models.sh`) and, for the second
part, the release binary (`cargo build --release --bin skysift`).

  tower     models/demo/image.onnx alone on --tower-images preprocessed images (Pillow decode and
            resize, normalised once, outside the timing): images/s, best of --rounds + 1 passes, for
            one setting changed at a time from skysift's (graph optimisation level 3 = ORT_ENABLE_ALL,
            the CPU arena on, memory patterns on, batch 32 split between one session per core of one
            intra-op thread each, threads spinning): the level (basic, extended), the arena off,
            memory patterns off, one session of two intra-op threads instead, no spinning, and
            batches of 8, 16 and 64.
  import    `skysift import --device cpu` of the first --import-images files into a fresh
            database, whole process: images/s and encoder busy for --batch-size 8, 16, 32 (the
            default) and 64, and for --encoder-sessions 1 (one session, ONNX Runtime's threads)
            against the default (one per core); best of --rounds, rounds in alternating order.

Nothing is compared with a stored figure; each table is relative to its first row, measured in the
same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from import_loop import BIN, ROOT, images, skysift_import

MODEL = ROOT / "models" / "demo"
IMAGE = json.loads((MODEL / "manifest.json").read_text())["image"]
CORES = os.cpu_count() or 1


def preprocessed(files: list[Path]) -> np.ndarray:
    w, h = IMAGE["size"]
    mean = np.array(IMAGE["mean"], np.float32).reshape(1, 1, 3)
    std = np.array(IMAGE["std"], np.float32).reshape(1, 1, 3)
    xs = []
    for f in files:
        im = Image.open(f).convert("RGB").resize((w, h), Image.BILINEAR)
        x = (np.asarray(im, np.float32) * np.float32(IMAGE.get("rescale_factor", 1 / 255)) - mean) / std
        xs.append(x.transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(xs))


# One setting changed at a time from skysift's own (the first row).
TOWER = [
    ("skysift's: level all, arena on, patterns on, batch 32, one 1-thread session per core, spinning", {}),
    ("graph optimisation basic", {"level": "ORT_ENABLE_BASIC"}),
    ("graph optimisation extended", {"level": "ORT_ENABLE_EXTENDED"}),
    ("CPU arena off", {"arena": False}),
    ("memory patterns off", {"patterns": False}),
    ("no spinning", {"spinning": False}),
    (f"one session of {CORES} intra-op threads", {"sessions": 1}),
    ("batch 8", {"batch": 8}),
    ("batch 16", {"batch": 16}),
    ("batch 64", {"batch": 64}),
]


def tower_rate(x: np.ndarray, passes: int, level="ORT_ENABLE_ALL", arena=True, patterns=True, spinning=True,
               sessions=CORES, batch=32) -> float:
    path = str(MODEL / IMAGE["onnx"])
    made = []
    for _ in range(sessions):
        so = ort.SessionOptions()
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        so.enable_cpu_mem_arena = arena
        so.enable_mem_pattern = patterns
        so.intra_op_num_threads = 1 if sessions > 1 else CORES
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        made.append(ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]))
    name = made[0].get_inputs()[0].name

    def run_batch(pool, b):
        # Each batch is cut into one part per session, run side by side (as skysift's encoder does).
        parts = np.array_split(b, len(made))
        list(pool.map(lambda sp: sp[0].run(None, {name: sp[1]}), zip(made, parts)))

    best = float("inf")
    with ThreadPoolExecutor(len(made)) as pool:
        run_batch(pool, x[:batch])  # warm-up: the first run allocates
        for _ in range(passes):
            t = time.perf_counter()
            for i in range(0, len(x), batch):
                run_batch(pool, x[i:i + batch])
            best = min(best, time.perf_counter() - t)
    return len(x) / best


# (setting, --batch-size, other arguments of `skysift import`)
IMPORT = [
    ("--batch-size 32 (default), one session per core", 32, ()),
    ("--batch-size 8", 8, ()),
    ("--batch-size 16", 16, ()),
    ("--batch-size 64", 64, ()),
    ("--encoder-sessions 1 (ONNX Runtime's threads)", 32, ("--encoder-sessions", "1")),
]


def table(rows: list[tuple[str, float, str]], unit: str) -> None:
    base = rows[0][1]
    more = any(extra for _, _, extra in rows)
    print(f"| setting | {unit} | vs first row |" + (" |" if more else ""))
    print("| --- | ---: | ---: |" + (" --- |" if more else ""))
    for name, rate, extra in rows:
        print(f"| {name} | {rate:.1f} | {rate / base:.3f}x |" + (f" {extra} |" if more else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "aid-rsicd" / "images"))
    ap.add_argument("--tower-images", type=int, default=512)
    ap.add_argument("--import-images", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--skip-import", action="store_true", help="the tower part only (no release binary needed)")
    ap.add_argument("--out", default=str(ROOT / "target" / "ort-options.json"))
    a = ap.parse_args()
    folder = Path(a.images)
    files = images(folder, max(a.tower_images, a.import_images))
    if not files:
        sys.exit(f"no JPEG or PNG files under {folder}")
    if not a.skip_import and not BIN.exists():
        sys.exit(f"{BIN} is missing: cargo build --release --bin skysift (or pass --skip-import)")
    result: dict = {"onnxruntime": ort.__version__, "cores": CORES}

    x = preprocessed(files[:a.tower_images])
    tower = []
    for name, kw in TOWER:
        rate = tower_rate(x, a.rounds + 1, **kw)
        print(f"tower {name}: {rate:.1f} images/s", file=sys.stderr, flush=True)
        tower.append((name, rate, ""))
    result["tower"] = [{"setting": n, "images_per_s": r} for n, r, _ in tower]

    if not a.skip_import:
        work = Path(tempfile.mkdtemp(prefix="ort-options-", dir=ROOT / "target"))
        try:
            src = work / "images"
            for f in files[:a.import_images]:
                dst = src / f.relative_to(folder)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dst)  # copies: import refuses links that leave the archive
            best: dict[str, dict] = {}
            for r in range(a.rounds):
                for name, batch, extra in (IMPORT if r % 2 == 0 else IMPORT[::-1]):
                    d = skysift_import(src, work, batch, extra)
                    if not d["busy"]:
                        sys.exit(f"skysift import ({name}) reported no encoder window")
                    d["rate"] = d["images"] / d["seconds"]
                    print(f"round {r + 1} import {name}: {d['rate']:.1f} images/s, encoder busy {d['busy']:.1%}",
                          file=sys.stderr, flush=True)
                    if name not in best or d["rate"] > best[name]["rate"]:
                        best[name] = d
        finally:
            shutil.rmtree(work, ignore_errors=True)
        result["import"] = [{"setting": n, **best[n]} for n, _, _ in IMPORT]

    print(f"\nimage tower alone, {len(x)} AID images, onnxruntime {ort.__version__}, {CORES} CPUs, "
          f"best of {a.rounds + 1} passes:\n")
    table(tower, "images/s")
    if "import" in result:
        print(f"\n`skysift import` of {a.import_images} AID images, whole process, best of {a.rounds} rounds:\n")
        table([(n, best[n]["rate"], f"encoder busy {best[n]['busy']:.1%}") for n, _, _ in IMPORT], "images/s")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1))
    print(f"\nall figures: {a.out}")


if __name__ == "__main__":
    main()
