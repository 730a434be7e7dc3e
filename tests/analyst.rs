//! Analyst search (issue 17), with known answers on seeded synthetic collections (no model, no
//! ../shared): relevance feedback and the classifier separate two clusters that the starting
//! query mixes; `min_score` equals brute force (exact) and reaches the documented recall
//! (graph); paging, streaming, grouping by scene, merged tiles and change over time.

use std::collections::{BTreeMap, BTreeSet};

use skysift::analyst::{
    AboveStrategy, ChangeOptions, Classifier, Cursor, PlaceKey, Refine, TrainOptions, above, change, stream_above,
};
use skysift::schema::{FieldType, Metric, Value};
use skysift::session::{QueryInput, Session};
use skysift::{CollectionSpec, Db, IndexParams, NewRecord, SearchScratch};

use crate::common::{Rng, unit};

/// Recall of the target cluster required from 5 good and 5 bad examples.
const MIN_FEEDBACK_RECALL: f64 = 0.95;
/// Recall of `min_score` on a graph-indexed collection against brute force (documented in
/// src/analyst/above.rs).
const MIN_ABOVE_RECALL: f64 = 0.95;

const DIM: usize = 32;

fn around(r: &mut Rng, c: &[f32], noise: f32) -> Vec<f32> {
    unit(c.iter().zip(r.gauss_vec(DIM, noise / (DIM as f32).sqrt())).map(|(a, b)| a + b).collect())
}

/// The engine's own inner product, so that brute force and the engine agree to the last bit.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    skysift::index::exact::dot(a, b)
}

/// Two clusters of 150 (A: ids 0..150, the target; B: 150..300) and 700 background rows;
/// the starting query is the normalised sum of the two centres, equally close to both.
fn clusters(dir: &std::path::Path) -> (Db, Vec<f32>, BTreeSet<u64>) {
    let mut r = Rng(0x5EED_0017);
    let (ca, cb) = (unit(r.gauss_vec(DIM, 1.0)), unit(r.gauss_vec(DIM, 1.0)));
    let db = Db::open(dir).unwrap();
    db.create_collection("c", CollectionSpec::new(DIM as u32, Metric::Cosine)).unwrap();
    let mut tx = db.begin_write("c").unwrap();
    for i in 0..1000u64 {
        let v = match i {
            0..150 => around(&mut r, &ca, 0.6),
            150..300 => around(&mut r, &cb, 0.6),
            _ => unit(r.gauss_vec(DIM, 1.0)),
        };
        tx.insert(NewRecord::new(i, v)).unwrap();
    }
    tx.commit().unwrap();
    let q = unit(ca.iter().zip(&cb).map(|(a, b)| a + b).collect());
    (db, q, (0..150).collect())
}

fn recall(found: &[u64], target: &BTreeSet<u64>) -> f64 {
    found.iter().filter(|id| target.contains(id)).count() as f64 / target.len() as f64
}

