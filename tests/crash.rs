//! Crash test: a child process writes batches (with flushes and compactions) and reports each
//! commit; the parent kills it with SIGKILL at random moments, reopens, and checks that every
//! reported batch is there, no partial batch is visible, and the state equals the model after
//! a whole number of batches.
//!
//! `SKYSIFT_CRASH_KILLS` sets the number of kills (default 120); `scripts/crash_loop.sh` runs
//! thousands. The seed is printed; `SKYSIFT_CRASH_SEED` replays one.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use skysift::Db;

use crate::common::{model_entry, record, spec};

/// Rows inserted per batch.
pub const BATCH: u64 = 40;

/// The model after `m` batches: id -> version.
pub fn model(m: u64) -> BTreeMap<u64, u64> {
    let mut s = BTreeMap::new();
    for b in 1..=m {
        apply(&mut s, b);
    }
    s
}

fn apply(s: &mut BTreeMap<u64, u64>, b: u64) {
    for id in b * BATCH..(b + 1) * BATCH {
        s.insert(id, 0);
    }
    if b > 1 {
        for id in ((b - 1) * BATCH..b * BATCH).filter(|id| id % 5 == 1) {
            s.insert(id, b);
        }
    }
    if b > 3 {
        for id in ((b - 3) * BATCH..(b - 2) * BATCH).filter(|id| id % 7 == 0) {
            s.remove(&id);
        }
    }
}

/// Writes batch `b` in one transaction.
pub fn write_batch(db: &Db, b: u64) {
    let mut tx = db.begin_write("c").unwrap();
    for id in b * BATCH..(b + 1) * BATCH {
        tx.insert(record(id, 0)).unwrap();
    }
    if b > 1 {
        for id in ((b - 1) * BATCH..b * BATCH).filter(|id| id % 5 == 1) {
            tx.upsert(record(id, b)).unwrap();
        }
    }
    if b > 3 {
        for id in ((b - 3) * BATCH..(b - 2) * BATCH).filter(|id| id % 7 == 0) {
            assert!(tx.delete(id).unwrap());
        }
    }
    tx.commit().unwrap();
}

/// The number of whole batches visible in `db`.
pub fn batches_present(db: &Db) -> u64 {
    batches_in(&db.snapshot().collection("c").unwrap())
}

/// The number of whole batches visible in a collection snapshot.
pub fn batches_in(col: &skysift::CollectionSnapshot) -> u64 {
    let mut b = 1;
    while (b * BATCH..(b + 1) * BATCH).any(|id| col.get(id).unwrap().is_some()) {
        b += 1;
    }
    b - 1
}

/// Checks that `db` holds exactly the model after `m` batches.
pub fn check_state(db: &Db, m: u64) {
    let col = db.snapshot().collection("c").unwrap();
    let want = model(m);
    assert_eq!(col.count(), want.len() as u64, "count after {m} batches");
    for (id, v) in &want {
        let r = col.get(*id).unwrap().unwrap_or_else(|| panic!("id {id} missing after {m} batches"));
        assert_eq!((r.vector, r.fields), model_entry(*id, *v), "id {id}");
    }
    // Nothing beyond batch m.
    assert!(col.get((m + 1) * BATCH).unwrap().is_none());
}

/// Runs in the child: opens, continues from the last whole batch, reports every commit.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("SKYSIFT_CRASH_CHILD") else { return };
    let db = Db::builder(&dir).flush_rows(1_000_000).open().unwrap();
    if db.snapshot().collection("c").is_err() {
        db.create_collection("c", spec()).unwrap();
    }
    let mut b = batches_present(&db) + 1;
    println!("start {b}");
    loop {
        write_batch(&db, b);
        println!("committed {b}");
        if b.is_multiple_of(4) {
            db.flush("c").unwrap();
        }
        if b.is_multiple_of(11) {
            db.compact("c").unwrap();
        }
        b += 1;
    }
}

/// Result of a kill campaign.
#[derive(Debug, Default)]
pub struct Campaign {
    /// Children killed.
    pub kills: u64,
    /// Reopens that succeeded and matched the model.
    pub reopened_ok: u64,
    /// Reported-committed batches missing after reopen.
    pub lost_batches: u64,
    /// Highest batch reached.
    pub batches: u64,
}

/// Kills a writer child `kills` times at random moments; returns the tally.
pub fn campaign(dir: &Path, kills: u64, seed: u64) -> Campaign {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let exe = std::env::current_exe().unwrap();
    let mut c = Campaign::default();
    let mut reported = 0u64;
    for _ in 0..kills {
        let mut child = Command::new(&exe)
            .args(["crash::crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env("SKYSIFT_CRASH_CHILD", dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("committed ") {
                    let _ = tx.send(n.trim().parse::<u64>().unwrap_or(0));
                }
            }
        });
        let delay = Duration::from_millis(rng.random_range(2..120));
        let deadline = Instant::now() + delay;
        while Instant::now() < deadline {
            while let Ok(n) = rx.try_recv() {
                reported = reported.max(n);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        reader.join().unwrap();
        while let Ok(n) = rx.try_recv() {
            reported = reported.max(n);
        }
        c.kills += 1;
        assert!(!status.success(), "the child must be killed, not exit");
        if !dir.join("MANIFEST").exists() {
            continue;
        }
        let db = Db::open(dir).expect("reopen after a kill");
        let m = batches_present(&db);
        if m < reported {
            c.lost_batches += reported - m;
        }
        check_state(&db, m);
        c.reopened_ok += 1;
        c.batches = m;
    }
    c
}

#[test]
fn kill9_loses_no_committed_batch() {
    let kills = std::env::var("SKYSIFT_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(120);
    let seed =
        std::env::var("SKYSIFT_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(rand::random::<u64>);
    println!("crash campaign seed {seed} (replay with SKYSIFT_CRASH_SEED={seed})");
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), kills, seed);
    println!(
        "crash campaign: kills {}, reopened OK {}, committed batches lost {}, batches reached {}",
        c.kills, c.reopened_ok, c.lost_batches, c.batches
    );
    assert_eq!(c.lost_batches, 0);
    assert!(c.batches > 0, "the writer made progress between kills");
    let report = skysift::verify::verify(&skysift::io::RealVfs, dir.path());
    assert!(report.ok(), "{report:?}");
}
