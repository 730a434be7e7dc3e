//! One writer, many readers, several processes.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use skysift::{Db, SearchParams, SearchScratch};

use crate::common::{record, spec, vector};
use crate::crash::{apply, batches_in, batches_present, check_state, writer_child};

#[test]
fn second_writer_is_refused_at_once_in_thread_and_handle() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    db.create_collection("c", spec()).unwrap();
    let t = Instant::now();
    assert!(matches!(Db::open(dir.path()), Err(skysift::Error::Storage(skysift_storage::Error::Locked { .. }))));
    let tx = db.begin_write("c").unwrap();
    let db2 = db.clone();
    let other = std::thread::spawn(move || db2.begin_write("c").map(|_| ()).unwrap_err().to_string()).join().unwrap();
    assert!(other.contains("locked"), "{other}");
    assert!(t.elapsed() < Duration::from_secs(1));
    drop(tx);
    db.begin_write("c").unwrap();
}

/// Reader threads used by the concurrency test (the issue asks for 16).
const READER_THREADS: usize = 16;
/// How long readers run against the live writer.
const READ_FOR: Duration = Duration::from_millis(2500);
/// Graph search recall@10 against brute force over the model under which a snapshot is probed:
/// searched again with `ef` as large as the collection, which visits every node the graph can
/// reach, so a row still missing is one the graph lost (a mismatch) and one found is the default
/// `ef`'s approximation (counted in `Followed::below`).
const MIN_RECALL_AT_10: f64 = 0.9;
/// Mean graph search recall@10 over all snapshots that a run must reach.
const MIN_MEAN_RECALL_AT_10: f64 = 0.99;
/// Most snapshots in a thousand that may need the probe of [`MIN_RECALL_AT_10`], and at least one
/// in any run (the campaigns' 60 rounds measured 4 in 249,694 and 0 in 249,732; a slow machine's
/// single round compares a few hundred).
const MAX_BELOW_PER_MILLE: u64 = 1;
/// Largest difference between a reported score and the model's (the SIMD dot product sums in
/// another order than the model's scalar loop).
const SCORE_TOLERANCE: f32 = 1e-4;
/// Filters whose counts are compared with the model, each with the model's predicate on
/// `(id, version)` (the fields `record` derives; `cloud` is null where `id % 3 == 0`).
const FILTERS: [(&str, fn(u64, u64) -> bool); 3] = [
    ("class = 'c1'", |id, v| (id + v) % 5 == 1),
    ("year >= 2010 AND cloud < 0.5", |id, v| 2000 + id % 20 >= 2010 && id % 3 != 0 && (v as f64) / 4.0 < 0.5),
    ("cloud IS NULL OR class IN ('c3', 'c4')", |id, v| id % 3 == 0 || (id + v) % 5 >= 3),
];
/// The variable that makes the test binary a reader child: the database's directory.
const CHILD_ENV: &str = "SKYSIFT_READER_CHILD";
/// The test whose process becomes the reader child when [`CHILD_ENV`] is set.
const CHILD_TEST: &str =
    "concurrency::readers_in_threads_and_another_process_follow_a_writer_that_flushes_and_compacts";

/// What the readers saw.
#[derive(Debug)]
struct Followed {
    /// Snapshots compared with the model.
    snapshots: u64,
    /// Snapshots whose answers differed from the model (each named in `first_mismatch`).
    mismatches: u64,
    /// Snapshots whose graph search at the default `ef` was under [`MIN_RECALL_AT_10`] while
    /// the probe at full `ef` found the whole top 10.
    below: u64,
    /// Sum of the graph searches' recall@10, one per snapshot.
    recall_sum: f64,
    /// The lowest recall@10 of a snapshot.
    recall_min: f64,
    /// The first mismatch, described.
    first_mismatch: Option<String>,
}

impl Default for Followed {
    fn default() -> Self {
        Followed { snapshots: 0, mismatches: 0, below: 0, recall_sum: 0.0, recall_min: 1.0, first_mismatch: None }
    }
}

impl Followed {
    fn add(&mut self, other: Followed) {
        self.recall_min = self.recall_min.min(other.recall_min);
        self.snapshots += other.snapshots;
        self.mismatches += other.mismatches;
        self.below += other.below;
        self.recall_sum += other.recall_sum;
        if self.first_mismatch.is_none() {
            self.first_mismatch = other.first_mismatch;
        }
    }
}

