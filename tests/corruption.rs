//! Corruption matrix: every byte of every file flipped, every truncation length. Each case runs
//! every step under `catch_unwind`: the open, `verify`, the reads (ids, get, count, exact, graph
//! and filtered search, filtered counts and ids) and a compaction of a copy of the damaged
//! database followed by a reopen. A panic in any step fails the test; a typed corruption error
//! (from open, a read or the compaction) or a `verify` problem is the only acceptable detection;
//! any other error fails; reads that answer without error must show exactly the original data.
//!
//! The one documented exception: damage to the *last* WAL frame cannot be told from a torn
//! append and drops that frame (counted as `torn_drop`): every read then shows exactly the state
//! before the last commit.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use skysift::schema::Value;
use skysift::{Db, SearchParams, SearchScratch};

use crate::common::{Dump, copy_tree, dump, record, spec, vector};

/// Outcome counts.
#[derive(Debug, Default, Clone)]
pub struct Matrix {
    /// Mutations tried.
    pub mutations: u64,
    /// Refused at open with a corruption error.
    pub detected_open: u64,
    /// Opened, but `verify` named the damage.
    pub detected_verify: u64,
    /// Opened and verified, but a read returned a corruption error.
    pub detected_read: u64,
    /// Reads showed the original data, but compacting a copy returned a corruption error.
    pub detected_compact: u64,
    /// Identical data in every read and after compaction (the byte was padding or a reserved
    /// field).
    pub harmless: u64,
    /// Last WAL frame dropped as a torn tail.
    pub torn_drop: u64,
    /// Different data shown with no error from open, verify, the reads or the compaction.
    pub silent: u64,
    /// An error that is not a corruption error (the damage was not named as such).
    pub other_errors: u64,
    /// Panics, in any step.
    pub panics: u64,
    /// Panics per step (open, verify, read, compact).
    pub panic_at: BTreeMap<&'static str, u64>,
    /// The first case that failed (panic, silent or other error), for the report.
    pub first_failure: Option<String>,
}

/// Query vectors for the exact and graph searches.
const QUERIES: u64 = 3;
/// Hits asked of the exact search: more than the rows, so it returns every live row.
const EXACT_K: usize = 40;
/// Filters counted, listed and searched.
const FILTERS: [&str; 3] = ["class = 'c1'", "year >= 2010 AND cloud < 0.5", "NOT class IN ('c3', 'c4')"];

/// Hits as `(id, score)`.
type Hits = Vec<(u64, f32)>;

/// Everything the reads of one snapshot show.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// `count()`.
    count: u64,
    /// Every id of `ids()` (sorted) with what `get` returns for it.
    records: Vec<(u64, Option<(Vec<f32>, Vec<(String, Value)>)>)>,
    /// Exact search per query.
    exact: Vec<Hits>,
    /// Graph search (k = 10) per query.
    graph: Vec<Hits>,
    /// Per filter: count, ids, filtered search.
    filtered: Vec<(u64, Vec<u64>, Hits)>,
}

impl Seen {
    /// Without the graph searches: a compaction builds a new graph, whose answers may differ.
    fn without_graph(&self) -> Seen {
        Seen { graph: Vec::new(), ..self.clone() }
    }
}

fn hits(h: Vec<skysift::Hit>) -> Hits {
    h.into_iter().map(|h| (h.id, h.score)).collect()
}

/// Runs every read of the matrix on the latest snapshot of `db`; typed errors are returned.
fn observe(db: &Db) -> skysift::Result<Seen> {
    let col = db.snapshot().collection("c")?;
    let mut scratch = SearchScratch::default();
    let mut ids = col.ids()?;
    ids.sort_unstable();
    let mut records = Vec::with_capacity(ids.len());
    for id in ids {
        records.push((id, col.get(id)?.map(|r| (r.vector, r.fields))));
    }
    let (mut exact, mut graph) = (Vec::new(), Vec::new());
    for i in 0..QUERIES {
        let q = vector(1000 + i, 7);
        exact.push(hits(col.search_exact(&q, EXACT_K, &mut scratch)?));
        graph.push(hits(col.search(&q, &SearchParams::k(10), &mut scratch)?));
    }
    let mut filtered = Vec::new();
    for f in FILTERS {
        let p = col.prepare_filter(f)?;
        let found = hits(col.search_filtered(&vector(2000, 7), &p, &SearchParams::k(5), &mut scratch)?);
        filtered.push((p.count(), p.ids(), found));
    }
    Ok(Seen { count: col.count(), records, exact, graph, filtered })
}