#[test]
fn feedback_and_classifier_separate_clusters_the_query_mixes() {
    let dir = tempfile::tempdir().unwrap();
    let (db, q, target) = clusters(dir.path());
    let mut s = Session::open(db, Some("c"), None).unwrap();
    s.k = target.len();
    let plain: Vec<u64> = s.ask(&QueryInput::Vector(q.clone())).unwrap().rows.iter().map(|r| r.id).collect();
    let base = recall(&plain, &target);
    assert!(base < 0.8, "the starting query should mix the clusters, recall {base}");
    // What a person would mark: the first 5 hits of each cluster in the starting ranking.
    let good: Vec<u64> = plain.iter().copied().filter(|id| target.contains(id)).take(5).collect();
    let bad: Vec<u64> = plain.iter().copied().filter(|id| (150..300).contains(id)).take(5).collect();
    assert_eq!((good.len(), bad.len()), (5, 5));
    s.feedback.mark_good(&good);
    s.feedback.mark_bad(&bad);
    let moved: Vec<u64> = s.ask(&QueryInput::Vector(q.clone())).unwrap().rows.iter().map(|r| r.id).collect();
    let fb = recall(&moved, &target);
    assert!(fb >= MIN_FEEDBACK_RECALL, "Rocchio recall {fb} (start {base})");
    // Switched off, the query runs as typed again.
    s.feedback.off = true;
    let again: Vec<u64> = s.ask(&QueryInput::Vector(q)).unwrap().rows.iter().map(|r| r.id).collect();
    assert_eq!(again, plain);

    let c = s.train_classifier(None, &TrainOptions::default()).unwrap().clone();
    assert_eq!(c.good, good);
    // 55 examples (5 good, 5 bad, 45 random negatives drawn near the query): a few random
    // negatives fall inside the good cluster, so training accuracy is high but not perfect.
    assert!(c.train_accuracy > 0.85, "{}", c.describe());
    // Streamed scores of every record: the best 150 by probability.
    let col = s.snapshot().unwrap();
    let mut all = Vec::new();
    let scored = c
        .score_rows(&col, None, 0.0, &mut |id, p, _| {
            all.push((p, id));
            Ok(())
        })
        .unwrap();
    assert_eq!(scored.scored, 1000);
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let top: Vec<u64> = all.iter().take(target.len()).map(|(_, id)| *id).collect();
    let cr = recall(&top, &target);
    assert!(cr >= MIN_FEEDBACK_RECALL, "classifier recall {cr}");
    // The session's classifier ranking (a vector search with its direction) agrees with the scan.
    let ans = s.ask_classifier(None).unwrap();
    let ranked: Vec<u64> = ans.rows.iter().map(|r| r.id).collect();
    assert_eq!(ranked, top);
    for (r, (p, _)) in ans.rows.iter().zip(&all) {
        assert!((r.score - p).abs() < 1e-4, "{} vs {p}", r.score);
    }
    // Same seed, same snapshot: same classifier.
    let again = Classifier::train(&col, &good, &bad, None, &TrainOptions::default()).unwrap();
    assert_eq!(again, c);
    assert!(Classifier::train(&col, &[], &bad, None, &TrainOptions::default()).is_err());
    assert!(Classifier::train(&col, &[9_999], &bad, None, &TrainOptions::default()).is_err());
}

fn brute(rows: &[(u64, Vec<f32>)], q: &[f32], min: f32, keep: impl Fn(u64) -> bool) -> Vec<u64> {
    let mut v: Vec<(f32, u64)> =
        rows.iter().filter(|(id, _)| keep(*id)).map(|(id, x)| (dot(x, q), *id)).filter(|(s, _)| *s >= min).collect();
    v.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    v.into_iter().map(|(_, id)| id).collect()
}

/// `n` clustered rows with a `year` field; flushed into one segment (indexed when `n` reaches
/// `min_rows`) plus 100 rows left in memory.
fn collection(dir: &std::path::Path, n: u64, min_rows: usize) -> (Db, Vec<(u64, Vec<f32>)>, Vec<Vec<f32>>) {
    let mut r = Rng(0xABCD_0017);
    let centres: Vec<Vec<f32>> = (0..20).map(|_| unit(r.gauss_vec(DIM, 1.0))).collect();
    let db = Db::builder(dir).flush_rows(usize::MAX).open().unwrap();
    let p = IndexParams { min_rows, ..IndexParams::default() };
    db.create_collection(
        "c",
        CollectionSpec::new(DIM as u32, Metric::InnerProduct).index(p).field("year", FieldType::Integer),
    )
    .unwrap();
    let mut rows = Vec::new();
    let write = |from: u64, to: u64, rows: &mut Vec<(u64, Vec<f32>)>, r: &mut Rng| {
        let mut tx = db.begin_write("c").unwrap();
        for i in from..to {
            let c = &centres[(r.uniform() * centres.len() as f64) as usize];
            let v = around(r, c, 0.8);
            tx.insert(NewRecord::new(i, v.clone()).with("year", Value::Integer(2000 + (i % 10) as i64))).unwrap();
            rows.push((i, v));
        }
        tx.commit().unwrap();
    };
    write(0, n, &mut rows, &mut r);
    db.flush("c").unwrap();
    write(n, n + 100, &mut rows, &mut r);
    let queries = (0..10).map(|i| around(&mut r, &centres[i], 0.5)).collect();
    (db, rows, queries)
}

