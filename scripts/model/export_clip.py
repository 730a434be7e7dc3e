#!/usr/bin/env python3
"""Export a CLIP-family model to skysift's model format: image.onnx + text.onnx +
tokenizer.json + manifest.json (+ English templates), for users who can download weights.

Two sources are supported:

  1. OpenCLIP (pip install open_clip_torch), including the remote-sensing CLIPs that are
     published as OpenCLIP checkpoints:
       RemoteCLIP (Liu et al. 2024): ViT-B-32 / ViT-L-14 / RN50, files RemoteCLIP-<arch>.pt
       GeoRSCLIP (Zhang et al., RS5M): ViT-B-32 / ViT-H-14, files RS5M_<arch>.pt
     python scripts/model/export_clip.py open_clip --arch ViT-B-32 \
         --checkpoint RemoteCLIP-ViT-B-32.pt --model-id remoteclip-vit-b-32 --out models/remoteclip-b32
     python scripts/model/export_clip.py open_clip --arch ViT-B-32 --pretrained laion2b_s34b_b79k ...
     (--pretrained takes an OpenCLIP tag, which downloads; --checkpoint a local file.)

  2. Hugging Face transformers CLIPModel from a local directory (config.json, weights,
     preprocessor_config.json, tokenizer.json), e.g. a saved openai/clip-vit-base-patch32:
     python scripts/model/export_clip.py hf --model-dir ./clip-vit-base-patch32 --out models/clip-b32

Outputs, all L2-normalised, opset 17, dynamic batch:
  image.onnx  pixel_values float32 [batch, 3, S, S] -> embedding float32 [batch, D]
  text.onnx   open_clip: input_ids int64 [batch, 77] (fixed length; the tokenizer pads with 0
              and truncates to 77 keeping the end token)  -> embedding [batch, D]
              hf:        input_ids, attention_mask int64 [batch, seq] -> embedding [batch, D]
  tokenizer.json  HF tokenizers format. For open_clip it is built from open_clip's own BPE
              vocabulary (bpe_simple_vocab_16e6.txt.gz) the way transformers' CLIPConverter does
              (NFC, whitespace collapse, lowercase, CLIP split regex, byte-level BPE with '</w>',
              <start_of_text>=49406 ... <end_of_text>=49407, padded to 77 with 0). open_clip's
              own tokenizer also runs ftfy.fix_text (mojibake repair), which is not replicated.
              For hf the model directory's tokenizer.json is used, with truncation to the
              model's max_position_embeddings.
  manifest.json  the same format as models/demo/manifest.json (resize shortest edge, centre
              crop, bicubic, the model's mean/std).

With onnxruntime installed the script checks ONNX against torch (cosine > 0.999) and the
tokenizer.json ids against the source tokenizer for a few strings. CLIP models are English
only: "languages" is ["en"] and templates/en.json is copied from models/demo.

It needs torch, onnx and either open_clip_torch or transformers (+ tokenizers); none of them
are needed by skysift itself.
"""

import argparse
import gzip
import json
import os
import shutil
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OPSET = 17
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


# --------------------------------------------------------------------------- wrappers
def _wrappers(encode_image, encode_text):
    import torch
    import torch.nn.functional as F

    class Image(torch.nn.Module):
        def __init__(self, owner):
            super().__init__()
            self.owner = owner

        def forward(self, pixel_values):
            return F.normalize(encode_image(pixel_values), dim=-1)

    class Text(torch.nn.Module):
        def __init__(self, owner):
            super().__init__()
            self.owner = owner

        def forward(self, input_ids, attention_mask=None):
            return F.normalize(encode_text(input_ids, attention_mask), dim=-1)

    return Image, Text