/// The undamaged database's answers.
pub struct Expected {
    /// Its full dump.
    pub dump: Dump,
    /// Every read after the last commit.
    all: Seen,
    /// Every read before the last commit (what a dropped last WAL frame shows).
    before_last: Seen,
}

fn build(dir: &Path) -> Expected {
    let db = Db::builder(dir).flush_rows(1_000_000).open().unwrap();
    db.create_collection("c", spec()).unwrap();
    let mut before_last = None;
    for b in 0..4u64 {
        if b == 3 {
            before_last = Some(observe(&db).unwrap());
        }
        let mut tx = db.begin_write("c").unwrap();
        for id in b * 6..b * 6 + 6 {
            tx.upsert(record(id, b)).unwrap();
        }
        if b == 2 {
            tx.delete(1).unwrap();
        }
        tx.commit().unwrap();
        if b == 1 || b == 2 {
            db.flush("c").unwrap();
        }
    }
    Expected { dump: dump(&db, "c"), all: observe(&db).unwrap(), before_last: before_last.unwrap() }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.join("MANIFEST")];
    let col = std::fs::read_dir(dir).unwrap().filter_map(Result::ok).map(|e| e.path()).find(|p| p.is_dir()).unwrap();
    let mut inner: Vec<PathBuf> = std::fs::read_dir(col).unwrap().filter_map(Result::ok).map(|e| e.path()).collect();
    inner.sort();
    out.extend(inner);
    out
}

/// Copies the damaged database to `work`, opens the copy for writing, compacts it, and reads the
/// result back through a fresh read-only open.
fn compact_copy(dir: &Path, work: &Path) -> skysift::Result<Seen> {
    if work.exists() {
        std::fs::remove_dir_all(work).unwrap();
    }
    copy_tree(dir, work);
    let db = Db::open(work)?;
    db.compact("c")?;
    drop(db);
    observe(&Db::builder(work).read_only(true).open()?)
}

/// How one case ended.
enum Outcome {
    DetectedOpen,
    DetectedVerify,
    DetectedRead,
    DetectedCompact,
    Harmless,
    TornDrop,
    Silent,
    OtherError(String),
    Panic(&'static str, String),
}

/// Runs one step of a case; a panic ends the case as a panic in that step.
fn guarded<T>(step: &'static str, f: impl FnOnce() -> T) -> Result<T, Outcome> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        Outcome::Panic(step, msg)
    })
}

/// A typed error is a detection (`as_detected`) when it says the bytes are damaged.
fn typed(e: &skysift::Error, as_detected: Outcome) -> Outcome {
    match e {
        skysift::Error::Storage(s) if s.is_corruption() => as_detected,
        e => Outcome::OtherError(e.to_string()),
    }
}

fn run_case(dir: &Path, want: &Expected, is_wal: bool, work: &Path) -> Result<Outcome, Outcome> {
    let db = match guarded("open", || Db::builder(dir).read_only(true).open())? {
        Ok(db) => db,
        Err(e) => return Ok(typed(&e, Outcome::DetectedOpen)),
    };
    let report = guarded("verify", || skysift::verify::verify(&skysift::io::RealVfs, dir))?;
    // The handle is dropped inside the step, so a panic while closing counts too.
    let seen = guarded("read", move || observe(&db))?;
    let compacted = guarded("compact", || compact_copy(dir, work))?;
    // Every step ran without a panic; the first detection names the case.
    if !report.ok() {
        return Ok(Outcome::DetectedVerify);
    }
    let seen = match seen {
        Ok(s) => s,
        Err(e) => return Ok(typed(&e, Outcome::DetectedRead)),
    };
    let (outcome, state) = if seen == want.all {
        (Outcome::Harmless, &want.all)
    } else if is_wal && seen == want.before_last {
        (Outcome::TornDrop, &want.before_last)
    } else {
        return Ok(Outcome::Silent);
    };
    match compacted {
        Err(e) => Ok(typed(&e, Outcome::DetectedCompact)),
        Ok(c) if c.without_graph() == state.without_graph() => Ok(outcome),
        Ok(_) => Ok(Outcome::Silent),
    }
}