#[test]
fn min_score_equals_brute_force_over_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (db, rows, queries) = collection(dir.path(), 900, 100_000);
    let col = db.snapshot().collection("c").unwrap();
    let filter = col.prepare_filter("year >= 2005").unwrap();
    let mut scratch = SearchScratch::default();
    for (qi, q) in queries.iter().enumerate() {
        let min = 0.55 + 0.02 * qi as f32;
        let a = above(&col, q, None, min, None, false, &mut scratch).unwrap();
        assert_eq!(a.strategy, AboveStrategy::Exact, "no graph: exact");
        let got: Vec<u64> = a.hits.iter().map(|h| h.id).collect();
        assert_eq!(got, brute(&rows, q, min, |_| true), "query {qi}");
        let f = above(&col, q, Some(&filter), min, None, false, &mut scratch).unwrap();
        let got: Vec<u64> = f.hits.iter().map(|h| h.id).collect();
        assert_eq!(got, brute(&rows, q, min, |id| id % 10 >= 5), "query {qi} filtered");
        // Streamed: the same set, in storage order.
        let mut streamed = BTreeSet::new();
        let (visited, emitted) = stream_above(&col, q, Some(&filter), Some(min), &mut |id, s, _| {
            assert!(s >= min);
            streamed.insert(id);
            Ok(())
        })
        .unwrap();
        assert_eq!(visited, filter.count());
        assert_eq!(emitted as usize, streamed.len());
        assert_eq!(streamed, got.iter().copied().collect::<BTreeSet<u64>>());
    }
}

#[test]
fn min_score_on_a_graph_reaches_the_documented_recall_and_exact_equals_brute_force() {
    let dir = tempfile::tempdir().unwrap();
    let (db, rows, queries) = collection(dir.path(), 4000, 500);
    let col = db.snapshot().collection("c").unwrap();
    assert!(col.index_state().iter().any(|s| s.graph_levels.is_some()));
    let mut scratch = SearchScratch::default();
    let (mut found, mut total) = (0usize, 0usize);
    for q in &queries {
        let min = 0.6;
        let truth = brute(&rows, q, min, |_| true);
        let a = above(&col, q, None, min, None, false, &mut scratch).unwrap();
        assert!(a.hits.iter().all(|h| h.score >= min));
        let ids: BTreeSet<u64> = a.hits.iter().map(|h| h.id).collect();
        assert_eq!(ids.len(), a.hits.len(), "unique ids");
        found += truth.iter().filter(|id| ids.contains(id)).count();
        total += truth.len();
        let e = above(&col, q, None, min, None, true, &mut scratch).unwrap();
        assert_eq!(e.hits.iter().map(|h| h.id).collect::<Vec<_>>(), truth);
    }
    let recall = found as f64 / total as f64;
    assert!(total > 500, "the threshold should pass many rows, {total}");
    assert!(recall >= MIN_ABOVE_RECALL, "min-score recall {recall}");
}