/// Brute force over the model's live rows: `(id, score)` by descending score, then id.
fn brute_force(model: &BTreeMap<u64, u64>, q: &[f32], k: usize) -> Vec<(u64, f32)> {
    let mut all: Vec<(u64, f32)> =
        model.iter().map(|(&id, &v)| (id, vector(id, v).iter().zip(q).map(|(x, y)| x * y).sum())).collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

/// Compares one snapshot's answers with the model after `m` batches; returns the graph
/// search's recall@10 and whether it needed the full-`ef` probe, or what differed.
fn compare(
    col: &skysift::CollectionSnapshot,
    model: &BTreeMap<u64, u64>,
    q: &[f32],
    scratch: &mut SearchScratch,
) -> Result<(f64, bool), String> {
    let score_of = |id: u64| model.get(&id).map(|&v| vector(id, v).iter().zip(q).map(|(x, y)| x * y).sum::<f32>());
    // Every hit is a live row of the model with its model score, and no id comes twice.
    let valid = |what: &str, hits: &[skysift::Hit]| -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for h in hits {
            let want = score_of(h.id).ok_or_else(|| format!("{what}: id {} is not live in the model", h.id))?;
            if (want - h.score).abs() > SCORE_TOLERANCE || !seen.insert(h.id) {
                return Err(format!("{what}: id {} scored {} (model {want}) or repeated", h.id, h.score));
            }
        }
        Ok(())
    };
    if col.count() != model.len() as u64 {
        return Err(format!("count {} but the model has {}", col.count(), model.len()));
    }
    let mut ids = col.ids().map_err(|e| e.to_string())?;
    ids.sort_unstable();
    if !ids.iter().eq(model.keys()) {
        return Err(format!("ids differ from the model's {} live rows", model.len()));
    }
    let want = brute_force(model, q, 10);
    let exact = col.search_exact(q, 10, scratch).map_err(|e| e.to_string())?;
    valid("exact search", &exact)?;
    // Valid hits whose scores are the brute force's, rank by rank, are an exact top 10 (ties
    // may order equal scores either way).
    if exact.len() != want.len() || exact.iter().zip(&want).any(|(h, w)| (h.score - w.1).abs() > SCORE_TOLERANCE) {
        return Err(format!("exact search {exact:?}, brute force {want:?}"));
    }
    let graph = col.search(q, &SearchParams::k(10), scratch).map_err(|e| e.to_string())?;
    valid("graph search", &graph)?;
    if graph.len() != want.len() {
        return Err(format!("graph search gave {} hits, want {}", graph.len(), want.len()));
    }
    let recall_of = |hits: &[skysift::Hit]| {
        if want.is_empty() {
            1.0
        } else {
            hits.iter().filter(|h| want.iter().any(|w| w.0 == h.id)).count() as f64 / want.len() as f64
        }
    };
    let recall = recall_of(&graph);
    let below = recall < MIN_RECALL_AT_10;
    if below {
        let every = SearchParams { ef: Some(col.count() as usize), f32_traversal: true, ..SearchParams::k(10) };
        let probe = col.search(q, &every, scratch).map_err(|e| e.to_string())?;
        valid("graph search at full ef", &probe)?;
        let full = recall_of(&probe);
        if full < 1.0 {
            return Err(format!(
                "graph search recall@10 {recall}, and {full} at ef {} (rows the graph cannot reach)",
                col.count()
            ));
        }
    }
    for (f, pass) in FILTERS {
        let got = col.count_where(f).map_err(|e| e.to_string())?;
        let want = model.iter().filter(|&(&id, &v)| pass(id, v)).count() as u64;
        if got != want {
            return Err(format!("count_where({f}) = {got}, model {want}"));
        }
    }
    Ok((recall, below))
}

/// Follows the writer through `db` (read-only) until `stop` on `threads` threads. Each snapshot
/// must be a whole number of batches that never goes backwards, and its answers must be the
/// model's at that number: count and ids, exact search ids and scores equal to brute force over
/// the model's live rows, graph search recall@10 at least [`MIN_RECALL_AT_10`], and the filtered
/// counts of [`FILTERS`].
fn follow(db: &Db, threads: usize, stop: Instant) -> Followed {
    let mut all = Followed::default();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut f = Followed::default();
                    let mut scratch = SearchScratch::default();
                    // The model after `m` batches, advanced batch by batch as the writer goes.
                    let (mut model, mut m) = (BTreeMap::new(), 0);
                    let mut last = 0;
                    let mut i = 0u64;
                    while Instant::now() < stop {
                        db.refresh().unwrap();
                        let snap = db.snapshot();
                        let Ok(col) = snap.collection("c") else { continue };
                        let now = batches_in(&col);
                        i += 1;
                        let q = vector(1_000_000 + t as u64, i);
                        let r = if now < last {
                            Err(format!("went back from {last} to {now} batches"))
                        } else {
                            last = now;
                            for b in m + 1..=now {
                                apply(&mut model, b);
                            }
                            m = now;
                            compare(&col, &model, &q, &mut scratch)
                        };
                        f.snapshots += 1;
                        match r {
                            Ok((recall, below)) => {
                                f.below += u64::from(below);
                                f.recall_sum += recall;
                                f.recall_min = f.recall_min.min(recall);
                            }
                            Err(e) => {
                                f.mismatches += 1;
                                f.first_mismatch.get_or_insert_with(|| format!("thread {t}, {m} batches: {e}"));
                            }
                        }
                    }
                    f
                })
            })
            .collect();
        for h in handles {
            all.add(h.join().unwrap());
        }
    });
    all
}

