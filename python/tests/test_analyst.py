"""Analyst search from Python (issue 17): relevance feedback, few-shot classify, every match
above a score, paging, grouping, diversity, merged tiles and change over time, each against a
known answer (brute force in NumPy or planted data), and the errors of bad input."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pyarrow as pa
import pytest

import skysift

DIM = 32
# Recall of the target cluster that feedback and the classifier reach (tests/analyst.rs).
MIN_FEEDBACK_RECALL = 0.95


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def around(r: np.random.Generator, c: np.ndarray, n: int, noise: float) -> np.ndarray:
    return unit(c + r.standard_normal((n, DIM)) * noise / np.sqrt(DIM))


@pytest.fixture
def clusters(tmp_path):
    """Cluster A (ids 0..150, the target), cluster B (150..300), 700 background rows; the query
    is the normalised sum of the two centres, equally close to both."""
    r = np.random.default_rng(17)
    ca, cb = unit(r.standard_normal(DIM)), unit(r.standard_normal(DIM))
    v = np.concatenate([around(r, ca, 150, 0.6), around(r, cb, 150, 0.6), unit(r.standard_normal((700, DIM)))])
    db = skysift.connect(tmp_path / "db")
    col = db.create_collection("c", dim=DIM, schema={"site": "keyword"})
    col.add(v, metadata={"site": [f"s{i % 10}" for i in range(len(v))]})
    yield col, v, unit(ca + cb), set(range(150))
    db.close()


def ids(rows) -> list[int]:
    return [r["id"] for r in rows]


def recall(found, target) -> float:
    return len(set(found) & target) / len(target)


def brute(v: np.ndarray, q: np.ndarray, keep=None) -> tuple[list[int], np.ndarray]:
    """Ids by score (ties by id), as the engine ranks them."""
    s = v @ q
    order = sorted(range(len(v)), key=lambda i: (-s[i], i))
    return [i for i in order if keep is None or keep[i]], s


def rocchio(q, good, bad, a=1.0, b=0.75, c=0.15):
    out = a * q + b * good.mean(axis=0) - (c * bad.mean(axis=0) if len(bad) else 0)
    return unit(out)


def test_feedback_separates_the_clusters_the_query_mixes(clusters):
    col, v, q, target = clusters
    plain = ids(col.search(q).exact().limit(150).to_list())
    assert recall(plain, target) < 0.8, "the starting query should mix the clusters"
    good = [i for i in plain if i in target][:5]
    bad = [i for i in plain if 150 <= i < 300][:5]
    moved = col.search(q).good(good).bad(bad).exact().limit(150).to_list()
    assert recall(ids(moved), target) >= MIN_FEEDBACK_RECALL
    # Known answer: the engine ranks by the Rocchio vector computed here.
    want, s = brute(v, rocchio(q, v[good], v[bad]))
    assert ids(moved) == want[:150]
    assert np.allclose([r["score"] for r in moved], s[want[:150]], atol=1e-5)
    # Weights: (1, 0, 0) is the plain query; other weights, their brute force.
    assert ids(col.search(q).good(good).bad(bad).rocchio(1, 0, 0).exact().limit(150).to_list()) == plain
    w = col.search(q).good(good).bad(bad).rocchio(0.5, 1.0, 0.5).exact().limit(20).to_list()
    assert ids(w) == brute(v, rocchio(q, v[good], v[bad], 0.5, 1.0, 0.5))[0][:20]
    # Marking a good record bad moves it (as the REPL does); ids as lists, arrays or arguments.
    qq = col.search(q).good(np.array(good[:2])).bad(*bad, good[0])
    assert qq._good == good[1:2] and qq._bad == [*bad, good[0]]
    # Without a query the start is the mean of the good records.
    only = col.search().good(good).exact().limit(150).to_list()
    start = unit(v[good].mean(axis=0))
    assert ids(only) == brute(v, rocchio(start, v[good], v[:0]))[0][:150]
    assert recall(ids(only), target) >= MIN_FEEDBACK_RECALL


def test_classify_separates_the_clusters_and_stores_scores(clusters):
    col, v, q, target = clusters
    good, bad = [0, 1, 2, 3, 4], [150, 151, 152, 153, 154]
    res = col.classify(good, bad, min_score=0.0)
    assert isinstance(res, skysift.Classified)
    assert res.scored == 1000 and res.above == 1000 and len(res) == 1000 and res.stored is None
    assert "5 good, 5 bad" in res.classifier
    rows = res.to_list()
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= p <= 1.0 for p in scores)
    assert recall(ids(rows[:150]), target) >= MIN_FEEDBACK_RECALL
    # min_score returns exactly the records at or above it; limit the best of them.
    half = col.classify(good, bad)
    assert ids(half) == [r["id"] for r in rows if r["score"] >= 0.5] and half.above == len(half)
    assert ids(col.classify(good, bad, limit=7)) == ids(half)[:7]
    # Same seed, same classifier; a filter scores only the records passing it.
    assert ids(col.classify(good, bad, min_score=0.0)) == ids(rows)
    f = col.classify(good, bad, min_score=0.0, where="site = 's3'")
    assert f.scored == 100 and set(ids(f)) == {i for i in range(1000) if i % 10 == 3}
    # The same result types as a search.
    t = res.to_arrow()
    assert t.column("id").to_pylist() == ids(rows) and t.schema.field("score").type == pa.float32()
    # field= stores every scored record's probability, which filters then use.
    stored = col.classify(good, bad, field="solar")
    assert stored.stored == 1000 and col.schema["solar"] == "float"
    assert col.count("solar >= 0.5") == stored.above
    assert all(abs(r["solar"] - r["score"]) < 1e-6 for r in stored.to_list())
    passing = set(col.ids("solar >= 0.5").tolist())
    assert len(passing & target) / len(passing) > 0.9


def test_classify_bad_input_raises(clusters):
    col, *_ = clusters
    with pytest.raises(ValueError, match="good examples"):
        col.classify([])
    with pytest.raises(ValueError, match="probability"):
        col.classify([0], min_score=1.5)
    with pytest.raises(skysift.Error, match="9999"):
        col.classify([9999])
    with pytest.raises(ValueError, match="limit"):
        col.classify([0], limit=0)
    with pytest.raises(skysift.FilterError):
        col.classify([0], where="nope >= 1")


def test_min_score_returns_exactly_the_rows_above_it(clusters):
    col, v, q, _ = clusters
    want, s = brute(v, q)
    for m in (0.5, 0.2, -0.05):
        above = [i for i in want if s[i] >= m]
        got = col.search(q).min_score(m).exact().to_list()
        assert ids(got) == above, m
        assert len(got) > 10 or m == 0.5  # more than one default page
        # Graph search (the default) reaches the same rows on this small collection.
        assert set(ids(col.search(q).min_score(m).to_list())) == set(above)
    # With a filter: the brute force over the same rows.
    keep = np.array([i % 10 == 3 for i in range(len(v))])
    got = col.search(q).where("site = 's3'").min_score(0.1).exact().to_list()
    assert ids(got) == [i for i in brute(v, q, keep)[0] if s[i] >= 0.1]
    # With limit, a page of the rows above; offset pages through them.
    above = [i for i in want if s[i] >= 0.1]
    assert ids(col.search(q).min_score(0.1).limit(5).exact().to_list()) == above[:5]
    assert ids(col.search(q).min_score(0.1).limit(5).offset(5).exact().to_list()) == above[5:10]


def test_offset_pages_join_into_the_full_ranking(clusters):
    col, v, q, _ = clusters
    full = ids(col.search(q).exact().limit(70).to_list())
    assert full == brute(v, q)[0][:70]
    pages = []
    for p in range(10):
        pages += ids(col.search(q).exact().limit(7).offset(7 * p).to_list())
    assert pages == full
    with pytest.raises(ValueError, match="offset"):
        col.search(q).offset(-1)


def test_group_by_never_returns_two_results_of_one_value(clusters):
    col, v, q, _ = clusters
    want, _ = brute(v, q)
    rows = col.search(q).group_by("site").exact().limit(5).to_list()
    scenes = [r["site"] for r in rows]
    assert len(rows) == 5 and len(set(scenes)) == 5
    # The best row of each group, groups in the order of their best row.
    best: dict[str, int] = {}
    for i in want:
        best.setdefault(f"s{i % 10}", i)
    assert ids(rows) == sorted(best.values(), key=want.index)[:5]
    two = col.search(q).group_by("site", per_group=2).exact().limit(10).to_list()
    counts = {s: [r["site"] for r in two].count(s) for s in {r["site"] for r in two}}
    assert len(counts) == 10 and set(counts.values()) == {2}
    # offset skips groups.
    assert ids(col.search(q).group_by("site").exact().limit(2).offset(3).to_list()) == ids(rows)[3:5]
    with pytest.raises(skysift.Error, match="no field"):
        col.search(q).group_by("nope").to_list()
    with pytest.raises(ValueError, match="per_group"):
        col.search(q).group_by("site", per_group=0)


def test_diverse_and_the_options_that_exclude_each_other(clusters):
    col, v, q, _ = clusters
    plain = ids(col.search(q).exact().limit(10).to_list())
    assert ids(col.search(q).diverse(1.0).exact().limit(10).to_list()) == plain
    div = col.search(q).diverse(0.3).exact().limit(10).to_list()
    assert len(div) == 10 and len(set(ids(div))) == 10 and div[0]["id"] == plain[0]
    # Less redundant: the mean similarity between the picked rows drops.
    def redundancy(rs):
        m = v[ids(rs)] @ v[ids(rs)].T
        return (m.sum() - np.trace(m)) / (len(rs) * (len(rs) - 1))
    assert redundancy(div) < redundancy(col.search(q).exact().limit(10).to_list())
    with pytest.raises(ValueError, match="lambda"):
        col.search(q).diverse(1.5)
    with pytest.raises(ValueError, match="pick one"):
        col.search(q).diverse(0.5).group_by("site").to_list()
    with pytest.raises(skysift.Error, match="footprint"):
        col.search(q).merge_tiles().to_list()
    with pytest.raises(ValueError, match="batch"):
        col.search(v[:3]).min_score(0.2).to_list()
    with pytest.raises(ValueError, match="good"):
        col.search().to_list()
    with pytest.raises(ValueError, match="Rocchio"):
        col.search(q).rocchio(1, -1, 0)
    with pytest.raises(skysift.Error, match="12345"):
        col.search(q).good(12345).to_list()


def test_merge_tiles_joins_touching_footprints_into_places(tmp_path):
    r = np.random.default_rng(5)
    c = unit(r.standard_normal(DIM))
    db = skysift.connect(tmp_path / "db")
    col = db.create_collection("t", dim=DIM, schema={"footprint": "geo_bbox"})
    # Three places of four touching tiles (a 2x2 block), one degree apart.
    boxes = []
    for p in range(3):
        for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
            x, y = p * 1.0 + dx * 0.01, dy * 0.01
            boxes.append([x, y, x + 0.01, y + 0.01])
    v = around(r, c, len(boxes), 0.3)
    col.add(v, metadata={"footprint": boxes})
    rows = col.search(c).merge_tiles().exact().limit(10).to_list()
    assert len(rows) == 3 and sum(r["tiles"] for r in rows) == 12
    for row in rows:
        members = [int(i) for i in row["tile_ids"].split(",")]
        assert len({m // 4 for m in members}) == 1 and row["id"] == members[0]
        p = members[0] // 4
        assert row["footprint"] == pytest.approx([p * 1.0, 0.0, p * 1.0 + 0.02, 0.02])
        assert 0 < row["area_km2"] < 2.2 * 2.3
    assert rows[0]["id"] == int(np.argmax(v @ c))
    t = col.search(c).merge_tiles().exact().to_arrow()
    assert t.schema.field("tiles").type == pa.int64() and t.num_rows == 3
    db.close()


@pytest.fixture
def periods(tmp_path):
    """100 places on a 0.01-degree grid, two tiles per period; six places change to "housing"."""
    r = np.random.default_rng(23)
    bare, housing = unit(r.standard_normal(DIM)), unit(r.standard_normal(DIM))
    planted = {3, 17, 42, 58, 77, 91}
    day = 86_400_000_000
    y2017 = int(dt.datetime(2017, 6, 1, tzinfo=dt.timezone.utc).timestamp()) * 1_000_000
    y2023 = int(dt.datetime(2023, 6, 1, tzinfo=dt.timezone.utc).timestamp()) * 1_000_000
    vecs, meta = [], {"footprint": [], "datetime": [], "site": []}
    for place in range(100):
        x, y = (place % 10) * 0.01 + 0.002, (place // 10) * 0.01 + 0.002
        for t, when in enumerate((y2017, y2017 + day, y2023, y2023 + day)):
            vecs.append(around(r, housing if t >= 2 and place in planted else bare, 1, 0.5)[0])
            meta["footprint"].append([x, y, x + 0.005, y + 0.005])
            meta["datetime"].append(when)
            meta["site"].append(f"place-{place}")
    db = skysift.connect(tmp_path / "db")
    col = db.create_collection("s", dim=DIM, schema={"footprint": "geo_bbox", "datetime": "timestamp",
                                                     "site": "keyword"})
    col.add(np.array(vecs, dtype=np.float32), metadata=pa.table({
        "footprint": meta["footprint"], "datetime": pa.array(meta["datetime"], pa.int64()), "site": meta["site"]}))
    yield col, housing, planted
    db.close()


def test_change_ranks_the_planted_places_first(periods):
    col, housing, planted = periods
    for place in ("grid", "site"):
        ch = col.change(housing, "2018-01-01", dt.date(2022, 1, 1), place=place)
        assert isinstance(ch, skysift.Changes) and len(ch) == 100 and ch.places_in_both == 100
        rows = ch.to_list()
        assert {r["after_id"] // 4 for r in rows[:6]} == planted, place
        assert [r["rank"] for r in rows] == list(range(1, 101))
        assert all(a["delta"] >= b["delta"] for a, b in zip(rows, rows[1:]))
        assert all(r["rows_before"] == 2 and r["rows_after"] == 2 for r in rows)
        assert all(abs(r["delta"] - (r["score_after"] - r["score_before"])) < 1e-6 for r in rows)
        # Ranked by loss, the planted places come last.
        loss = col.change(housing, "2018-01-01", "2022-01-01", place=place, loss=True).to_list()
        assert {r["after_id"] // 4 for r in loss[-6:]} == planted
        gj = col.change(housing, "2018-01-01", "2022-01-01", place=place, limit=6).to_geojson()
        assert gj["type"] == "FeatureCollection" and len(gj["features"]) == 6
        assert gj["features"][0]["geometry"]["type"] == "Polygon"
    # The grid cell of a place holds its tiles; the table has one row per place.
    top = col.change(housing, "2018-01-01", "2022-01-01", limit=6)
    assert len(top) == 6 and top.places_in_both == 100
    b = top[0]["bbox"]
    p = top[0]["after_id"] // 4
    assert b == pytest.approx([(p % 10) * 0.01, (p // 10) * 0.01, (p % 10) * 0.01 + 0.01, (p // 10) * 0.01 + 0.01])
    t = top.to_arrow()
    assert t.num_rows == 6 and t.schema.field("bbox").type == pa.list_(pa.float64(), 4)
    # A filter applies first: with only the first 50 places, three planted ones remain.
    f = col.change(housing, dt.datetime(2018, 1, 1), "2022-01-01", place="site",
                   where="intersects(footprint, bbox(0, 0, 0.1, 0.049))")
    assert len(f) == 50 and {r["after_id"] // 4 for r in f.to_list()[:3]} == {3, 17, 42}


def test_change_bad_input_raises(periods):
    col, housing, _ = periods
    with pytest.raises(skysift.Error, match="earlier"):
        col.change(housing, "2022-01-01", "2018-01-01")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        col.change(housing, "last year", "2022-01-01")
    with pytest.raises(ValueError, match="date"):
        col.change(housing, 2018, "2022-01-01")
    with pytest.raises(skysift.Error, match="no field"):
        col.change(housing, "2018-01-01", "2022-01-01", place="nope")
    with pytest.raises(skysift.Error, match="footprint"):
        col.change(housing, "2018-01-01", "2022-01-01", footprint_field="site")
    with pytest.raises(skysift.Error, match="cell"):
        col.change(housing, "2018-01-01", "2022-01-01", cell=0)


def test_text_queries_through_the_model(imagery):
    """The text paths: feedback on a text query, a classifier with a text prior, change of a text."""
    _, _, col, _ = imagery
    ports = col.ids("class = 'Port'").tolist()
    others = col.ids("class = 'Forest'").tolist()
    plain = col.search("a harbour with ships").limit(5).to_list()
    moved = col.search("a harbour with ships").good(ports[:2]).bad(others[:2]).limit(5).to_list()
    assert len(plain) == len(moved) == 5
    want = col.search(rocchio(col._c.encode_text("a harbour with ships", None, [], "ensemble", None, "auto"),
                              np.stack([col.vector(i) for i in ports[:2]]),
                              np.stack([col.vector(i) for i in others[:2]]))).exact().limit(5).to_list()
    assert ids(col.search("a harbour with ships").good(ports[:2]).bad(others[:2]).exact().limit(5).to_list()) \
        == ids(want)
    res = col.classify(ports[:2], others[:2], text="a harbour with ships", min_score=0.0, negatives=4)
    assert "prior: the text" in res.classifier and res.scored == col.count()
    assert {r["id"] for r in res.to_list()[:2]} <= set(ports)
    # change of a text is the change of its query vector (the same prompt ensemble).
    _, when = col._c.column("datetime", None)
    when = sorted(w for w in when if w is not None)
    assert when, "the archive's sidecars give the records a datetime"
    mid = when[len(when) // 2]
    split = (dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=mid)).isoformat()
    q = col._c.encode_text("a harbour with ships", None, [], "ensemble", None, "auto")
    by_text = col.change("a harbour with ships", split, split, place="class").to_list()
    by_vector = col.change(q, split, split, place="class").to_list()
    assert by_text and [r["place"] for r in by_text] == [r["place"] for r in by_vector]
    assert np.allclose([r["delta"] for r in by_text], [r["delta"] for r in by_vector], atol=1e-5)


def test_explain_refuses_feedback_it_would_not_show(clusters):
    col, v, q, _ = clusters
    assert col.search(q).min_score(0.2).explain().splitlines()[0] == col.search(q).explain().splitlines()[0]
    with pytest.raises(ValueError, match="explain"):
        col.search(q).good(1).explain()
    with pytest.raises(ValueError, match="explain"):
        col.search().good(1).explain()


def test_stream_yields_every_match_above_the_score_in_bounded_chunks(clusters):
    col, v, q, _ = clusters
    want, s = brute(v, q)
    above = {i for i in want if s[i] >= 0.05}
    assert len(above) > 100
    chunks = list(col.search(q).min_score(0.05).select("site").stream(batch=64))
    assert chunks and all(t.num_rows <= 64 for t in chunks)
    got = [row for t in chunks for row in t.to_pylist()]
    assert {r["id"] for r in got} == above and len(got) == len(above), "each match once"
    for r in got:
        assert r["score"] == pytest.approx(float(s[r["id"]]), abs=1e-4)
        assert r["site"] == f"s{r['id'] % 10}"
    # The filter applies; stopping early stops the scan (the generator closes the stream).
    keep = {i for i in above if i % 10 == 3}
    rows = [r for t in col.search(q).where("site = 's3'").min_score(0.05).stream(batch=16) for r in t.to_pylist()]
    assert {r["id"] for r in rows} == keep
    first = next(iter(col.search(q).min_score(0.05).stream(batch=8)))
    assert first.num_rows == 8
    with pytest.raises(ValueError, match="min_score"):
        next(col.search(q).stream())
    with pytest.raises(ValueError, match="limit"):
        next(col.search(q).min_score(0.1).limit(5).stream())
    with pytest.raises(ValueError, match="batch"):
        next(col.search(q).min_score(0.1).stream(batch=0))


def test_galleries_of_searches_and_classifiers(clusters, tmp_path):
    col, v, q, target = clusters
    page = col.search(q).limit(7).exact().gallery(tmp_path / "g", title="seven <best>")
    html = open(page, encoding="utf-8").read()
    assert html.count('class="card"') == 7 and "seven &lt;best&gt;" in html
    want = ids(col.search(q).limit(7).exact().to_list())
    assert [int(x) for x in re.findall(r"<dt>id</dt><dd>(\d+)</dd>", html)] == want, "ranked as searched"
    c = col.classify(sorted(target)[:5], [900, 901, 902, 903, 904], min_score=0.5, limit=20)
    html = open(c.gallery(tmp_path / "g"), encoding="utf-8").read()
    assert html.count('class="card"') == len(c) > 0 and "classifier" in html


def test_gallery_of_a_change_shows_the_after_records(periods, tmp_path):
    col, housing, _ = periods
    ch = col.change(housing, before="2018-01-01", after="2022-01-01", limit=3)
    html = open(ch.gallery(tmp_path / "g"), encoding="utf-8").read()
    assert html.count('class="card"') == len(ch.to_list()) == 3
    shown = [int(x) for x in re.findall(r"<dt>id</dt><dd>(\d+)</dd>", html)]
    assert shown == [r["after_id"] for r in ch.to_list()]


def test_a_vector_prior_for_the_classifier(clusters):
    col, v, q, target = clusters
    good, bad = sorted(target)[:5], [900, 901, 902, 903, 904]
    c = col.classify(good, bad, text=v[:150].mean(axis=0), min_score=0.5)
    assert "a vector" in c.classifier, c.classifier
    assert recall(ids(c.to_list()), target) >= 0.95
    with pytest.raises(skysift.SchemaError, match="dimension"):
        col.classify(good, bad, text=np.ones(DIM + 1, dtype=np.float32))
    with pytest.raises(skysift.SchemaError, match="zeros"):
        col.classify(good, bad, text=np.zeros(DIM, dtype=np.float32))


def test_pages_by_cursor_join_into_the_full_ranking(clusters):
    col, v, q, _ = clusters
    full = ids(col.search(q).exact().limit(70).to_list())
    pages = list(col.search(q).exact().limit(7).pages())
    assert all(p.num_rows == 7 for p in pages[:-1])
    joined = [i for p in pages for i in p.column("id").to_pylist()]
    assert joined[:70] == full and len(joined) == len(set(joined)) == len(v), "every record once, ranked"
    # A cursor from a page's metadata resumes after it.
    token = pages[0].schema.metadata[b"next_cursor"].decode()
    assert ids(col.search(q).exact().limit(7).after(token).to_list()) == full[7:14]
    # Every match above a score, page by page.
    above = [i for i in brute(v, q)[0] if brute(v, q)[1][i] >= 0.1]
    got = [i for p in col.search(q).exact().min_score(0.1).limit(5).pages() for i in p.column("id").to_pylist()]
    assert got == above
    with pytest.raises(skysift.Error, match="cursor"):
        col.search(q).limit(7).after("c1.nonsense").to_list()
    with pytest.raises(ValueError, match="next_cursor"):
        col.search(q).after("")


def test_a_huge_limit_on_one_query_is_served_by_a_scan(clusters):
    col, v, q, _ = clusters
    got = ids(col.search(q).limit(10**12).to_list())
    assert got == brute(v, q)[0], "every record, ranked, from the exact scan"
    with pytest.raises(ValueError, match="batch"):
        col.search(np.stack([q, q])).limit(10**7).to_list()
