"""Imagery through the default model: import, text/image/like search equal to the CLI, labels, heat maps."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import skysift


def test_import_report_and_resume(imagery, archive):
    path, db, col, report = imagery
    assert report.clean, report.entries
    assert report["files"] == 20 and report["tiles_written"] == 20
    assert col.count() == 20
    again = col.import_archive(archive, device="cpu", progress=False)
    assert again["tiles_written"] == 0 and again["tiles_reused"] == 20
    assert col.count() == 20
    assert db.verify()["ok"]
    assert "images" in db.info()["collections"]


def test_text_search_equals_the_cli(imagery, cli):
    path, db, col, _ = imagery
    for text, where in (("a harbour with many boats", None), ("ein Wald mit vielen Bäumen", None),
                        ("an airport", "class != 'Beach'")):
        q = col.search(text).limit(5)
        if where:
            q = q.where(where)
        got = q.to_list()
        args = [str(cli), "query", str(path), text, "-k", "5", "--json", "--device", "cpu"]
        if where:
            args += ["--where", where]
        out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
        cli_rows = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        rows = cli_rows[0]["results"] if cli_rows and "results" in cli_rows[0] else cli_rows
        assert [r["id"] for r in got] == [r["id"] for r in rows], (text, out)
        assert np.allclose([r["score"] for r in got], [r["score"] for r in rows], atol=1e-4)
    assert col.search("a harbour with many boats").limit(1).to_list()[0]["source"].lower().find("port") >= 0


def test_image_and_like_queries(imagery, archive):
    path, db, col, _ = imagery
    img = sorted((archive / "Forest").glob("*.jpg"))[0]
    by_path = col.search(image=img).limit(3).to_list()
    assert "forest" in by_path[0]["source"].lower()
    by_bytes = col.search(image=img.read_bytes()).limit(3).to_list()
    assert [r["id"] for r in by_bytes] == [r["id"] for r in by_path]
    from PIL import Image

    pil = Image.open(img)
    by_pil = col.search(image=pil).limit(3).to_list()
    by_array = col.search(image=np.asarray(pil.convert("RGB"))).limit(3).to_list()
    assert [r["id"] for r in by_pil] == [r["id"] for r in by_array] == [r["id"] for r in by_path]
    like = col.search(like=by_path[0]["id"]).limit(1).to_list()
    assert like[0]["id"] == by_path[0]["id"]
    with pytest.raises(skysift.SchemaError):
        col.search(image=np.zeros((4, 4, 3), np.float32)).to_list()


def test_geopandas_thumbnails_explain_exclude(imagery):
    path, db, col, _ = imagery
    gdf = col.search("a beach").limit(4).to_geopandas()
    assert len(gdf) == 4 and str(gdf.crs) == "EPSG:4326"
    t = col.search("a beach").limit(2).with_thumbnails().to_arrow()
    assert t.column("thumbnail").to_pylist()[0][:2] in (b"\xff\xd8", b"\x89P")
    assert "segment" in col.search("a beach").explain() or "rows" in col.search("a beach").explain()
    plain = col.search("a beach").limit(5).to_list()
    steered = col.search("a beach").exclude("water", "sea").limit(5).to_list()
    assert [r["score"] for r in plain] != [r["score"] for r in steered]


def test_labels_heatmap_encoder(imagery, tmp_path):
    path, db, col, _ = imagery
    labels = col.label(["airport", "beach", "forest", "port", "farmland"], top=2)
    assert len(labels) == 20 and all(len(best) == 2 for _, best in labels)
    right = sum(lab[0][0] in col.get(i)["source"].lower() for i, lab in labels)
    assert right >= 12, labels
    col.label(["airport", "beach", "forest", "port", "farmland"], field="label")
    assert col.count("label = 'forest'") >= 2
    scene = col.get(labels[0][0])["source"]
    img = col.heatmap(scene, "trees", out=tmp_path / "h.png")
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    enc = skysift.Encoder(device="cpu")
    t = enc.encode_text(["a forest", "ein Wald"])
    assert t.shape == (2, enc.dim) and t.dtype == np.float32
    assert np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-4)
    assert float(t[0] @ t[1]) > 0.5
    assert enc.encode_images([np.zeros((32, 32, 3), np.uint8)]).shape == (1, enc.dim)
    # one intra-op thread gives the same embeddings (what a Ray actor with one CPU uses)
    one = skysift.Encoder(device="cpu", threads=1).encode_text(["a forest", "ein Wald"])
    assert np.allclose(one, t, atol=1e-5)
    with pytest.raises(ValueError):
        skysift.Encoder(device="cpu", threads=0)
    img_path = sorted((path.parent.parent).rglob("*.jpg"))
    del img_path


def test_model_mismatch_and_vectors_without_provenance(tmp_path):
    db = skysift.connect(tmp_path / "db")
    col = db.create_collection("raw", dim=512)
    v = np.random.default_rng(0).standard_normal((3, 512)).astype(np.float32)
    col.add(v)
    with pytest.raises(skysift.Error, match="unknown origin"):
        col.search("a harbour").to_list()


def test_progress_callback_and_models_search_path(tmp_path, archive):
    seen = []
    db = skysift.connect(tmp_path / "db")
    col = db.create_collection("images")
    col.import_archive(archive / "Port", device="cpu", progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1] == (4, 4)
    assert skysift.models.default_model_dir() is not None
    # Outside the repository, with the model named by SKYSIFT_MODEL_DIR, a fresh process works.
    code = ("import skysift, sys; db = skysift.connect(sys.argv[1], read_only=True); "
            "print(db.collection('images').search('a harbour').limit(1).to_list()[0]['id'])")
    import os

    env = dict(os.environ, SKYSIFT_MODEL_DIR=os.path.abspath("models/demo"))
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "db")], cwd=tmp_path, env=env,
                         check=True, capture_output=True, text=True).stdout
    assert out.strip().isdigit()