#[test]
fn pages_by_offset_and_cursor_join_into_the_full_ranking_and_huge_k_scans() {
    let dir = tempfile::tempdir().unwrap();
    let (db, rows, queries) = collection(dir.path(), 900, 100_000);
    let mut s = Session::open(db, Some("c"), None).unwrap();
    let q = &queries[0];
    let truth = brute(&rows, q, f32::NEG_INFINITY, |_| true);
    // A k above the row count is served (exactly), not refused.
    s.k = 1_000_000;
    let all: Vec<u64> = s.ask(&QueryInput::Vector(q.clone())).unwrap().rows.iter().map(|r| r.id).collect();
    assert_eq!(all, truth);
    s.k = 37;
    let mut by_offset = Vec::new();
    let mut by_cursor = Vec::new();
    let mut cursor: Option<Cursor> = None;
    for page in 0..5 {
        s.refine = Refine { offset: page * 37, ..Refine::default() };
        let a = s.ask(&QueryInput::Vector(q.clone())).unwrap();
        assert_eq!(a.rows.first().map(|r| r.rank), Some(page * 37 + 1));
        by_offset.extend(a.rows.iter().map(|r| r.id));
        s.refine = Refine { cursor, ..Refine::default() };
        let b = s.ask(&QueryInput::Vector(q.clone())).unwrap();
        by_cursor.extend(b.rows.iter().map(|r| r.id));
        let token = Cursor::after(cursor.map_or(0, |c| c.offset), b.rows.len(), b.rows.last().map(|r| (r.id, r.score)))
            .unwrap()
            .token();
        cursor = Some(Cursor::parse(&token).unwrap());
    }
    assert_eq!(by_offset, truth[..185]);
    assert_eq!(by_cursor, truth[..185]);
    // Every match above a score, in pages.
    s.refine = Refine { min_score: Some(0.5), all: true, ..Refine::default() };
    let above: Vec<u64> = s.ask(&QueryInput::Vector(q.clone())).unwrap().rows.iter().map(|r| r.id).collect();
    assert_eq!(above, brute(&rows, q, 0.5, |_| true));
}

/// 60 scenes of 9 tiles (3 x 3, footprints touching inside a scene, scenes far apart).
fn scenes(dir: &std::path::Path) -> (Db, Vec<f32>, BTreeMap<u64, (String, Vec<f32>)>) {
    let mut r = Rng(0x5CE7_0017);
    let db = Db::open(dir).unwrap();
    db.create_collection("t", CollectionSpec::new(DIM as u32, Metric::Cosine).field("footprint", FieldType::GeoBbox))
        .unwrap();
    let q = unit(r.gauss_vec(DIM, 1.0));
    let mut tiles = BTreeMap::new();
    let mut tx = db.begin_write("t").unwrap();
    for scene in 0..60u64 {
        let centre = around(&mut r, &q, 3.0);
        for t in 0..9u64 {
            let id = scene * 9 + t;
            let v = around(&mut r, &centre, 0.7);
            let (x, y) = (-170.0 + scene as f64 * 5.0 + (t % 3) as f64 * 0.01, (t / 3) as f64 * 0.01);
            tx.insert(
                NewRecord::new(id, v.clone())
                    .with("scene", Value::Keyword(format!("scene-{scene}")))
                    .with("footprint", Value::GeoBbox([x, y, x + 0.01, y + 0.01])),
            )
            .unwrap();
            tiles.insert(id, (format!("scene-{scene}"), v));
        }
    }
    tx.commit().unwrap();
    (db, q, tiles)
}