/// The reader child's work: a read-only follower of the database in `dir`; prints its figures.
fn reader_child(dir: &std::path::Path) {
    let reader = Db::builder(dir).read_only(true).open().unwrap();
    let f = follow(&reader, 2, Instant::now() + READ_FOR);
    println!(
        "reader child compared {} snapshots, mismatches {}, below {}, recall@10 sum {} min {}, first mismatch {:?}",
        f.snapshots, f.mismatches, f.below, f.recall_sum, f.recall_min, f.first_mismatch
    );
}

/// One round by default; `SKYSIFT_CONCURRENCY_ROUNDS` sets more (the campaign script's row).
/// Also the reader child's entry: with [`CHILD_ENV`] set, the process follows that database.
#[test]
fn readers_in_threads_and_another_process_follow_a_writer_that_flushes_and_compacts() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        reader_child(std::path::Path::new(&dir));
        return;
    }
    let rounds: u64 = std::env::var("SKYSIFT_CONCURRENCY_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let (mut here, mut there) = (Followed::default(), Followed::default());
    for round in 1..=rounds {
        let (h, t) = follow_round();
        println!(
            "concurrency round {round}: {} snapshots compared by {READER_THREADS} threads ({} mismatches, {} probed, \
             recall@10 min {:.3}), {} by the reader process ({} mismatches, {} probed)",
            h.snapshots, h.mismatches, h.below, h.recall_min, t.snapshots, t.mismatches, t.below
        );
        here.add(h);
        there.add(t);
    }
    let snapshots = here.snapshots + there.snapshots;
    let mean = (here.recall_sum + there.recall_sum) / snapshots.max(1) as f64;
    let below = here.below + there.below;
    println!(
        "concurrency: rounds {rounds}, snapshots compared {} in threads and {} in the reader process, mismatches {}, \
         graph recall@10 mean {mean:.5} (threshold {MIN_MEAN_RECALL_AT_10}) min {:.3}, snapshots under \
         {MIN_RECALL_AT_10} that the full-ef probe found whole {below} (at most {MAX_BELOW_PER_MILLE} in 1000, or 1), \
         first mismatch {:?}",
        here.snapshots,
        there.snapshots,
        here.mismatches + there.mismatches,
        here.recall_min.min(there.recall_min),
        here.first_mismatch.as_ref().or(there.first_mismatch.as_ref())
    );
    assert!(here.snapshots > 0 && there.snapshots > 0, "every reader compared snapshots");
    assert_eq!(here.mismatches + there.mismatches, 0, "{:?}", here.first_mismatch.or(there.first_mismatch));
    assert!(mean >= MIN_MEAN_RECALL_AT_10, "graph search recall@10 mean {mean} < {MIN_MEAN_RECALL_AT_10}");
    assert!(
        below <= 1 || below * 1000 <= snapshots * MAX_BELOW_PER_MILLE,
        "{below} of {snapshots} snapshots had graph recall@10 under {MIN_RECALL_AT_10}"
    );
}

/// A writer process loads, flushes and compacts; this process's reader threads and a reader
/// process follow it; a second writer is refused; the writer is killed and a new one takes over.
/// Returns what the reader threads and the reader process saw.
fn follow_round() -> (Followed, Followed) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = writer_child(dir.path()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Wait for the child to create the database.
    let t = Instant::now();
    while !dir.path().join("MANIFEST").exists() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    // A second writer process is refused at once while the child lives.
    let t = Instant::now();
    assert!(matches!(Db::open(dir.path()), Err(skysift::Error::Storage(skysift_storage::Error::Locked { .. }))));
    assert!(t.elapsed() < Duration::from_secs(1));
    // A second process follows the same database while this one runs its reader threads.
    let other = Command::new(std::env::current_exe().unwrap())
        .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reader = Db::builder(dir.path()).read_only(true).open().unwrap();
    let here = follow(&reader, READER_THREADS, Instant::now() + READ_FOR);
    let other = other.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&other.stdout);
    let figure = |after: &str| text.split(after).nth(1).and_then(|t| t.split([' ', ',']).next()?.parse::<f64>().ok());
    let there = match (
        figure("reader child compared "),
        figure("mismatches "),
        figure("below "),
        figure("recall@10 sum "),
        figure(" min "),
    ) {
        (Some(n), Some(bad), Some(below), Some(sum), Some(min)) if other.status.success() => Followed {
            snapshots: n as u64,
            mismatches: bad as u64,
            below: below as u64,
            recall_sum: sum,
            recall_min: min,
            first_mismatch: text.split("first mismatch ").nth(1).filter(|m| !m.starts_with("None")).map(str::to_owned),
        },
        _ => panic!("the reader process failed: {text}{}", String::from_utf8_lossy(&other.stderr)),
    };
    child.kill().unwrap();
    child.wait().unwrap();
    // The killed writer's lock is gone: a new writer takes over.
    let db = Db::open(dir.path()).unwrap();
    let m = batches_present(&db);
    assert!(m > 0);
    check_state(&db, m);
    let mut tx = db.begin_write("c").unwrap();
    tx.upsert(record(1, 1)).unwrap();
    tx.commit().unwrap();
    (here, there)
}
