#!/usr/bin/env python3
"""Generates a small, seeded sample of clustered embeddings with metadata (standard library only).

Writes OUT/vectors.fbin, OUT/metadata.jsonl and OUT/queries.fbin. The data is synthetic and says
so in every metadata row (`"generated": true`); it stands in for real embeddings until imagery
import exists. Usage: gen_sample.py OUT [--rows N] [--dim D] [--queries Q] [--seed S]
"""
import argparse
import json
import math
import os
import random
import struct

CLASSES = ["Airport", "Beach", "Bridge", "Desert", "Farmland", "Forest", "Harbor", "Industrial",
           "Meadow", "Mountain", "Parking", "Port", "Residential", "River", "Stadium", "StorageTanks"]
SENSORS = ["S2A", "S2B", "L8", "WV3"]


def unit(v):
    n = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / n for x in v]


def write_fbin(path, rows):
    with open(path, "wb") as f:
        f.write(struct.pack("<II", len(rows), len(rows[0]) if rows else 0))
        for r in rows:
            f.write(struct.pack("<%df" % len(r), *r))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    centres = [unit([rng.gauss(0, 1) for _ in range(a.dim)]) for _ in CLASSES]
    vecs, meta = [], []
    for i in range(a.rows):
        c = rng.randrange(len(CLASSES))
        vecs.append(unit([x + rng.gauss(0, 0.35) for x in centres[c]]))
        lon, lat = rng.uniform(-10, 30), rng.uniform(35, 60)
        meta.append({
            "id": i,
            "class": CLASSES[c],
            "sensor": rng.choice(SENSORS),
            "year": rng.randrange(2015, 2025),
            "cloud_cover": round(rng.uniform(0, 60), 1),
            "acquired": "%04d-%02d-%02d" % (rng.randrange(2015, 2025), rng.randrange(1, 13), rng.randrange(1, 29)),
            "footprint": [round(lon, 4), round(lat, 4), round(lon + 0.05, 4), round(lat + 0.05, 4)],
            "source": "generated/%s/%06d.tif" % (CLASSES[c], i),
            "generated": True,
        })
    queries = []
    for q in range(a.queries):
        c = q % len(CLASSES)
        queries.append(unit([x + rng.gauss(0, 0.2) for x in centres[c]]))
    write_fbin(os.path.join(a.out, "vectors.fbin"), vecs)
    write_fbin(os.path.join(a.out, "queries.fbin"), queries)
    with open(os.path.join(a.out, "metadata.jsonl"), "w") as f:
        for m in meta:
            f.write(json.dumps(m) + "\n")
    print("wrote %d vectors (dim %d), %d queries and metadata to %s" % (a.rows, a.dim, a.queries, a.out))


if __name__ == "__main__":
    main()
