#!/usr/bin/env python3
"""Evaluate the exported demo model (the ONNX files + tokenizer.json that skysift loads, not the
torch checkpoint) on the validation split (1,000 AID images, common.splits()).

Metrics:
  * text->image R@1/5/10: every caption of every validation image (5 per image, RSICD repeats
    some) is a query against all 1,000 validation images; a hit when its own image ranks in
    the top k. Also image->text R@k (an image against all 5,000 captions; a hit when any of
    its own captions ranks in the top k).
  * zero-shot class accuracy (30 classes, top-1), per language, with
      - a single prompt: the first template of models/demo/templates/<lang>.json
        ("a satellite image of {}" and its translations),
      - a prompt ensemble: every template of the language, the mean of the L2-normalised
        embeddings, renormalised (CLIP).
    The same is reported on the 300 held-out samples/aid-mini images.

Usage:
  python scripts/model/evaluate.py [--model-dir models/demo] [--out models/demo/metrics.json]
Needs numpy, pillow, onnxruntime, tokenizers (no torch).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


class TextEncoder:
    def __init__(self, model_dir, threads=1):
        import onnxruntime as ort
        from tokenizers import Tokenizer
        with open(os.path.join(model_dir, "manifest.json"), encoding="utf-8") as f:
            t = json.load(f)["text"]
        self.tok = Tokenizer.from_file(os.path.join(model_dir, t["tokenizer"]))
        self.max_tokens = t["max_tokens"]
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(os.path.join(model_dir, t["onnx"]), so, providers=["CPUExecutionProvider"])
        self.out = t["output_name"]

    def encode(self, texts, batch=256):
        enc = self.tok.encode_batch(list(texts))
        ids_all = [e.ids[:self.max_tokens] for e in enc]
        out = np.zeros((len(texts), 512), dtype=np.float32)
        order = np.argsort([len(x) for x in ids_all], kind="stable")
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            L = max(len(ids_all[i]) for i in idx)
            ids = np.zeros((len(idx), L), dtype=np.int64)
            mask = np.zeros((len(idx), L), dtype=np.int64)
            for j, i in enumerate(idx):
                ids[j, :len(ids_all[i])] = ids_all[i]
                mask[j, :len(ids_all[i])] = 1
            out[idx] = self.sess.run([self.out], {"input_ids": ids, "attention_mask": mask})[0]
        return out


class ImageEncoder:
    def __init__(self, model_dir, threads=1):
        import onnxruntime as ort
        with open(os.path.join(model_dir, "manifest.json"), encoding="utf-8") as f:
            m = json.load(f)["image"]
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(os.path.join(model_dir, m["onnx"]), so, providers=["CPUExecutionProvider"])
        self.inp, self.out, self.size = m["input_name"], m["output_name"], m["size"][0]

    def encode_paths(self, paths, batch=64):
        outs = []
        for s in range(0, len(paths), batch):
            x = np.stack([common.preprocess(common.load_rgb(p), self.size) for p in paths[s:s + batch]])
            outs.append(self.sess.run([self.out], {self.inp: x})[0])
        return np.concatenate(outs)


def load_templates(model_dir, lang):
    with open(os.path.join(model_dir, "templates", f"{lang}.json"), encoding="utf-8") as f:
        return json.load(f)


def zero_shot(text_enc, img_emb, labels, tpl, ensemble):
    templates = tpl["templates"] if ensemble else tpl["templates"][:1]
    names = [tpl["classes"][c] for c in common.CLASSES]
    e = text_enc.encode([t.format(n) for n in names for t in templates]).reshape(len(names), len(templates), -1)
    e = e / np.linalg.norm(e, axis=-1, keepdims=True)
    cls = e.mean(1)
    cls /= np.linalg.norm(cls, axis=-1, keepdims=True)
    pred = np.argmax(img_emb @ cls.T, axis=1)
    return float((pred == labels).mean())


def retrieval(img_emb, cap_emb, owner):
    sims = cap_emb @ img_emb.T                                   # [captions, images]
    own = sims[np.arange(len(owner)), owner]
    rank_t2i = (sims > own[:, None]).sum(1)
    res = {f"t2i_R@{k}": float((rank_t2i < k).mean()) for k in (1, 5, 10)}
    # image -> text: best rank of any own caption
    simsT = sims.T                                                 # [images, captions]
    order = np.argsort(-simsT, axis=1)
    hit_rank = np.array([np.where(owner[order[i]] == i)[0][0] for i in range(len(img_emb))])
    res |= {f"i2t_R@{k}": float((hit_rank < k).mean()) for k in (1, 5, 10)}
    res["t2i_mean_R"] = float(np.mean([res[f"t2i_R@{k}"] for k in (1, 5, 10)]))
    return res


def main():
    ap = argparse.ArgumentParser(description="evaluate the skysift demo model on the AID validation split")
    ap.add_argument("--model-dir", default=os.path.join(common.REPO, "models", "demo"))
    ap.add_argument("--out", default=None, help="write metrics JSON here (default: <model-dir>/metrics.json)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    t0 = time.time()
    sp = common.splits(common.load_records())
    text_enc = TextEncoder(args.model_dir, args.threads)
    img_enc = ImageEncoder(args.model_dir, args.threads)
    results = {"split": {"val_images": len(sp["val"]), "sample_images": len(sp["sample"]),
                         "train_images": len(sp["train"])}}
    for name, recs, root in (("val", sp["val"], os.path.join(common.DATA, "images")),
                             ("aid-mini", sp["sample"], os.path.join(common.DATA, "images"))):
        img = img_enc.encode_paths([os.path.join(root, r["image"]) for r in recs])
        labels = np.array([common.CLASSES.index(r["class"]) for r in recs])
        caps = [c for r in recs for c in r["captions"]]
        owner = np.array([i for i, r in enumerate(recs) for _ in r["captions"]])
        res = {"images": len(recs), "captions": len(caps)}
        res |= retrieval(img, text_enc.encode(caps), owner)
        zs = {}
        for lang in common.LANGS:
            tpl = load_templates(args.model_dir, lang)
            zs[lang] = {"single": zero_shot(text_enc, img, labels, tpl, False),
                        "ensemble": zero_shot(text_enc, img, labels, tpl, True)}
        res["zero_shot"] = zs
        res["zero_shot_mean"] = {k: float(np.mean([zs[l][k] for l in zs])) for k in ("single", "ensemble")}
        results[name] = res
    results["chance"] = {"zero_shot": 1 / 30, "t2i_R@10": 10 / len(sp["val"])}
    results["elapsed_s"] = round(time.time() - t0, 1)
    out = args.out or os.path.join(args.model_dir, "metrics.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    print(markdown(results))
    print(f"wrote {out}")


def markdown(r):
    lines = []
    for name in ("val", "aid-mini"):
        v = r[name]
        lines.append(f"**{name}** ({v['images']} images, {v['captions']} captions)\n")
        lines.append("| text->image R@1 | R@5 | R@10 | image->text R@1 | R@5 | R@10 |")
        lines.append("| --- | --- | --- | --- | --- | --- |")
        lines.append("| " + " | ".join(f"{v[k]:.3f}" for k in ("t2i_R@1", "t2i_R@5", "t2i_R@10",
                                                              "i2t_R@1", "i2t_R@5", "i2t_R@10")) + " |\n")
        lines.append("| zero-shot top-1 | " + " | ".join(v["zero_shot"]) + " | mean |")
        lines.append("| --- |" + " --- |" * (len(v["zero_shot"]) + 1))
        for k in ("single", "ensemble"):
            lines.append(f"| {k} prompt{'s' if k == 'ensemble' else ''} | "
                         + " | ".join(f"{v['zero_shot'][l][k]:.3f}" for l in v["zero_shot"])
                         + f" | {v['zero_shot_mean'][k]:.3f} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
