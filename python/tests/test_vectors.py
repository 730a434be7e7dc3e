"""Collections of vectors you bring: writes, searches, filters, bad input, threads, processes, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

import skysift
from conftest import unit_rows

DIM = 16


def make(tmp_path, n=500, dim=DIM):
    db = skysift.connect(tmp_path / "db")
    col = db.create_collection("v", dim=dim, schema={"cls": "keyword", "year": "integer", "when": "timestamp",
                                                     "footprint": "geo_bbox", "cloud": "float"})
    v = unit_rows(n, dim)
    meta = pa.table({
        "cls": [f"c{i % 5}" for i in range(n)],
        "year": [2000 + i % 20 for i in range(n)],
        "when": pa.array([1_600_000_000_000_000 + i * 86_400_000_000 for i in range(n)], pa.int64()),
        "footprint": [[i % 10, 40.0, i % 10 + 0.5, 40.5] for i in range(n)],
        "cloud": [float(i % 100) for i in range(n)],
    })
    ids = col.add(v, metadata=meta)
    return db, col, v, ids


def brute(v, q, k, keep=None):
    s = v @ q
    order = [i for i in np.argsort(-s, kind="stable") if keep is None or keep[i]]
    return order[:k], s


def test_add_search_filter_and_results(tmp_path):
    db, col, v, ids = make(tmp_path)
    assert list(ids) == list(range(500))
    assert col.count() == 500 and len(col) == 500
    assert col.count("cls = 'c1'") == 100
    q = v[3] + 0.1 * v[7]
    q /= np.linalg.norm(q)
    want, s = brute(v, q, 10)
    got = col.search(q).exact().limit(10).to_list()
    assert [r["id"] for r in got] == want
    assert np.allclose([r["score"] for r in got], s[want], atol=1e-5)
    assert got[0]["cls"] == f"c{want[0] % 5}"
    assert got[0]["when"].year >= 2020
    # filters: the language, geo shapes, chained
    keep = np.array([(i % 5 == 2) and (2000 + i % 20 >= 2010) for i in range(500)])
    want, _ = brute(v, q, 5, keep)
    t = col.search(q).where("cls = 'c2'").where("year >= 2010").exact().limit(5).to_arrow()
    assert t.column("id").to_pylist() == want
    assert t.schema.field("when").type == pa.timestamp("us", tz="UTC")
    assert t.schema.field("footprint").type == pa.list_(pa.float64(), 4)
    inside = col.search(q).within((2.9, 39.0, 4.0, 41.0)).limit(500).select("footprint").to_list()
    assert inside and all(r["footprint"][0] in (3.0, 4.0) or r["footprint"][2] in (3.5,) for r in inside)
    assert {r["id"] % 10 for r in inside} <= {3, 4}
    geo = {"type": "Polygon", "coordinates": [[[2.9, 39], [4.0, 39], [4.0, 41], [2.9, 41], [2.9, 39]]]}
    assert {r["id"] for r in col.search(q).within(geo).limit(500).select().to_list()} == {r["id"] for r in inside}
    # pandas and geopandas
    df = col.search(q).limit(3).to_pandas()
    assert list(df.columns[:2]) == ["id", "score"] and len(df) == 3
    gdf = col.search(q).limit(3).to_geopandas()
    assert str(gdf.crs) == "EPSG:4326" and gdf.geometry.iloc[0].bounds[1] == 40.0
    # a batch carries query_index
    batch = col.search(v[:4]).limit(2).to_arrow()
    assert batch.column("query_index").to_pylist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert batch.column("id").to_pylist()[::2] == [0, 1, 2, 3]
    # a batch on several threads gives what one thread gives, in query order
    qs = np.ascontiguousarray(v[:37])
    one = col.search(qs).where("year >= 2005").limit(7).threads(1).to_arrow()
    three = col.search(qs).where("year >= 2005").limit(7).threads(3).to_arrow()
    assert one.equals(three) and one.column("query_index").to_pylist() == sorted(one.column("query_index").to_pylist())
    # queries searched together (blocks of 32, each scanned row read once) answer as each alone
    for i in (0, 31, 32, 36):
        alone = col.search(qs[i]).where("year >= 2005").limit(7).to_arrow()
        assert alone.column("id").to_pylist() == [r for r, qi in zip(one.column("id").to_pylist(),
                                                                      one.column("query_index").to_pylist()) if qi == i]
    with pytest.raises(ValueError):
        col.search(qs).threads(-1)
    # explain prints the plan
    plan = col.search(q).where("cls = 'c2'").explain()
    assert "segment" in plan or "rows" in plan
    # like=ID
    assert col.search(like=5).limit(1).to_list()[0]["id"] == 5


def test_metadata_forms_upsert_delete_get(tmp_path):
    import pandas as pd

    db = skysift.connect(tmp_path / "db")
    col = db.create_collection("m", dim=4, schema={"name": "keyword", "n": "integer", "ok": "bool"})
    v = unit_rows(6, 4)
    col.add(v[:2], ids=[10, 11], metadata=[{"name": "a", "n": 1}, {"name": "b", "ok": True}])
    col.add(v[2:4], ids=np.array([12, 13]), metadata=pd.DataFrame({"name": ["c", "d"], "n": [3, 4]}))
    col.add(v[4:], metadata={"name": ["e", "f"]})
    assert list(col.ids()) == [10, 11, 12, 13, 14, 15]
    assert col.get(11) == {"id": 11, "name": "b", "ok": True}
    with pytest.raises(skysift.SchemaError, match="already exists"):
        col.add(v[:1], ids=[10])
    assert col.count() == 6
    col.upsert(v[:1], ids=[10], metadata=[{"name": "z"}])
    assert col.get(10)["name"] == "z" and col.count() == 6
    assert col.delete(ids=[10, 99]) == 1
    assert col.delete(where="name = 'c'") == 1
    assert col.count() == 4
    col.compact()
    assert col.count() == 4 and col.get(12) is None


def test_bad_input_is_refused_and_changes_nothing(tmp_path):
    db, col, v, _ = make(tmp_path, n=50)
    before = col.count()
    cases = [
        (lambda: col.add(unit_rows(3, DIM + 1)), skysift.SchemaError, "dimension"),
        (lambda: col.add(np.full((2, DIM), np.nan, np.float32)), skysift.SchemaError, "NaN"),
        (lambda: col.add(unit_rows(3, DIM).astype(np.float64)), skysift.SchemaError, "float32"),
        (lambda: col.add(np.asfortranarray(unit_rows(3, DIM))), skysift.SchemaError, "contiguous"),
        (lambda: col.add(unit_rows(3, DIM), metadata=[{"nope": 1}] * 3), skysift.SchemaError, "unknown field"),
        (lambda: col.add(unit_rows(3, DIM), metadata=[{"year": "x"}] * 3), skysift.SchemaError, "integer"),
        (lambda: col.add(unit_rows(3, DIM), ids=[1, 2]), skysift.SchemaError, "ids"),
        (lambda: col.add(np.zeros((1, DIM), np.float32)), skysift.SchemaError, "zero vector"),
    ]
    for f, exc, text in cases:
        with pytest.raises(exc, match=text):
            f()
        assert col.count() == before
    q = v[0]
    with pytest.raises(ValueError, match="limit"):
        col.search(q).limit(0).to_list()
    # One query takes any limit (the exact scan serves it, issue 17); a batch is capped per query.
    assert len(col.search(q).limit(10**9).to_list()) == col.count()
    with pytest.raises(ValueError, match="limit"):
        col.search(np.stack([q, q])).limit(10**9).to_list()
    assert len(col.search(q).limit(1000).to_list()) == before
    with pytest.raises(skysift.SchemaError, match="dimension"):
        col.search(unit_rows(1, DIM + 3)[0]).to_list()
    with pytest.raises(skysift.FilterError) as e:
        col.search(q).where("clas = 'c1'").to_list()
    assert "cls" in str(e.value) and e.value.hint
    with pytest.raises(skysift.NotFoundError):
        db.collection("nope")
    db.close()
    with pytest.raises(skysift.ClosedError):
        col.count()
    with pytest.raises(skysift.ClosedError):
        db.collections()


def test_second_writer_raises_at_once(tmp_path):
    db = skysift.connect(tmp_path / "db")
    db.create_collection("c", dim=4)
    t = time.monotonic()
    with pytest.raises(skysift.LockedError):
        skysift.connect(tmp_path / "db")
    assert time.monotonic() - t < 5
    ro = skysift.connect(tmp_path / "db", read_only=True)
    assert ro.collections() == ["c"]
    db.close()
    skysift.connect(tmp_path / "db").close()


def test_threads_search_in_parallel_while_one_writes(tmp_path):
    db, col, v, _ = make(tmp_path, n=3000, dim=64)
    queries = unit_rows(200, 64, seed=3)
    expected = [col.search(q).exact().limit(5).select().to_list() for q in queries[:20]]
    errors = []

    def reader(i):
        try:
            for _ in range(5):
                for q, want in zip(queries[:20], expected):
                    got = col.search(q).exact().limit(5).select().to_list()
                    assert [r["id"] for r in got][:1] == [w["id"] for w in want][:1]
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    def writer():
        try:
            for j in range(20):
                col.add(unit_rows(10, 64, seed=100 + j) * 0.01 + 1e-3, ids=range(10_000 + 10 * j, 10_010 + 10 * j))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert col.count() == 3000 + 200

    # The GIL is released during a search: a Python thread runs at its full rate meanwhile (with
    # the GIL held it would not run at all during the call).
    big = unit_rows(256, 64, seed=9)
    ticks = 0
    stop = threading.Event()

    def spin():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    s = threading.Thread(target=spin)
    s.start()
    t0, k0 = time.perf_counter(), ticks
    time.sleep(0.2)
    rate = (ticks - k0) / (time.perf_counter() - t0)
    best = 0.0
    for _ in range(3):
        k0, t0 = ticks, time.perf_counter()
        col.search(big).exact().limit(10).select().to_arrow()
        k1, t1 = ticks, time.perf_counter()
        best = max(best, (k1 - k0) / (rate * (t1 - t0)))
    stop.set()
    s.join()
    print(f"a Python thread ran at {best:.0%} of its rate during a native search")
    assert best > 0.25, f"a Python thread ran at {best:.0%} of its rate during a native search"


def test_a_second_process_follows_the_writer(tmp_path):
    db, col, v, _ = make(tmp_path, n=100)
    code = f"""
