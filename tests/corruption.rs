//! Corruption matrix: every byte of every file flipped, every truncation length. Opening (and
//! then `verify`) must report a typed corruption error or show exactly the original data;
//! never panic, never silently show different data.
//!
//! The one documented exception: damage to the *last* WAL frame cannot be told from a torn
//! append and drops that frame (counted as `torn_drop`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use skysift::Db;

use crate::common::{Dump, dump, record, spec};

/// Outcome counts.
#[derive(Debug, Default, Clone)]
pub struct Matrix {
    /// Mutations tried.
    pub mutations: u64,
    /// Refused at open with a corruption error.
    pub detected_open: u64,
    /// Opened, but `verify` named the damage.
    pub detected_verify: u64,
    /// Opened with identical data (the byte was padding or a reserved field).
    pub harmless: u64,
    /// Last WAL frame dropped as a torn tail.
    pub torn_drop: u64,
    /// Different data shown with no error from open or verify.
    pub silent: u64,
    /// Panics.
    pub panics: u64,
}

fn build(dir: &Path) -> Dump {
    let db = Db::builder(dir).flush_rows(1_000_000).open().unwrap();
    db.create_collection("c", spec()).unwrap();
    for b in 0..4u64 {
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
    dump(&db, "c")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.join("MANIFEST")];
    let col = std::fs::read_dir(dir).unwrap().filter_map(Result::ok).map(|e| e.path()).find(|p| p.is_dir()).unwrap();
    let mut inner: Vec<PathBuf> = std::fs::read_dir(col).unwrap().filter_map(Result::ok).map(|e| e.path()).collect();
    inner.sort();
    out.extend(inner);
    out
}

fn classify(dir: &Path, original: &Dump, is_wal: bool, m: &mut Matrix) {
    m.mutations += 1;
    let r = catch_unwind(AssertUnwindSafe(|| {
        let db = match Db::builder(dir).read_only(true).open() {
            Ok(db) => db,
            Err(skysift::Error::Storage(e)) if e.is_corruption() => return 0,
            Err(e) => panic!("non-corruption error: {e}"),
        };
        let report = skysift::verify::verify(&skysift::io::RealVfs, dir);
        let seen = std::panic::catch_unwind(AssertUnwindSafe(|| dump(&db, "c")));
        match seen {
            Ok(seen) if &seen == original => 2,
            _ if !report.ok() => 1,
            Ok(seen) if is_wal && seen.len() < original.len() => 3,
            Ok(_) => 4,
            Err(_) => 5,
        }
    }));
    match r {
        Ok(0) => m.detected_open += 1,
        Ok(1) => m.detected_verify += 1,
        Ok(2) => m.harmless += 1,
        Ok(3) => m.torn_drop += 1,
        Ok(4) => m.silent += 1,
        _ => m.panics += 1,
    }
}

/// Runs the matrix over a freshly built database; `stride` > 1 samples every stride-th byte.
pub fn run_matrix(stride: usize) -> Matrix {
    let dir = tempfile::tempdir().unwrap();
    let original = build(dir.path());
    let mut m = Matrix::default();
    for f in files(dir.path()) {
        let bytes = std::fs::read(&f).unwrap();
        let is_wal = f.extension().is_some_and(|e| e == "log");
        for i in (0..bytes.len()).step_by(stride) {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            std::fs::write(&f, &b).unwrap();
            classify(dir.path(), &original, is_wal, &mut m);
        }
        for n in (0..bytes.len()).step_by(stride) {
            std::fs::write(&f, &bytes[..n]).unwrap();
            classify(dir.path(), &original, is_wal, &mut m);
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
    assert!(m.detected_open > m.mutations / 2, "{m:?}");
}

#[test]
fn recovery_open_skips_a_corrupt_segment_and_reads_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let original = build(dir.path());
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