fn classify(dir: &Path, want: &Expected, is_wal: bool, work: &Path, case: &str, m: &mut Matrix) {
    m.mutations += 1;
    let failure = match run_case(dir, want, is_wal, work).unwrap_or_else(|o| o) {
        Outcome::DetectedOpen => {
            m.detected_open += 1;
            None
        }
        Outcome::DetectedVerify => {
            m.detected_verify += 1;
            None
        }
        Outcome::DetectedRead => {
            m.detected_read += 1;
            None
        }
        Outcome::DetectedCompact => {
            m.detected_compact += 1;
            None
        }
        Outcome::Harmless => {
            m.harmless += 1;
            None
        }
        Outcome::TornDrop => {
            m.torn_drop += 1;
            None
        }
        Outcome::Silent => {
            m.silent += 1;
            Some("different data with no error".to_owned())
        }
        Outcome::OtherError(e) => {
            m.other_errors += 1;
            Some(format!("an error that does not name the damage: {e}"))
        }
        Outcome::Panic(step, msg) => {
            m.panics += 1;
            *m.panic_at.entry(step).or_default() += 1;
            Some(format!("panic in {step}: {msg}"))
        }
    };
    if let Some(f) = failure {
        m.first_failure.get_or_insert_with(|| format!("{case}: {f}"));
    }
}

/// Runs the matrix over a freshly built database; `stride` > 1 samples every stride-th byte.
pub fn run_matrix(stride: usize) -> Matrix {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let work = scratch.path().join("copy");
    let want = build(dir.path());
    let mut m = Matrix::default();
    for f in files(dir.path()) {
        let bytes = std::fs::read(&f).unwrap();
        let is_wal = f.extension().is_some_and(|e| e == "log");
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        for i in (0..bytes.len()).step_by(stride) {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            std::fs::write(&f, &b).unwrap();
            classify(dir.path(), &want, is_wal, &work, &format!("{name} byte {i} flipped"), &mut m);
        }
        for n in (0..bytes.len()).step_by(stride) {
            std::fs::write(&f, &bytes[..n]).unwrap();
            classify(dir.path(), &want, is_wal, &work, &format!("{name} truncated to {n} bytes"), &mut m);
        }
        std::fs::write(&f, &bytes).unwrap();
    }
    m
}

#[test]
fn every_flipped_byte_and_truncation_is_detected_or_harmless() {
    let m = crate::common::quiet_panics(|| run_matrix(1));
    println!("corruption matrix: {m:?}");
    assert_eq!(m.panics, 0, "{m:?}");
    assert_eq!(m.silent, 0, "{m:?}");
    assert_eq!(m.other_errors, 0, "{m:?}");
    assert!(m.detected_open > m.mutations / 2, "{m:?}");
}

#[test]
fn recovery_open_skips_a_corrupt_segment_and_reads_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let original = build(dir.path()).dump;
    let segs: Vec<PathBuf> =
        files(dir.path()).into_iter().filter(|p| p.extension().is_some_and(|e| e == "seg")).collect();
    assert_eq!(segs.len(), 2);
    let mut b = std::fs::read(&segs[0]).unwrap();
    b[10] ^= 0xff;
    std::fs::write(&segs[0], &b).unwrap();
    let err = Db::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("seg-000001.seg") && err.contains("header"), "{err}");
    let db = Db::builder(dir.path()).recover(true).open().unwrap();
    assert_eq!(db.open_report().skipped.len(), 1);
    let seen = dump(&db, "c");
    assert!(!seen.is_empty() && seen.len() < original.len());
    for (id, v) in &seen {
        assert_eq!(&original[id], v);
    }
    let report = skysift::verify::verify(&skysift::io::RealVfs, dir.path());
    assert!(!report.ok());
    assert!(report.files.iter().any(|f| f.path == segs[0] && !f.problems.is_empty()));
}
