"""skysift on a real local Ray cluster (started here with the machine's CPUs): the distributed
import gives the records `skysift import` gives, survives a killed worker and a killed driver,
and sharded search merges like one collection."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import ray

import skysift
import skysift.ray as sray
from conftest import ROOT, unit_rows


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k.startswith("SKYSIFT_")}})
    yield
    ray.shutdown()


def records(path: Path, collection: str = "images") -> dict[int, tuple[bytes, dict]]:
    db = skysift.connect(path, read_only=True)
    col = db.collection(collection)
    out = {}
    for i in col.ids().tolist():
        fields = col.get(i)
        fields.pop("id")
        out[i] = (col.vector(i).tobytes(), fields)
    db.close()
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cli):
    """The sample archive imported by one `skysift import` process."""
    path = tmp_path_factory.mktemp("ref") / "db"
    subprocess.run([str(cli), "import", str(path), str(ROOT / "samples" / "aid-mini"), "--device", "cpu",
                    "--no-progress"], check=True, capture_output=True)
    return records(path)


def test_two_workers_give_the_records_of_skysift_import(cluster, tmp_path, reference):
    s = sray.import_archive(tmp_path / "db", ROOT / "samples" / "aid-mini", num_workers=2)
    assert s["imported"] == 300 and s["records_added"] == 300, s
    got = records(tmp_path / "db")
    assert got.keys() == reference.keys()
    for i, (vec, fields) in reference.items():
        assert got[i][0] == vec, f"record {i}: vectors differ"
        assert got[i][1] == fields, f"record {i}: {got[i][1]} != {fields}"
    assert skysift.connect(tmp_path / "db", read_only=True).verify()["ok"]
    # A rerun finds every file in and does nothing.
    again = sray.import_archive(tmp_path / "db", ROOT / "samples" / "aid-mini", num_workers=2)
    assert again["already_in"] == 300 and again["imported"] == 0
    assert not (Path(str(tmp_path / "db") + ".staging")).exists() or not any(
        Path(str(tmp_path / "db") + ".staging").iterdir())


def small_archive(tmp_path: Path, n_per_class: int = 6) -> Path:
    src = ROOT / "samples" / "aid-mini"
    dst = tmp_path / "archive"
    for cls in ("Airport", "Beach", "Forest", "Port"):
        (dst / cls).mkdir(parents=True)
        for f in sorted((src / cls).glob("*.jpg"))[:n_per_class]:
            shutil.copy(f, dst / cls / f.name)
            side = f.with_suffix(".json")
            if side.exists():
                shutil.copy(side, dst / cls / side.name)
    return dst


def test_a_worker_killed_mid_import_is_retried_without_a_second_copy(tmp_path):
    archive = small_archive(tmp_path)
    marker = tmp_path / "killed"
    code = f"""
import os, ray, skysift.ray as sray
os.environ['SKYSIFT_RAY_TEST_KILL_WORKER'] = {str(marker)!r}
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
         runtime_env={{'env_vars': {{'SKYSIFT_RAY_TEST_KILL_WORKER': {str(marker)!r}}}}})
print(sray.import_archive({str(tmp_path / 'db')!r}, {str(archive)!r}, num_workers=2, files_per_task=4))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert marker.exists(), "no worker was killed"
    db = skysift.connect(tmp_path / "db", read_only=True)
    col = db.collection("images")
    _, sources = col._c.column("source")
    assert len(sources) == 24 and len(set(sources)) == 24, "one record per file"
    assert db.verify()["ok"]


def test_a_driver_killed_before_attach_changes_nothing_and_a_rerun_completes(tmp_path):
    archive = small_archive(tmp_path, 3)
    marker = tmp_path / "driver-killed"
    db = skysift.connect(tmp_path / "db")
    db.create_collection("images")
    db.close()
    code = f"""
import os, ray, skysift.ray as sray
os.environ['SKYSIFT_RAY_TEST_KILL_DRIVER'] = {str(marker)!r}
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
sray.import_archive({str(tmp_path / 'db')!r}, {str(archive)!r}, num_workers=2)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == -9, (out.returncode, out.stderr[-3000:])
    assert marker.exists()
    db = skysift.connect(tmp_path / "db", read_only=True)
    assert db.collection("images").count() == 0, "nothing is visible before the attach"
    assert db.verify()["ok"]
    db.close()
    staged = list(Path(str(tmp_path / "db") + ".staging").glob("shard-*/DONE"))
    assert staged, "the finished shards are kept for the rerun"
    code = code.replace("os.environ['SKYSIFT_RAY_TEST_KILL_DRIVER']", "_unused")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    db = skysift.connect(tmp_path / "db", read_only=True)
    _, sources = db.collection("images")._c.column("source")
    assert len(sources) == 12 and len(set(sources)) == 12


def test_attach_refuses_a_shard_of_another_dimension_or_schema(tmp_path):
    db = skysift.connect(tmp_path / "main")
    db.create_collection("v", dim=8, schema={"cls": "keyword"})
    other = skysift.connect(tmp_path / "other")
    o = other.create_collection("v", dim=4, schema={"cls": "keyword"})
    o.add(unit_rows(5, 4))
    o.flush()
    other.close()
    with pytest.raises(skysift.Error, match="dim|dimension"):
        db.attach("v", [tmp_path / "other"])
    third = skysift.connect(tmp_path / "third")
    t = third.create_collection("v", dim=8, schema={"kind": "integer"})
    t.add(unit_rows(5, 8))
    t.flush()
    third.close()
    with pytest.raises(skysift.Error, match="schema|field"):
        db.attach("v", [tmp_path / "third"])
    assert db.collection("v").count() == 0


def test_sharded_search_merges_like_one_collection(cluster, tmp_path):
    v = unit_rows(4000, 32, seed=21)
    whole = skysift.connect(tmp_path / "whole").create_collection("v", dim=32, schema={"footprint": "geo_bbox"})
    boxes = [[float(i % 4) * 10, 0.0, float(i % 4) * 10 + 1, 1.0] for i in range(len(v))]
    whole.add(v, metadata={"footprint": boxes})
    paths = []
    for s in range(4):
        p = tmp_path / f"shard{s}"
        c = skysift.connect(p).create_collection("v", dim=32, schema={"footprint": "geo_bbox"})
        rows = np.arange(s, len(v), 4)
        c.add(np.ascontiguousarray(v[rows]), ids=rows, metadata={"footprint": [boxes[i] for i in rows]})
        c.flush()
        paths.append(p)
    sc = sray.ShardedCollection(paths, collection="v")
    assert sc.count() == 4000
    queries = unit_rows(20, 32, seed=22)
    for q in queries:
        want = whole.search(q).exact().limit(10).select().to_arrow()
        got = sc.search(q, k=10, exact=True)
        assert got.column("id").to_pylist() == want.column("id").to_pylist()
    batch = sc.search(queries, k=5, exact=True)
    assert batch.num_rows == 100
    # A box that meets only shard 2's footprints: the other shards are not asked.
    got = sc.search(queries[0], k=5, within=(19.5, 0.0, 21.5, 1.0), exact=True)
    assert sc.last_asked == 1 and set(np.array(got.column("id").to_pylist()) % 4) == {2}
