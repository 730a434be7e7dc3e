//! One writer, many readers, several processes.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use skysift::{Db, SearchScratch};

use crate::common::{DIM, record, spec};
use crate::crash::{batches_in, batches_present, check_state, model};

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

#[test]
fn readers_in_threads_and_another_process_follow_a_writer_that_flushes_and_compacts() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(&exe)
        .args(["crash::crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("SKYSIFT_CRASH_CHILD", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the child to create the database.
    let t = Instant::now();
    while !dir.path().join("MANIFEST").exists() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    // A second writer process is refused while the child lives.
    assert!(Db::open(dir.path()).is_err());
    let reader = Db::builder(dir.path()).read_only(true).open().unwrap();
    let stop = Instant::now() + Duration::from_millis(1500);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let mut scratch = SearchScratch::default();
                let mut last = 0;
                while Instant::now() < stop {
                    reader.refresh().unwrap();
                    let snap = reader.snapshot();
                    let Ok(col) = snap.collection("c") else { continue };
                    // A snapshot is a whole number of batches and never goes backwards.
                    let m = batches_in(&col);
                    assert!(m >= last, "went back from {last} to {m}");
                    last = m;
                    let n = col.count();
                    assert_eq!(n, model(m).len() as u64);
                    let hits = col.search_exact(&[0.3; DIM], 10, &mut scratch).unwrap();
                    assert_eq!(hits.len(), 10.min(n as usize));
                }
            });
        }
    });
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
}
