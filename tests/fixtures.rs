//! Format fixtures: a database written by format version 1 (segment v1, WAL v1, manifest v1)
//! is kept in `tests/fixtures/v1/db` and must open and read back the same forever.
//! `SKYSIFT_WRITE_FIXTURES=1 cargo test --test tests fixtures::` rewrites it (only when a new
//! version is released: old fixtures are never rewritten).

use std::path::{Path, PathBuf};

use skysift::Db;

use crate::common::{DIM, dump, model_entry, record, spec};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1/db")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else if e.file_name() != "LOCK" {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn version_1_database_opens_and_reads_back() {
    if std::env::var_os("SKYSIFT_WRITE_FIXTURES").is_some() {
        let _ = std::fs::remove_dir_all(fixture());
        let db = Db::builder(fixture()).flush_rows(usize::MAX).open().unwrap();
        db.create_collection("c", spec()).unwrap();
        let mut tx = db.begin_write("c").unwrap();
        for id in 0..20 {
            tx.insert(record(id, 1)).unwrap();
        }
        tx.commit().unwrap();
        db.flush("c").unwrap();
        let mut tx = db.begin_write("c").unwrap();
        tx.delete(3).unwrap();
        tx.upsert(record(25, 2)).unwrap();
        tx.commit().unwrap();
        drop(db);
        let _ = std::fs::remove_file(fixture().join("LOCK"));
    }
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), dir.path());
    let db = Db::open(dir.path()).unwrap();
    let got = dump(&db, "c");
    let mut want = crate::common::Dump::new();
    for id in (0..20).filter(|i| *i != 3) {
        want.insert(id, model_entry(id, 1));
    }
    want.insert(25, model_entry(25, 2));
    assert_eq!(got, want);
    assert_eq!(got.values().next().map(|v| v.0.len()), Some(DIM));
    assert!(skysift::verify::verify(&skysift::io::RealVfs, dir.path()).ok());
}