def _export(module, args, input_names, dynamic_axes, path):
    import torch
    module.eval()
    # nn.MultiheadAttention's inference fast path (aten::_native_multi_head_attention) has no
    # ONNX export: turn it off so the exporter sees the plain matmul/softmax graph.
    if hasattr(torch.backends, "mha"):
        torch.backends.mha.set_fastpath_enabled(False)
    with torch.no_grad():
        torch.onnx.export(module, args, path, input_names=input_names, output_names=["embedding"],
                          dynamic_axes=dynamic_axes | {"embedding": {0: "batch"}},
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
    import onnx
    onnx.checker.check_model(path)


def _check(path, feeds, ref):
    try:
        import onnxruntime as ort
    except ImportError:
        print(f"  (onnxruntime not installed: {os.path.basename(path)} not checked)")
        return
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(["embedding"], feeds)[0]
    cos = (got * ref).sum(-1) / (np.linalg.norm(got, axis=-1) * np.linalg.norm(ref, axis=-1))
    print(f"  {os.path.basename(path)}: onnx vs torch min cosine {cos.min():.6f}")
    if cos.min() < 0.999:
        sys.exit(f"{path}: ONNX output differs from torch")


# --------------------------------------------------------------------------- open_clip
def clip_bpe_tokenizer_json(bpe_path, context_length=77):
    """HF tokenizers JSON equivalent to open_clip's SimpleTokenizer (minus ftfy)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    def bytes_to_unicode():
        bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
        cs = bs[:]
        n = 0
        for b in range(2 ** 8):
            if b not in bs:
                bs.append(b)
                cs.append(2 ** 8 + n)
                n += 1
        return dict(zip(bs, [chr(c) for c in cs]))

    merges = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in merges[1:49152 - 256 - 2 + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408, len(vocab)
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(vocab)}, merges=merges,
                               continuing_subword_prefix="", end_of_word_suffix="</w>",
                               unk_token="<|endoftext|>", fuse_unk=False, dropout=None))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                           normalizers.Strip(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CLIP_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.post_processor = processors.RobertaProcessing(("<|endoftext|>", 49407), ("<|startoftext|>", 49406),
                                                      add_prefix_space=False, trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    tok.enable_truncation(max_length=context_length)
    tok.enable_padding(length=context_length, pad_id=0, pad_token="!")
    return tok


def export_open_clip(args):
    import open_clip
    import torch

    model, _, preprocess = open_clip.create_model_and_transforms(
        args.arch, pretrained=args.pretrained if not args.checkpoint else None)
    if args.checkpoint:
        sd = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
        if isinstance(sd, dict) and "state_dict" in sd:
            sd = sd["state_dict"]
        sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if missing or unexpected:
            print(f"warning: missing keys {missing[:5]}..., unexpected {unexpected[:5]}...")
    model.eval()

    # preprocessing: prefer the model's own preprocess_cfg (open_clip >= 2.23), else OpenAI's defaults
    cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    size = cfg.get("size", model.visual.image_size)
    size = size if isinstance(size, int) else size[0]
    mean = tuple(cfg.get("mean", OPENAI_MEAN))
    std = tuple(cfg.get("std", OPENAI_STD))
    interp = cfg.get("interpolation", "bicubic")
    resize_mode = cfg.get("resize_mode", "shortest")
    if resize_mode not in ("shortest", None):
        print(f"warning: resize_mode {resize_mode!r}: manifest says shortest_edge + center crop; check {preprocess}")

    ctx = getattr(model, "context_length", 77)
    tokenizer = open_clip.get_tokenizer(args.arch)
    bpe = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    if type(tokenizer).__name__ != "SimpleTokenizer" or not os.path.exists(bpe):
        sys.exit(f"{args.arch} does not use the OpenAI CLIP BPE tokenizer ({type(tokenizer).__name__}); "
                 "export its text side separately")

    Image, Text = _wrappers(lambda x: model.encode_image(x),
                            lambda ids, _mask: model.encode_text(ids))
    os.makedirs(args.out, exist_ok=True)
    x = torch.randn(2, 3, size, size)
    _export(Image(model), (x,), ["pixel_values"], {"pixel_values": {0: "batch"}},
            os.path.join(args.out, "image.onnx"))
    texts = ["a satellite image of an airport", "many buildings and green trees are around a playground ."]
    ids = tokenizer(texts)                                  # LongTensor [2, ctx]
    _export(Text(model), (ids,), ["input_ids"], {"input_ids": {0: "batch"}},
            os.path.join(args.out, "text.onnx"))

    tok = clip_bpe_tokenizer_json(bpe, ctx)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    hf_ids = np.array([e.ids for e in tok.encode_batch(texts)], dtype=np.int64)
    if not np.array_equal(hf_ids, ids.numpy()):
        sys.exit(f"tokenizer.json ids differ from open_clip's:\n{hf_ids[:, :12]}\n{ids.numpy()[:, :12]}")

    with torch.no_grad():
        _check(os.path.join(args.out, "image.onnx"), {"pixel_values": x.numpy()},
               Image(model)(x).numpy())
        _check(os.path.join(args.out, "text.onnx"), {"input_ids": ids.numpy()},
               Text(model)(ids).numpy())
        dim = int(Text(model)(ids).shape[-1])
    return {
        "embedding_dim": dim,
        "image": {"size": [size, size], "resize": "shortest_edge", "resize_to": size, "crop": "center",
                  "interpolation": interp, "mean": list(mean), "std": list(std)},
        "text": {"max_tokens": ctx, "inputs": ["input_ids"], "padding": "max_length", "pad_id": 0,
                 "lowercase": True},
        "source": f"open_clip {open_clip.__version__}: {args.arch} "
                  + (f"checkpoint {os.path.basename(args.checkpoint)}" if args.checkpoint else f"pretrained {args.pretrained}"),
    }


# --------------------------------------------------------------------------- transformers
def export_hf(args):
    import torch
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(args.model_dir).eval()
    with open(os.path.join(args.model_dir, "preprocessor_config.json"), encoding="utf-8") as f:
        pp = json.load(f)
    size = pp.get("crop_size", pp.get("size"))
    size = size.get("height", size.get("shortest_edge")) if isinstance(size, dict) else size
    short = pp.get("size", size)
    short = short.get("shortest_edge", short.get("height")) if isinstance(short, dict) else short
    interp = {2: "bilinear", 3: "bicubic"}.get(pp.get("resample", 3), "bicubic")
    mean, std = pp.get("image_mean", OPENAI_MEAN), pp.get("image_std", OPENAI_STD)

    def enc_image(x):
        out = model.vision_model(pixel_values=x)
        return model.visual_projection(out.pooler_output)

    def enc_text(ids, mask):
        out = model.text_model(input_ids=ids, attention_mask=mask)
        return model.text_projection(out.pooler_output)

    Image, Text = _wrappers(enc_image, enc_text)
    os.makedirs(args.out, exist_ok=True)
    x = torch.randn(2, 3, size, size)
    _export(Image(model), (x,), ["pixel_values"], {"pixel_values": {0: "batch"}},
            os.path.join(args.out, "image.onnx"))

    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(args.model_dir, "tokenizer.json"))
    max_len = int(model.config.text_config.max_position_embeddings)
    tok.enable_truncation(max_length=max_len)
    tok.no_padding()
    tok.save(os.path.join(args.out, "tokenizer.json"))
    texts = ["a satellite image of an airport", "many buildings and green trees are around a playground ."]
    enc = tok.encode_batch(texts)
    L = max(len(e.ids) for e in enc)
    ids = torch.zeros(len(texts), L, dtype=torch.long)
    mask = torch.zeros(len(texts), L, dtype=torch.long)
    pad = int(model.config.text_config.pad_token_id or 0)
    ids.fill_(pad)
    for i, e in enumerate(enc):
        ids[i, :len(e.ids)] = torch.tensor(e.ids)
        mask[i, :len(e.ids)] = 1
    _export(Text(model), (ids, mask), ["input_ids", "attention_mask"],
            {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}},
            os.path.join(args.out, "text.onnx"))
    with torch.no_grad():
        _check(os.path.join(args.out, "image.onnx"), {"pixel_values": x.numpy()}, Image(model)(x).numpy())
        _check(os.path.join(args.out, "text.onnx"), {"input_ids": ids.numpy(), "attention_mask": mask.numpy()},
               Text(model)(ids, mask).numpy())
    return {
        "embedding_dim": int(model.config.projection_dim),
        "image": {"size": [size, size], "resize": "shortest_edge", "resize_to": short, "crop": "center",
                  "interpolation": interp, "mean": list(mean), "std": list(std)},
        "text": {"max_tokens": max_len, "inputs": ["input_ids", "attention_mask"], "padding": "right",
                 "pad_id": pad, "lowercase": True},
        "source": f"transformers CLIPModel from {os.path.basename(os.path.abspath(args.model_dir))}",
    }


def main():
    ap = argparse.ArgumentParser(description="export a CLIP model to skysift's ONNX model format")
    sub = ap.add_subparsers(dest="kind", required=True)
    oc = sub.add_parser("open_clip", help="an OpenCLIP model or checkpoint (RemoteCLIP, GeoRSCLIP, LAION, ...)")
    oc.add_argument("--arch", required=True, help="OpenCLIP model name, e.g. ViT-B-32")
    g = oc.add_mutually_exclusive_group(required=True)
    g.add_argument("--checkpoint", help="local .pt state dict (RemoteCLIP-ViT-B-32.pt, RS5M_ViT-B-32.pt, ...)")
    g.add_argument("--pretrained", help="OpenCLIP pretrained tag (downloads)")
    hf = sub.add_parser("hf", help="a transformers CLIPModel saved in a local directory")
    hf.add_argument("--model-dir", required=True)
    for p in (oc, hf):
        p.add_argument("--out", required=True)
        p.add_argument("--model-id", required=True, help="id written to manifest.json, e.g. remoteclip-vit-b-32")
        p.add_argument("--licence", default="see the model's own licence",
                       help="licence string for manifest.json (RemoteCLIP: Apache-2.0; check yours)")
    args = ap.parse_args()

    info = export_open_clip(args) if args.kind == "open_clip" else export_hf(args)
    img = info["image"]
    manifest = {
        "format_version": 1,
        "model_id": args.model_id,
        "description": f"exported by scripts/model/export_clip.py from {info['source']}",
        "embedding_dim": info["embedding_dim"],
        "metric": "cosine",
        "normalized": True,
        "image": {"onnx": "image.onnx", "input_name": "pixel_values", "output_name": "embedding",
                  "layout": "NCHW", "dtype": "float32", "size": img["size"], "resize": img["resize"],
                  "resize_to": img["resize_to"], "crop": img["crop"], "interpolation": img["interpolation"],
                  "antialias": True, "rescale_factor": 1 / 255, "mean": [float(v) for v in img["mean"]],
                  "std": [float(v) for v in img["std"]], "channels": "RGB"},
        "text": {"onnx": "text.onnx", "tokenizer": "tokenizer.json", "input_dtype": "int64",
                 "output_name": "embedding", **info["text"]},
        "languages": ["en"],
        "default_templates": "templates/",
        "licence": args.licence,
    }
    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    os.makedirs(os.path.join(args.out, "templates"), exist_ok=True)
    shutil.copyfile(os.path.join(REPO, "models", "demo", "templates", "en.json"),
                    os.path.join(args.out, "templates", "en.json"))
    print(f"wrote {args.out}: image.onnx, text.onnx, tokenizer.json, manifest.json, templates/en.json")


if __name__ == "__main__":
    main()
