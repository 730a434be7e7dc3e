//! The graph index: recall against brute force on seeded synthetic data with in-distribution
//! (image-like) and out-of-distribution (text-like: shared offset) queries, with and without a
//! query sample; results sorted, unique and live after deletes; graphs survive reopening.

use proptest::prelude::*;
use skysift::schema::Metric;
use skysift::{CollectionSpec, Db, IndexParams, NewRecord, SearchParams, SearchScratch};

use crate::common::{Rng, unit};

/// Minimum recall@10 for in-distribution queries at ef = 64.
const MIN_RECALL_ID: f64 = 0.95;
/// Minimum recall@10 for out-of-distribution queries at ef = 128 with a query sample.
const MIN_RECALL_OOD_GUIDED: f64 = 0.90;

const DIM: usize = 32;

struct Data {
    base: Vec<Vec<f32>>,
    id_queries: Vec<Vec<f32>>,
    ood_queries: Vec<Vec<f32>>,
    sample: Vec<Vec<f32>>,
}

/// Clustered "image" vectors; "text" queries = cluster centre + one shared gap offset + noise.
fn data(seed: u64, n: usize) -> Data {
    let mut r = Rng(seed | 1);
    let centres: Vec<Vec<f32>> = (0..40).map(|_| r.gauss_vec(DIM, 1.0 / (DIM as f32).sqrt())).collect();
    let gap = r.gauss_vec(DIM, 2.0 / (DIM as f32).sqrt());
    let image = |r: &mut Rng| {
        let c = &centres[(r.uniform() * centres.len() as f64) as usize];
        unit(c.iter().zip(r.gauss_vec(DIM, 0.6 / (DIM as f32).sqrt())).map(|(a, b)| a + b).collect())
    };
    let text = |r: &mut Rng| {
        let c = &centres[(r.uniform() * centres.len() as f64) as usize];
        unit(c.iter().zip(&gap).zip(r.gauss_vec(DIM, 0.7 / (DIM as f32).sqrt())).map(|((a, g), b)| a + g + b).collect())
    };
    let base = (0..n).map(|_| image(&mut r)).collect();
    let id_queries = (0..100).map(|_| image(&mut r)).collect();
    let ood_queries = (0..100).map(|_| text(&mut r)).collect();
    let sample = (0..1000).map(|_| text(&mut r)).collect();
    Data { base, id_queries, ood_queries, sample }
}

fn exact_top(base: &[Vec<f32>], q: &[f32], k: usize, live: impl Fn(usize) -> bool) -> Vec<u64> {
    let mut s: Vec<(f32, u64)> = base
        .iter()
        .enumerate()
        .filter(|(i, _)| live(*i))
        .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum(), i as u64))
        .collect();
    s.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    s.into_iter().take(k).map(|(_, i)| i).collect()
}

fn load(dir: &std::path::Path, d: &Data, sample: bool) -> Db {
    let db = Db::builder(dir).flush_rows(usize::MAX).open().unwrap();
    let p = IndexParams { min_rows: 500, ..IndexParams::default() };
    db.create_collection("c", CollectionSpec::new(DIM as u32, Metric::InnerProduct).index(p)).unwrap();
    if sample {
        db.set_query_sample("c", &d.sample.concat()).unwrap();
    }
    let mut tx = db.begin_write("c").unwrap();
    for (i, v) in d.base.iter().enumerate() {
        tx.insert(NewRecord::new(i as u64, v.clone())).unwrap();
    }
    tx.commit().unwrap();
    db.flush("c").unwrap();
    db
}

fn recall(db: &Db, d: &Data, queries: &[Vec<f32>], ef: usize) -> f64 {
    let col = db.snapshot().collection("c").unwrap();
    let mut scratch = SearchScratch::default();
    let mut hits = 0;
    for q in queries {
        let got = col.search(q, &SearchParams { ef: Some(ef), ..SearchParams::k(10) }, &mut scratch).unwrap();
        let want = exact_top(&d.base, q, 10, |_| true);
        hits += got.iter().filter(|h| want.contains(&h.id)).count();
    }
    hits as f64 / (10 * queries.len()) as f64
}

#[test]
fn recall_against_brute_force_in_and_out_of_distribution() {
    let d = data(7, 6000);
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = load(plain_dir.path(), &d, false);
    let state = plain.snapshot().collection("c").unwrap().index_state();
    assert!(state[0].graph_levels.is_some() && state[0].int8_codes, "{state:?}");
    let id = recall(&plain, &d, &d.id_queries, 64);
    let ood_plain = recall(&plain, &d, &d.ood_queries, 128);
    let guided_dir = tempfile::tempdir().unwrap();
    let guided = load(guided_dir.path(), &d, true);
    let ood_guided = recall(&guided, &d, &d.ood_queries, 128);
    println!("recall@10: ID ef64 {id:.3}; OOD ef128 plain {ood_plain:.3}, with query sample {ood_guided:.3}");
    assert!(id >= MIN_RECALL_ID, "ID recall {id}");
    assert!(ood_guided >= MIN_RECALL_OOD_GUIDED, "OOD recall with a query sample {ood_guided}");
    assert!(ood_guided >= ood_plain, "query-guided edges must not hurt: {ood_guided} < {ood_plain}");
    // Graphs are read from the segment files after reopening: the same sections, the same answers.
    let before = guided.snapshot().collection("c").unwrap().index_state();
    drop(guided);
    let reopened = Db::open(guided_dir.path()).unwrap();
    assert_eq!(reopened.snapshot().collection("c").unwrap().index_state(), before);
    assert!((recall(&reopened, &d, &d.ood_queries, 128) - ood_guided).abs() < 1e-12, "same graph, same answers");
}

