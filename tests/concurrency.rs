//! One writer, many readers, several processes.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use skysift::{Db, SearchParams, SearchScratch};

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

/// Reader threads used by the concurrency test (the issue asks for 16).
const READER_THREADS: usize = 16;
/// How long readers run against the live writer.
const READ_FOR: Duration = Duration::from_millis(2500);

/// Follows the writer through `db` (read-only) until `stop` on `threads` threads, checking that
/// every snapshot is a whole number of batches, never goes backwards, matches the model's count,
/// and answers exact and graph searches with `min(k, live)` hits. Returns snapshots checked.
fn follow(db: &Db, threads: usize, stop: Instant) -> u64 {
    let checked = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..threads {
            let checked = &checked;
            s.spawn(move || {
                let mut scratch = SearchScratch::default();
                let mut last = 0;
                while Instant::now() < stop {
                    db.refresh().unwrap();
                    let snap = db.snapshot();
                    let Ok(col) = snap.collection("c") else { continue };
                    let m = batches_in(&col);
                    assert!(m >= last, "went back from {last} to {m}");
                    last = m;
                    let n = col.count();
                    assert_eq!(n, model(m).len() as u64);
                    let q = [0.3 + t as f32 * 0.01; DIM];
                    let hits = col.search_exact(&q, 10, &mut scratch).unwrap();
                    assert_eq!(hits.len(), 10.min(n as usize));
                    let hits = col.search(&q, &SearchParams::k(10), &mut scratch).unwrap();
                    assert_eq!(hits.len(), 10.min(n as usize));
                    checked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    checked.into_inner()
}

/// Runs in a second process: a read-only follower of the database in `SKYSIFT_READER_CHILD`.
#[test]
fn reader_child() {
    let Ok(dir) = std::env::var("SKYSIFT_READER_CHILD") else { return };
    let reader = Db::builder(&dir).read_only(true).open().unwrap();
    let n = follow(&reader, 2, Instant::now() + READ_FOR);
    println!("reader child checked {n} snapshots");
}

/// One round by default; `SKYSIFT_CONCURRENCY_ROUNDS` sets more (the campaign script's row).
#[test]
fn readers_in_threads_and_another_process_follow_a_writer_that_flushes_and_compacts() {
    let rounds: u64 = std::env::var("SKYSIFT_CONCURRENCY_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let (mut here, mut there) = (0, 0);
    for round in 1..=rounds {
        let (h, t) = follow_round();
        here += h;
        there += t;
        println!(
            "concurrency round {round} ok: {h} snapshots checked by {READER_THREADS} threads, {t} by the reader process"
        );
    }
    println!("concurrency: rounds {rounds}, snapshots checked {here} in threads and {there} in the reader process");
}

/// A writer process loads, flushes and compacts; this process's reader threads and a reader
/// process follow it; a second writer is refused; the writer is killed and a new one takes over.
/// Returns the snapshots checked here and in the reader process.
fn follow_round() -> (u64, u64) {
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
    // A second writer process is refused at once while the child lives.
    let t = Instant::now();
    assert!(matches!(Db::open(dir.path()), Err(skysift::Error::Storage(skysift_storage::Error::Locked { .. }))));
    assert!(t.elapsed() < Duration::from_secs(1));
    // A second process follows the same database while this one runs its reader threads.
    let other = Command::new(&exe)
        .args(["concurrency::reader_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("SKYSIFT_READER_CHILD", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reader = Db::builder(dir.path()).read_only(true).open().unwrap();
    let checked = follow(&reader, READER_THREADS, Instant::now() + READ_FOR);
    assert!(checked > 0);
    let other = other.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&other.stdout);
    let there = text.split("reader child checked ").nth(1).and_then(|t| t.split(' ').next()?.parse::<u64>().ok());
    let there = there
        .filter(|_| other.status.success())
        .unwrap_or_else(|| panic!("{text}{}", String::from_utf8_lossy(&other.stderr)));
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
    (checked, there)
}