#[test]
fn group_by_scene_never_returns_two_tiles_of_one_scene() {
    let dir = tempfile::tempdir().unwrap();
    let (db, q, tiles) = scenes(dir.path());
    let mut s = Session::open(db, Some("t"), None).unwrap();
    // The truth, from the stored (normalised) vectors and the normalised query: scenes ranked by
    // their best tile.
    let col = s.snapshot().unwrap();
    let q = col.prepare_query(&q).unwrap();
    let mut best: BTreeMap<&str, (f32, u64)> = BTreeMap::new();
    for (id, (scene, _)) in &tiles {
        let sc = dot(&col.get(*id).unwrap().unwrap().vector, &q);
        let e = best.entry(scene.as_str()).or_insert((sc, *id));
        if sc > e.0 {
            *e = (sc, *id);
        }
    }
    let mut ranked: Vec<(f32, u64)> = best.values().copied().collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    for k in [1, 7, 25, 60, 100] {
        s.k = k;
        s.refine = Refine { group_by: Some("scene".into()), per_group: 1, ..Refine::default() };
        let a = s.ask(&QueryInput::Vector(q.clone())).unwrap();
        let seen: BTreeSet<String> = a.rows.iter().map(|r| tiles[&r.id].0.clone()).collect();
        assert_eq!(seen.len(), a.rows.len(), "two tiles of one scene at k {k}");
        assert_eq!(a.rows.len(), k.min(60));
        let want: Vec<u64> = ranked.iter().take(k).map(|(_, id)| *id).collect();
        assert_eq!(a.rows.iter().map(|r| r.id).collect::<Vec<_>>(), want, "best tile per scene, k {k}");
    }
    s.k = 10;
    s.refine = Refine { group_by: Some("scene".into()), per_group: 3, ..Refine::default() };
    let a = s.ask(&QueryInput::Vector(q.clone())).unwrap();
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for r in &a.rows {
        *per.entry(tiles[&r.id].0.clone()).or_default() += 1;
    }
    assert_eq!(per.len(), 10);
    assert!(per.values().all(|n| *n == 3), "{per:?}");
    // Merged tiles: the top hits of a scene touch, so each place is one scene, its area the union.
    s.refine = Refine { merge_tiles: true, ..Refine::default() };
    s.k = 5;
    let a = s.ask(&QueryInput::Vector(q.clone())).unwrap();
    assert_eq!(a.rows.len(), 5);
    for r in &a.rows {
        let field = |n: &str| r.fields.iter().find(|(f, _)| f == n).map(|(_, v)| v.clone());
        let Some(Value::Text(ids)) = field("tile_ids") else { panic!("tile_ids") };
        let scenes: BTreeSet<String> = ids.split(',').map(|i| tiles[&i.parse::<u64>().unwrap()].0.clone()).collect();
        assert_eq!(scenes.len(), 1, "a place spans one scene: {ids}");
        let Some(Value::Float(area)) = field("area_km2") else { panic!("area") };
        let Some(Value::Integer(n)) = field("tiles") else { panic!("tiles") };
        // Each tile is 0.01 x 0.01 degrees at the equator: about 1.2364 km2; tiles do not overlap.
        assert!((area - 1.2364 * n as f64).abs() < 0.01 * n as f64, "{area} for {n} tiles");
    }
    // MMR with lambda 1 is the plain ranking.
    s.refine = Refine { diverse: Some(1.0), ..Refine::default() };
    let d: Vec<u64> = s.ask(&QueryInput::Vector(q.clone())).unwrap().rows.iter().map(|r| r.id).collect();
    s.refine = Refine::default();
    let p: Vec<u64> = s.ask(&QueryInput::Vector(q.clone())).unwrap().rows.iter().map(|r| r.id).collect();
    assert_eq!(d, p);
}

