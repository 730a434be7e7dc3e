#!/usr/bin/env python3
"""Build samples/aid-mini: a small in-repo archive of real AID images with RSICD captions and
GENERATED STAC-like sidecar metadata.

  * Images: the 10 images per class (300, all 30 classes) that common.splits() reserves as
    'sample' (deterministic: sha256 order of the file names). They are held out of the image
    tower's training and of its validation metrics.
  * Layout: samples/aid-mini/<Class>/<name>.jpg (copied byte for byte) and
    samples/aid-mini/<Class>/<name>.json next to it.
  * <name>.json: a STAC 1.0 Item (GeoJSON Feature) whose id, datetime, footprint, platform,
    cloud cover and gsd are GENERATED from a seeded RNG keyed by the file name (AID has no such
    metadata). properties.class is the real AID class; properties["skysift:generated"] lists
    the generated fields.
  * captions.jsonl: the RSICD captions of the 300 images (same schema as the source data).

Usage: python scripts/model/make_sample.py [--out samples/aid-mini]   (idempotent; rewrites)
"""

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

# platform -> (earliest plausible acquisition, gsd in metres used for the footprint)
PLATFORMS = {
    "sentinel-2a": (dt.date(2015, 7, 1), 10.0),
    "sentinel-2b": (dt.date(2017, 7, 1), 10.0),
    "landsat-8": (dt.date(2015, 1, 1), 30.0),
    "worldview-3": (dt.date(2015, 1, 1), 1.24),
}
# rough land regions (lon, lat) to scatter footprints over; jittered by up to +-0.5 degrees
REGIONS = [
    (116.40, 39.90), (121.47, 31.23), (113.26, 23.13), (104.07, 30.67), (114.30, 30.59),
    (2.35, 48.86), (13.40, 52.52), (-3.70, 40.42), (12.50, 41.90), (4.90, 52.37),
    (-9.14, 38.72), (37.62, 55.75), (126.98, 37.57), (139.69, 35.69), (-74.00, 40.71),
    (-118.24, 34.05), (-46.63, -23.55), (151.21, -33.87), (31.24, 30.04), (55.27, 25.20),
]
END = dt.date(2024, 12, 31)


def rng_for(name):
    return np.random.default_rng(int.from_bytes(hashlib.sha256(("aid-mini/" + name).encode()).digest()[:8], "little"))


def stac_item(rec):
    cls = rec["class"]
    stem = os.path.splitext(os.path.basename(rec["image"]))[0]
    rng = rng_for(rec["image"])
    platform = sorted(PLATFORMS)[int(rng.integers(0, len(PLATFORMS)))]
    start, gsd = PLATFORMS[platform]
    day = start + dt.timedelta(days=int(rng.integers(0, (END - start).days + 1)))
    secs = int(rng.integers(9 * 3600, 15 * 3600))
    when = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=secs)
    lon0, lat0 = REGIONS[int(rng.integers(0, len(REGIONS)))]
    lon = lon0 + float(rng.uniform(-0.5, 0.5))
    lat = lat0 + float(rng.uniform(-0.5, 0.5))
    size_m = 150 * gsd
    dlat = size_m / 111320.0 / 2
    dlon = size_m / (111320.0 * math.cos(math.radians(lat))) / 2
    r6 = lambda v: round(v, 6)  # noqa: E731
    w, s, e, n = r6(lon - dlon), r6(lat - dlat), r6(lon + dlon), r6(lat + dlat)
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json"],
        "id": f"aid-{stem}",
        "bbox": [w, s, e, n],
        "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
        "properties": {
            "datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "platform": platform,
            "eo:cloud_cover": round(float(rng.uniform(0, 60)), 1),
            "gsd": gsd,
            "class": cls,
            "skysift:generated": ["id", "datetime", "bbox", "geometry", "platform", "eo:cloud_cover", "gsd"],
            "description": "GENERATED metadata for testing (AID has no dates, places or sensors); "
                           "only 'class' and the image are real.",
        },
        "assets": {"image": {"href": f"./{stem}.jpg", "type": "image/jpeg", "roles": ["data"]}},
        "links": [],
    }


def dump_item(item):
    """JSON with one top-level key per line (readable, and small enough for the 5 MB budget)."""
    return "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}"
                              for k, v in item.items()) + "\n}\n"


README = """# aid-mini: a small sample archive (real images, generated metadata)

300 aerial scenes, 10 from each of the 30 AID classes, laid out as an archive to import:

| path | what |
| --- | --- |
| `<Class>/<name>.jpg` | the image, 150x150 RGB JPEG, copied unchanged from AID |
| `<Class>/<name>.json` | a STAC 1.0 Item (GeoJSON Feature) sidecar for the image |
| `captions.jsonl` | one line per image: `{"image": "<Class>/<name>.jpg", "class": ..., "captions": [5 RSICD captions]}` |

**The sidecar metadata is GENERATED, not real.** AID has no acquisition dates, places or
sensors. `id`, `datetime` (2015-2024), `bbox`/`geometry` (a small box near one of 20 cities,
sized 150 px x gsd), `platform` (sentinel-2a, sentinel-2b, landsat-8, worldview-3),
`eo:cloud_cover` (0-60) and `gsd` are drawn from a seeded random generator keyed by the file
name, for testing filters; each item lists them in `properties["skysift:generated"]`. Only the
image, `properties.class` and the captions are real.

The 300 images are chosen deterministically (`scripts/model/common.py: splits`) and are held
out of the demo image tower's training and of its validation metrics. Regenerate with
`python scripts/model/make_sample.py`.

## Credits

- Images: AID, G.-S. Xia, J. Hu, F. Hu, B. Shi, X. Bai, Y. Zhong, L. Zhang, X. Lu, "AID: A
  Benchmark Data Set for Performance Evaluation of Aerial Scene Classification", IEEE
  Transactions on Geoscience and Remote Sensing 55(7), 2017. Google Earth imagery, downscaled
  from 600x600 to 150x150.
- Captions: RSICD, X. Lu, B. Wang, X. Zheng, X. Li, "Exploring Models and Data for Remote
  Sensing Image Caption Generation", IEEE Transactions on Geoscience and Remote Sensing 56(4),
  2017/2018.

Both are academic research data sets: use them for development, tests and demonstrations, and
keep this credit wherever their images are shown.
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(common.REPO, "samples", "aid-mini"))
    args = ap.parse_args()
    sample = common.splits(common.load_records())["sample"]
    if os.path.isdir(args.out):
        for c in common.CLASSES:
            shutil.rmtree(os.path.join(args.out, c), ignore_errors=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "captions.jsonl"), "w", encoding="utf-8") as cap:
        for rec in sample:
            d = os.path.join(args.out, rec["class"])
            os.makedirs(d, exist_ok=True)
            shutil.copyfile(os.path.join(common.DATA, "images", rec["image"]),
                            os.path.join(d, os.path.basename(rec["image"])))
            stem = os.path.splitext(os.path.basename(rec["image"]))[0]
            with open(os.path.join(d, stem + ".json"), "w", encoding="utf-8") as f:
                f.write(dump_item(stac_item(rec)))
            cap.write(json.dumps({"image": rec["image"], "class": rec["class"], "captions": rec["captions"]},
                                 ensure_ascii=False) + "\n")
    with open(os.path.join(args.out, "README.md"), "w", encoding="utf-8") as f:
        f.write(README)
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(args.out) for f in fs)
    print(f"wrote {len(sample)} images to {args.out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
