"""`skysift import` against the loop a Python user writes, on the same images, same run (issue 19
item 3).

    .venv/bin/python benches/python/import_loop.py [--images ../shared/data/aid-rsicd/images]
                                                   [--limit N] [--rounds 2] [--batch 32]

Reads ../shared/data/aid-rsicd/images (8,973 AID scenes; see its README) unless --images names
another folder of JPEG/PNG files. Needs the release binary (`cargo build --release --bin
skysift`), the demo model (`scripts/setup_models.sh`) and .venv (`scripts/setup_python.sh`:
numpy, Pillow, onnxruntime).

  python loop     for each batch of --batch files: Pillow decode, RGB, resize to the model's input
                  (160 x 160, bilinear, Pillow's antialiasing: the model's training preprocessing),
                  NumPy x / 255, (x - mean) / std, CHW; onnxruntime (the same ONNX Runtime build
                  skysift loads, 2 intra-op threads) on models/demo/image.onnx; nothing written.
                  Images/s from the start of the process (model load included) to the last batch.
  skysift import  `skysift import DB FOLDER --device cpu --json` into a fresh database: the whole
                  process (model load, decode, resize, thumbnails, hashing, commits, the graph
                  build); images/s of its wall clock, and its own `encoder busy` (the share of
                  its encoding window the encoder was running).

Rounds alternate the order; the best of each is compared. Targets (issue 19): skysift >= 1.15x
the loop, encoder busy >= 95 %. Nothing is compared with a stored figure.
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

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "target" / "release" / "skysift"

LOOP = r"""
import json, os, sys, time
t0 = time.perf_counter()
import numpy as np
import onnxruntime as ort
from PIL import Image
files = [l for l in open(sys.argv[1]).read().splitlines() if l]
model_dir, batch = sys.argv[2], int(sys.argv[3])
m = json.load(open(os.path.join(model_dir, "manifest.json")))["image"]
w, h = m["size"]
mean = np.array(m["mean"], np.float32).reshape(1, 1, 3)
std = np.array(m["std"], np.float32).reshape(1, 1, 3)
so = ort.SessionOptions()
so.intra_op_num_threads = 2
s = ort.InferenceSession(os.path.join(model_dir, m["onnx"]), so, providers=["CPUExecutionProvider"])
name = s.get_inputs()[0].name
done = 0
for i in range(0, len(files), batch):
    xs = []
    for f in files[i:i + batch]:
        im = Image.open(f).convert("RGB").resize((w, h), Image.BILINEAR)
        x = (np.asarray(im, np.float32) * np.float32(m.get("rescale_factor", 1 / 255)) - mean) / std
        xs.append(x.transpose(2, 0, 1))
    out = s.run(None, {name: np.stack(xs)})[0]
    done += out.shape[0]
print(json.dumps({"images": done, "seconds": time.perf_counter() - t0}))
"""


def images(folder: Path, limit: int | None) -> list[Path]:
    out = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    return out[:limit] if limit else out


def python_loop(files_txt: Path, batch: int) -> dict:
    py = ROOT / ".venv" / "bin" / "python"
    t = time.perf_counter()
    out = subprocess.run([str(py), "-c", LOOP, str(files_txt), str(ROOT / "models" / "demo"), str(batch)],
                         capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        sys.exit(f"the Python loop failed: {out.stderr}")
    d = json.loads(out.stdout.strip().splitlines()[-1])
    return {"images": d["images"], "seconds": wall}


def skysift_import(folder: Path, work: Path, batch: int, extra: tuple[str, ...] = ()) -> dict:
    db = work / "db"
    shutil.rmtree(db, ignore_errors=True)
    t = time.perf_counter()
    out = subprocess.run([str(BIN), "import", str(db), str(folder), "--collection", "c", "--device", "cpu",
                          "--batch-size", str(batch), "--no-progress", "--json", *extra], capture_output=True,
                         text=True)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        sys.exit(f"skysift import failed: {out.stderr}")
    s = json.loads(out.stdout)
    busy = s["encoder_seconds"] / s["encoder_window_seconds"] if s.get("encoder_window_seconds") else 0.0
    return {"images": s["files"], "tiles": s["tiles_written"], "seconds": wall, "busy": busy,
            "encoder_seconds": s["encoder_seconds"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "aid-rsicd" / "images"))
    ap.add_argument("--limit", type=int, help="the first N images (sorted by path)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    folder = Path(a.images)
    files = images(folder, a.limit)
    if not files:
        sys.exit(f"no JPEG or PNG files under {folder}")
    work = Path(tempfile.mkdtemp(prefix="import-loop-", dir=ROOT / "target"))
    try:
        src = folder
        if a.limit:
            src = work / "images"
            for f in files:
                dst = src / f.relative_to(folder)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dst)  # copies: import refuses links that leave the archive
        files_txt = work / "files.txt"
        files_txt.write_text("\n".join(str(f) for f in files) + "\n")
        best: dict[str, dict] = {}
        for r in range(a.rounds):
            steps = [("python", lambda: python_loop(files_txt, a.batch)),
                     ("skysift", lambda: skysift_import(src, work, a.batch))]
            for name, step in (steps if r % 2 == 0 else steps[::-1]):
                d = step()
                d["rate"] = d["images"] / d["seconds"]
                print(f"round {r + 1} {name}: {d['images']} images in {d['seconds']:.1f} s, {d['rate']:.1f} images/s"
                      + (f", encoder busy {d['busy']:.1%}" if "busy" in d else ""), file=sys.stderr, flush=True)
                if name not in best or d["rate"] > best[name]["rate"]:
                    best[name] = d
    finally:
        shutil.rmtree(work, ignore_errors=True)
    p, s = best["python"], best["skysift"]
    print(f"\n{len(files)} images from {folder}, batch {a.batch}, best of {a.rounds} rounds ({os.cpu_count()} CPUs)\n")
    print("| | images/s | seconds | encoder busy |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| Python loop (Pillow, NumPy, onnxruntime; nothing written) | {p['rate']:.1f} | {p['seconds']:.1f} | |")
    print(f"| `skysift import` (whole process, written and indexed) | {s['rate']:.1f} | {s['seconds']:.1f} | "
          f"{s['busy']:.1%} |")
    print(f"\nskysift / Python loop: {s['rate'] / p['rate']:.2f}x")


if __name__ == "__main__":
    main()
