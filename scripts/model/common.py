"""Shared pieces of the demo-model scripts: data set access, deterministic splits, and the
image preprocessing that the exported image tower expects (mirrored by the Rust encoder).

Splits (deterministic, no RNG; depend only on file names):
  For each class, the images are ordered by sha256("skysift-split-v1/" + relative path).
  - sample : the first 10 of each class (300)  -> samples/aid-mini, never used for training
  - val    : the next n_val(class) images, n_val proportional to class size, summing to 1000
             (largest-remainder rounding)          -> all reported metrics
  - train  : the rest (7,673 images)
"""

import hashlib
import json
import os

import numpy as np

# ../shared/data/aid-rsicd beside the repository unless SKYSIFT_AID says otherwise.
DATA = os.environ.get(
    "SKYSIFT_AID", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data", "aid-rsicd"))
SPLIT_SALT = "skysift-split-v1/"
SAMPLE_PER_CLASS = 10
VAL_TOTAL = 1000

# Image preprocessing of the demo image tower (keep in sync with models/demo/manifest.json).
IMAGE_SIZE = 160                       # exact resize of the whole image to 160x160, no crop
MEAN = (0.485, 0.456, 0.406)           # RGB, applied to pixel / 255
STD = (0.229, 0.224, 0.225)

CLASSES = [
    "Airport", "BareLand", "BaseballField", "Beach", "Bridge", "Center", "Church", "Commercial",
    "DenseResidential", "Desert", "Farmland", "Forest", "Industrial", "Meadow",
    "MediumResidential", "Mountain", "Park", "Parking", "Playground", "Pond", "Port",
    "RailwayStation", "Resort", "River", "School", "SparseResidential", "Square", "Stadium",
    "StorageTanks", "Viaduct",
]
LANGS = ["en", "de", "fr", "es", "pt", "it", "nl", "zh", "ko", "ru"]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_records(data=DATA):
    """[{image, class, captions}] in file order of captions.jsonl."""
    with open(os.path.join(data, "captions.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _key(path):
    return hashlib.sha256((SPLIT_SALT + path).encode("utf-8")).hexdigest()


def splits(records):
    """{'sample': [...], 'val': [...], 'train': [...]} lists of records, deterministic."""
    by_class = {c: [] for c in CLASSES}
    for r in records:
        by_class[r["class"]].append(r)
    for c in by_class:
        by_class[c].sort(key=lambda r: _key(r["image"]))
    rest = {c: len(v) - SAMPLE_PER_CLASS for c, v in by_class.items()}
    total = sum(rest.values())
    quota = {c: VAL_TOTAL * n / total for c, n in rest.items()}
    n_val = {c: int(q) for c, q in quota.items()}
    left = VAL_TOTAL - sum(n_val.values())
    for c in sorted(quota, key=lambda c: (-(quota[c] - n_val[c]), c))[:left]:
        n_val[c] += 1
    out = {"sample": [], "val": [], "train": []}
    for c in CLASSES:
        v = by_class[c]
        out["sample"] += v[:SAMPLE_PER_CLASS]
        out["val"] += v[SAMPLE_PER_CLASS:SAMPLE_PER_CLASS + n_val[c]]
        out["train"] += v[SAMPLE_PER_CLASS + n_val[c]:]
    return out


def load_rgb(path):
    from PIL import Image
    with Image.open(path) as im:
        return im.convert("RGB")


def preprocess(im, size=IMAGE_SIZE):
    """PIL RGB image -> float32 [3, size, size]: exact bilinear resize (PIL, which antialiases
    when shrinking), pixel / 255, minus MEAN, divided by STD."""
    from PIL import Image
    if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    x = np.asarray(im, dtype=np.float32) / 255.0
    x = (x - np.asarray(MEAN, dtype=np.float32)) / np.asarray(STD, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))