fn check_results(db: &Db, d: &Data, deleted: &std::collections::BTreeSet<u64>, k: usize, ef: usize) {
    let col = db.snapshot().collection("c").unwrap();
    let live = col.count() as usize;
    let mut scratch = SearchScratch::default();
    for q in d.ood_queries.iter().take(10) {
        let got = col.search(q, &SearchParams { ef: Some(ef), ..SearchParams::k(k) }, &mut scratch).unwrap();
        assert_eq!(got.len(), k.min(live), "k {k} live {live}");
        let mut ids: Vec<u64> = got.iter().map(|h| h.id).collect();
        assert!(got.windows(2).all(|w| w[0].score >= w[1].score), "sorted");
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), got.len(), "unique");
        assert!(ids.iter().all(|i| !deleted.contains(i)), "live");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn results_are_sorted_unique_live_and_k_long(deletes in proptest::collection::btree_set(0u64..1500, 0..1400), k in 1usize..40, ef in 1usize..80) {
        let d = data(11, 1500);
        let dir = tempfile::tempdir().unwrap();
        let db = load(dir.path(), &d, false);
        let mut tx = db.begin_write("c").unwrap();
        for id in &deletes {
            tx.delete(*id).unwrap();
        }
        tx.commit().unwrap();
        check_results(&db, &d, &deletes, k, ef);
        // And again once the tombstones are compacted away.
        db.compact("c").unwrap();
        check_results(&db, &d, &deletes, k, ef);
    }
}

/// Recall@10 a search without an explicit `ef` must reach on out-of-distribution queries when the
/// collection has a query sample (the build calibrates the width on held-out sample queries).
const MIN_RECALL_CALIBRATED: f64 = 0.95;

#[test]
fn default_search_uses_the_width_calibrated_on_held_out_sample_queries() {
    let d = data(11, 6000);
    let dir = tempfile::tempdir().unwrap();
    let db = load(dir.path(), &d, true);
    let state = db.snapshot().collection("c").unwrap().index_state();
    let (ef, cal_recall, queries) = state[0].calibration.expect("a calibration with a query sample");
    assert_eq!(queries, 100, "1,000 sample queries: one in ten held out");
    assert!(cal_recall >= skysift::index::segment_index::CALIBRATION_TARGET || ef == 2048, "{state:?}");
    let col = db.snapshot().collection("c").unwrap();
    let mut scratch = SearchScratch::default();
    let mut hits = 0;
    for q in &d.ood_queries {
        let got = col.search(q, &SearchParams::k(10), &mut scratch).unwrap();
        let want = exact_top(&d.base, q, 10, |_| true);
        hits += got.iter().filter(|h| want.contains(&h.id)).count();
    }
    let default_recall = hits as f64 / (10 * d.ood_queries.len()) as f64;
    println!("calibrated ef {ef} (held-out recall {cal_recall:.3}); default search recall {default_recall:.3}");
    assert!(default_recall >= MIN_RECALL_CALIBRATED, "{default_recall}");
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = load(plain_dir.path(), &d, false);
    assert!(plain.snapshot().collection("c").unwrap().index_state()[0].calibration.is_none());
}

/// With `flush_in_background`, the commit that fills the memtable returns once durable: its
/// rows are searchable while the segment is built, the next transaction waits for the build
/// instead of failing with `Locked`, and nothing is lost or doubled once the segment is in.
#[test]
fn a_background_flush_keeps_rows_searchable_and_the_next_writer_waits() {
    use crate::common::{dump, model_entry, record, spec};
    let dir = tempfile::tempdir().unwrap();
    let db = Db::builder(dir.path()).flush_rows(3_000).flush_in_background(true).open().unwrap();
    db.create_collection("c", spec()).unwrap();
    let mut tx = db.begin_write("c").unwrap();
    for id in 0..3_000 {
        tx.insert(record(id, 0)).unwrap();
    }
    assert_eq!(tx.commit().unwrap().flush_error, None);
    assert_eq!(dump(&db, "c").len(), 3_000, "rows searchable while the segment is built");
    let mut tx = db.begin_write("c").expect("the next writer waits for the background flush");
    for id in 3_000..3_100 {
        tx.insert(record(id, 1)).unwrap();
    }
    tx.delete(5).unwrap();
    assert_eq!(tx.commit().unwrap().flush_error, None);
    db.wait_for_flush().unwrap();
    let col = db.snapshot().collection("c").unwrap();
    assert_eq!(col.segments().len(), 1, "the first 3,000 rows are in a segment");
    assert_eq!(col.memory_rows(), 100, "the later rows stay in memory");
    let got = dump(&db, "c");
    let want: crate::common::Dump =
        (0..3_100).filter(|&id| id != 5).map(|id| (id, model_entry(id, u64::from(id >= 3_000)))).collect();
    assert_eq!(got, want);
    drop(db);
    let db = Db::open(dir.path()).unwrap();
    assert_eq!(dump(&db, "c"), want, "and after reopening");
}