import sys, time, skysift
db = skysift.connect({str(tmp_path / 'db')!r}, read_only=True)
col = db.collection('v')
print(col.count(), flush=True)
sys.stdin.readline()
db.refresh()
print(col.count(), flush=True)
"""
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "100"
    col.add(unit_rows(7, DIM, seed=11), ids=range(1000, 1007))
    p.stdin.write("go\n")
    p.stdin.flush()
    assert p.stdout.readline().strip() == "107"
    assert p.wait(timeout=60) == 0


def test_results_equal_the_cli(tmp_path, cli):
    db, col, v, _ = make(tmp_path, n=2000, dim=32)
    col.flush()
    queries = unit_rows(20, 32, seed=5)
    np.save(tmp_path / "q.npy", queries)
    out = tmp_path / "out.jsonl"
    db.close()
    subprocess.run([str(cli), "search", str(tmp_path / "db"), "v", "--queries", str(tmp_path / "q.npy"), "-k", "10",
                    "--output", str(out)], check=True, capture_output=True)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    col = skysift.connect(tmp_path / "db", read_only=True).collection("v")
    got = col.search(queries).limit(10).select().to_arrow()
    for line in lines:
        part = got.filter(pa.compute.equal(got.column("query_index"), line["query"]))
        assert part.column("id").to_pylist() == line["ids"]
        assert np.allclose(part.column("score").to_pylist(), line["scores"], atol=1e-6)
    # filtered, the same
    subprocess.run([str(cli), "search", str(tmp_path / "db"), "v", "--queries", str(tmp_path / "q.npy"), "-k", "5",
                    "--where", "cls = 'c3'", "--output", str(out)], check=True, capture_output=True)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    got = col.search(queries).where("cls = 'c3'").limit(5).select().to_arrow()
    for line in lines:
        part = got.filter(pa.compute.equal(got.column("query_index"), line["query"]))
        assert part.column("id").to_pylist() == line["ids"]


def test_insert_from_numpy_does_not_copy_the_array(tmp_path):
    """100k rows from one NumPy array: the insert's peak RSS growth stays under 1.5x the array."""
    code = f"""
import numpy as np, skysift
def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key + ':'): return int(line.split()[1]) * 1024
db = skysift.connect({str(tmp_path / 'db')!r})
col = db.create_collection('big', dim=256)
v = np.random.default_rng(1).standard_normal((99_999, 256), dtype=np.float32)
v /= np.linalg.norm(v, axis=1, keepdims=True)
open('/proc/self/clear_refs', 'w').write('5')  # resets the peak (VmHWM) to the current RSS
base = status('VmRSS')
col.add(v)
print(v.nbytes, base, status('VmHWM'), col.count())
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    nbytes, base, peak, count = map(int, out)
    assert count == 99_999
    growth = peak - base
    print(f"array {nbytes / 1e6:.0f} MB, peak growth during add {growth / 1e6:.0f} MB ({growth / nbytes:.2f}x)")
    assert growth < 1.5 * nbytes, f"peak RSS grew {growth / nbytes:.2f}x the array's size"
