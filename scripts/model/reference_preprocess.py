#!/usr/bin/env python3
"""Write reference fixtures for the Rust encoder (models/demo/fixtures/), from the exact
Python preprocessing used to train and evaluate the demo model (common.preprocess):

  decode (PIL) -> RGB -> exact resize to 160x160, bilinear (PIL; antialiased when shrinking)
  -> x / 255 -> (x - mean) / std -> CHW float32

For each fixture image:
  <stem>.rgb.npy        uint8 [H, W, 3] decoded pixels (checks the decoder alone)
  <stem>.pixels.npy     float32 [3, 160, 160] model input (checks decode + resize + normalise)
and preprocess.json with shapes, per-channel sums/means, min/max, the first 8 values of each
channel row 0, and the image tower's embedding (full 512 values) of each input.

Fixture images: three samples/aid-mini JPEGs (150x150, i.e. 150 -> 160 upsampling) and one
generated non-square PNG (300x200, made here from a sample image with PIL bicubic and saved
losslessly), which exercises the antialiased downsampling path and a non-square input.

text.json: a few multilingual strings with their token ids from tokenizer.json and their
text.onnx embeddings (full 512 values), for the Rust tokenizer/text-encoder tests.

Tolerances to expect in Rust: JPEG decoders may differ by a level or two in some pixels
(IDCT / chroma upsampling), and resize kernels differ slightly at the borders. Compare the
decoded .rgb.npy separately; compare pixels by mean absolute error (< 0.02) and max error
(< 0.15, about 9 levels after normalisation), and embeddings by cosine (> 0.99). The image
tower is sensitive to pixel noise (measured on 50 validation images: +-2 levels of random
noise on every pixel -> cosine >= 0.96; bicubic instead of bilinear -> >= 0.93), so the
resize must be bilinear with the same pixel-centre convention as Pillow.

Usage: python scripts/model/reference_preprocess.py [--model-dir models/demo]
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

FIXTURE_IMAGES = ["Airport/airport_87.jpg", "Forest/forest_175.jpg", "StorageTanks/storagetanks_108.jpg"]
TEXTS = [
    ("en", "many planes are parked next to a long building in an airport ."),
    ("en", "a satellite image of a river"),
    ("de", "ein Satellitenbild von einem Flughafen"),
    ("fr", "une photo aérienne montrant une zone industrielle"),
    ("zh", "一张港口的卫星图像"),
    ("ko", "강의 항공 사진"),
    ("ru", "спутниковый снимок стадиона"),
]


def stats(x):
    return {
        "shape": list(x.shape),
        "dtype": str(x.dtype),
        "sum": float(x.astype(np.float64).sum()),
        "channel_sums": [float(c.astype(np.float64).sum()) for c in (x if x.ndim == 3 and x.shape[0] == 3 else np.moveaxis(x, -1, 0))],
        "min": float(x.min()),
        "max": float(x.max()),
    }


def main():
    ap = argparse.ArgumentParser(description="write preprocessing/encoder reference fixtures")
    ap.add_argument("--model-dir", default=os.path.join(common.REPO, "models", "demo"))
    args = ap.parse_args()
    from PIL import Image

    out_dir = os.path.join(args.model_dir, "fixtures")
    os.makedirs(out_dir, exist_ok=True)
    sample_dir = os.path.join(common.REPO, "samples", "aid-mini")
    sources = [(os.path.join(sample_dir, p), "samples/aid-mini/" + p) for p in FIXTURE_IMAGES]
    # generated non-square PNG
    gen_rel = "models/demo/fixtures/nonsquare_300x200.png"
    gen = os.path.join(out_dir, "nonsquare_300x200.png")
    with Image.open(os.path.join(sample_dir, "Bridge", sorted(
            f for f in os.listdir(os.path.join(sample_dir, "Bridge")) if f.endswith(".jpg"))[0])) as im:
        im.convert("RGB").resize((300, 200), Image.BICUBIC).save(gen, optimize=False, compress_level=9)
    sources.append((gen, gen_rel))

    image_enc = None
    try:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from evaluate import ImageEncoder, TextEncoder
        image_enc = ImageEncoder(args.model_dir)
    except Exception as e:  # noqa: BLE001
        print(f"note: no image embeddings in the fixtures ({e})")

    entries = []
    for path, rel in sources:
        stem = os.path.splitext(os.path.basename(path))[0]
        rgb = np.asarray(common.load_rgb(path), dtype=np.uint8)
        px = common.preprocess(common.load_rgb(path))
        np.save(os.path.join(out_dir, f"{stem}.rgb.npy"), rgb)
        np.save(os.path.join(out_dir, f"{stem}.pixels.npy"), px)
        e = {"source": rel, "rgb_npy": f"{stem}.rgb.npy", "pixels_npy": f"{stem}.pixels.npy",
             "rgb": stats(rgb), "pixels": stats(px),
             "pixels_first8_row0": [[float(v) for v in px[c, 0, :8]] for c in range(3)],
             "pixels_channel_means": [float(px[c].mean()) for c in range(3)]}
        if image_enc is not None:
            emb = image_enc.sess.run([image_enc.out], {image_enc.inp: px[None]})[0][0]
            e["embedding"] = [float(v) for v in emb]
        entries.append(e)
        print(f"{rel}: rgb {rgb.shape} pixels sum {e['pixels']['sum']:.4f}")

    with open(os.path.join(args.model_dir, "manifest.json"), encoding="utf-8") as f:
        man = json.load(f)
    doc = {
        "about": "Reference preprocessing of the demo image tower, from scripts/model/reference_preprocess.py. "
                 "pixels = ((resize_exact_bilinear_antialiased(decode_rgb(img), 160x160) / 255) - mean) / std, CHW.",
        "image": {k: man["image"][k] for k in ("size", "resize", "resize_to", "crop", "interpolation", "antialias",
                                                "rescale_factor", "mean", "std", "channels")},
        "decoder": "Pillow " + __import__("PIL").__version__,
        "tolerance": {"pixels_mean_abs": 0.02, "pixels_max_abs": 0.15, "embedding_cosine": 0.99,
                      "note": "the image tower is sensitive to pixel noise: +-2 levels of random noise on every "
                              "pixel gives embedding cosine >= 0.96, bicubic instead of bilinear >= 0.93; match "
                              "the bilinear resize, and compare decoders separately with the .rgb.npy files"},
        "fixtures": entries,
    }
    with open(os.path.join(out_dir, "preprocess.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")

    try:
        text_enc = TextEncoder(args.model_dir)
        embs = text_enc.encode([t for _, t in TEXTS])
        tdoc = {"about": "Token ids from tokenizer.json (with <s> ... </s>) and text.onnx embeddings.",
                "texts": [{"lang": l, "text": t, "ids": text_enc.tok.encode(t).ids,
                           "embedding": [float(v) for v in emb]} for (l, t), emb in zip(TEXTS, embs)]}
        with open(os.path.join(out_dir, "text.json"), "w", encoding="utf-8") as f:
            json.dump(tdoc, f, ensure_ascii=False, indent=1)
            f.write("\n")
    except Exception as e:  # noqa: BLE001
        print(f"note: no text fixtures ({e})")
    print(f"wrote fixtures to {out_dir}")


if __name__ == "__main__":
    main()