#[test]
fn change_ranks_the_planted_changes_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Rng(0xC4A6_0017);
    let (bare, housing) = (unit(r.gauss_vec(DIM, 1.0)), unit(r.gauss_vec(DIM, 1.0)));
    let db = Db::open(dir.path()).unwrap();
    db.create_collection(
        "s",
        CollectionSpec::new(DIM as u32, Metric::Cosine)
            .field("footprint", FieldType::GeoBbox)
            .field("datetime", FieldType::Timestamp),
    )
    .unwrap();
    let planted: BTreeSet<u64> = [3, 17, 42, 58, 77, 91].into_iter().collect();
    let day = 86_400_000_000i64;
    let y2017 = skysift::time::parse_timestamp("2017-06-01").unwrap();
    let y2023 = skysift::time::parse_timestamp("2023-06-01").unwrap();
    let mut tx = db.begin_write("s").unwrap();
    let mut id = 0;
    for place in 0..100u64 {
        // Places on a 0.01-degree grid; tiles a little inside their cell, two per period.
        let (x, y) = ((place % 10) as f64 * 0.01 + 0.002, (place / 10) as f64 * 0.01 + 0.002);
        for (t, when) in [(0, y2017), (1, y2017 + day), (2, y2023), (3, y2023 + day)] {
            let after = t >= 2;
            let v = if after && planted.contains(&place) {
                around(&mut r, &housing, 0.5)
            } else {
                around(&mut r, &bare, 0.5)
            };
            tx.insert(
                NewRecord::new(id, v)
                    .with("footprint", Value::GeoBbox([x, y, x + 0.005, y + 0.005]))
                    .with("datetime", Value::Timestamp(when))
                    .with("scene", Value::Keyword(format!("place-{place}"))),
            )
            .unwrap();
            id += 1;
        }
    }
    tx.commit().unwrap();
    let col = db.snapshot().collection("s").unwrap();
    let before = skysift::time::parse_timestamp("2018-01-01").unwrap();
    let after = skysift::time::parse_timestamp("2022-01-01").unwrap();
    for place in [PlaceKey::Grid { cell_deg: 0.01, field: "footprint".into() }, PlaceKey::Field("scene".into())] {
        let opts = ChangeOptions { before, after, time_field: None, place: place.clone(), loss: false };
        let ch = change(&col, &housing, None, &opts).unwrap();
        assert_eq!(ch.len(), 100, "{place:?}");
        let top: BTreeSet<u64> = ch.iter().take(planted.len()).map(|c| c.after_id / 4).collect();
        assert_eq!(top, planted, "{place:?}");
        assert!(ch.windows(2).all(|w| w[0].delta >= w[1].delta));
        assert!(
            ch.iter().all(|c| c.rows_before == 2 && c.rows_after == 2 && (c.delta - (c.after - c.before)).abs() < 1e-6)
        );
        // Ranked by loss, the planted places come last.
        let loss = change(&col, &housing, None, &ChangeOptions { loss: true, ..opts }).unwrap();
        let last: BTreeSet<u64> = loss.iter().rev().take(planted.len()).map(|c| c.after_id / 4).collect();
        assert_eq!(last, planted);
        let gj = skysift::analyst::change_geojson("housing", &ch);
        assert_eq!(gj["features"].as_array().unwrap().len(), 100);
    }
    // A filter applies first: with only the first 50 places, three planted ones remain.
    let f = col.prepare_filter("intersects(footprint, bbox(0, 0, 0.1, 0.049))").unwrap();
    let opts = ChangeOptions { before, after, time_field: None, place: PlaceKey::Field("scene".into()), loss: false };
    let ch = change(&col, &housing, Some(&f), &opts).unwrap();
    assert_eq!(ch.len(), 50);
    let top: BTreeSet<u64> = ch.iter().take(3).map(|c| c.after_id / 4).collect();
    assert_eq!(top, [3, 17, 42].into_iter().collect());
    assert!(change(&col, &housing, None, &ChangeOptions { before: after, after: before, ..opts }).is_err());
}

#[test]
fn classify_stores_float_scores_that_filters_use() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _, target) = clusters(dir.path());
    let mut s = Session::open(db, Some("c"), None).unwrap();
    s.feedback.mark_good(&[0, 1, 2, 3, 4]);
    s.feedback.mark_bad(&[150, 151, 152, 153, 154]);
    let c = s.train_classifier(None, &TrainOptions::default()).unwrap().clone();
    let col = s.snapshot().unwrap();
    let mut values = Vec::new();
    let scored = c
        .score_rows(&col, None, 0.0, &mut |id, p, _| {
            values.push((id, Value::Float(f64::from(p))));
            Ok(())
        })
        .unwrap();
    let above = values.iter().filter(|(_, v)| matches!(v, Value::Float(p) if *p >= 0.5)).count() as u64;
    let written = s.store_values("solar", FieldType::Float, &values, &mut |_, _| {}).unwrap();
    assert_eq!(written as u64, scored.scored);
    let col = s.snapshot().unwrap();
    assert_eq!(col.count_where("solar >= 0.5").unwrap(), above);
    let passing: BTreeSet<u64> = col.ids_where("solar >= 0.5").unwrap().into_iter().collect();
    let hit = passing.intersection(&target).count() as f64 / passing.len().max(1) as f64;
    assert!(hit > 0.9, "precision of the stored scores {hit}");
    // A keyword field of the same name is refused, saying why.
    let err = s.store_values("solar", FieldType::Keyword, &[], &mut |_, _| {}).unwrap_err().to_string();
    assert!(err.contains("float"), "{err}");
}
