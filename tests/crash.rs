//! Crash test: a child process writes batches (with flushes and compactions) and reports each
//! commit; the parent kills it with SIGKILL at random moments, reopens, and checks that every
//! reported batch is there, no partial batch is visible, and the state equals the model after
//! a whole number of batches.
//!
//! `SKYSIFT_CRASH_KILLS` sets the number of kills (default 120); `scripts/crash_loop.sh` runs
//! thousands. `SKYSIFT_CRASH_JOBS` runs that many kill loops side by side (default 1), and
//! `SKYSIFT_CRASH_ROUND` starts a fresh database every that many kills (default 1000). The seed
//! is printed; `SKYSIFT_CRASH_SEED` replays one.

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

/// Applies batch `b` to the model `s`.
pub fn apply(s: &mut BTreeMap<u64, u64>, b: u64) {
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
    // A kill between the database's creation and the collection's leaves no collection: that is
    // the state before the first batch.
    db.snapshot().collection("c").map_or(0, |col| batches_in(&col))
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
    let snap = db.snapshot();
    let col = match snap.collection("c") {
        Err(skysift::Error::NoSuchCollection { .. }) if m == 0 => return,
        col => col.unwrap(),
    };
    let want = model(m);
    assert_eq!(col.count(), want.len() as u64, "count after {m} batches");
    for (id, v) in &want {
        let r = col.get(*id).unwrap().unwrap_or_else(|| panic!("id {id} missing after {m} batches"));
        assert_eq!((r.vector, r.fields), model_entry(*id, *v), "id {id}");
    }
    // Nothing beyond batch m.
    assert!(col.get((m + 1) * BATCH).unwrap().is_none());
}

/// The variable that makes the test binary a writer child: the database's directory.
const CHILD_ENV: &str = "SKYSIFT_CRASH_CHILD";
/// The test whose process becomes the writer child when [`CHILD_ENV`] is set; the child is not a
/// test of its own, so a run of the suite never runs it (and never passes it) alone.
const CHILD_TEST: &str = "crash::kill9_loses_no_committed_batch";

/// A command that starts a writer child on `dir`: it opens, continues from the last whole batch,
/// and reports every commit on stdout until it is killed.
pub fn writer_child(dir: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"]).env(CHILD_ENV, dir);
    c
}

/// The writer child's work; it never returns (its parent kills it).
fn crash_child(dir: &Path) -> ! {
    println!("opening");
    let t = Instant::now();
    let db = Db::builder(dir).flush_rows(1_000_000).open().unwrap();
    println!("opened {}", t.elapsed().as_micros());
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
    /// Kills that landed before the child had created the database (nothing to reopen).
    pub before_create: u64,
    /// Reported-committed batches missing after reopen.
    pub lost_batches: u64,
    /// Highest batch reached (summed over databases when tallies are added).
    pub batches: u64,
    /// Kills that landed while the child was opening the database (recovering from the kill
    /// before).
    pub in_recovery: u64,
    /// The longest open seen, in microseconds.
    pub open_us_max: u64,
}

/// What the writer child reports on its stdout.
enum Child {
    /// It is about to open (and recover) the database.
    Opening,
    /// The open (recovery included) took this many microseconds.
    Opened(u64),
    /// Batch `n` is committed.
    Committed(u64),
}

impl Child {
    /// Adds this message to the highest batch reported, whether the open began, and the duration
    /// of the last open.
    fn tally(self, reported: &mut u64, opening: &mut bool, open_us: &mut u64) {
        match self {
            Child::Opening => *opening = true,
            Child::Opened(us) => *open_us = us,
            Child::Committed(n) => *reported = (*reported).max(n),
        }
    }
}

/// Kills a writer child `kills` times at random moments; returns the tally.
pub fn campaign(dir: &Path, kills: u64, seed: u64) -> Campaign {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut c = Campaign::default();
    let mut reported = 0u64;
    // The duration of the last reopen, in microseconds.
    let mut open_us = 1_000u64;
    for _ in 0..kills {
        let mut child = writer_child(dir).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        // The reader sends `Opening`, then `Opened` with the open's duration, then each commit.
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let (mut opening, mut opened) = (false, false);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The test harness prints `test crash::kill9_loses_no_committed_batch ... ` before
                // the first line.
                let line = line.rsplit_once("... ").map_or(line.as_str(), |(_, l)| l);
                if line == "opening" {
                    opening = true;
                    let _ = tx.send(Child::Opening);
                } else if let Some(us) = line.strip_prefix("opened ") {
                    opened = true;
                    let _ = tx.send(Child::Opened(us.trim().parse().unwrap_or(0)));
                } else if let Some(n) = line.strip_prefix("committed ") {
                    let _ = tx.send(Child::Committed(n.trim().parse::<u64>().unwrap_or(0)));
                }
            }
            opening && !opened
        });
        // One kill in four lands while the child reopens (recovers from the kill before): right
        // after it says it is opening, within the duration of the last open.
        let early = rng.random_bool(0.25) && dir.join("MANIFEST").exists();
        let mut opening = false;
        let t = Instant::now();
        if early {
            while !opening && t.elapsed() < Duration::from_secs(5) {
                if let Ok(m) = rx.recv_timeout(Duration::from_millis(50)) {
                    m.tally(&mut reported, &mut opening, &mut open_us);
                }
            }
            std::thread::sleep(Duration::from_micros(rng.random_range(0..open_us.max(1))));
        } else {
            let deadline = t + Duration::from_millis(rng.random_range(2..120));
            while Instant::now() < deadline {
                while let Ok(m) = rx.try_recv() {
                    m.tally(&mut reported, &mut opening, &mut open_us);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        if reader.join().unwrap() && dir.join("MANIFEST").exists() {
            c.in_recovery += 1;
        }
        while let Ok(m) = rx.try_recv() {
            m.tally(&mut reported, &mut opening, &mut open_us);
        }
        c.open_us_max = c.open_us_max.max(open_us);
        c.kills += 1;
        assert!(!status.success(), "the child must be killed, not exit");
        if !dir.join("MANIFEST").exists() {
            c.before_create += 1;
            continue;
        }
        c.reopened(dir, reported);
    }
    c
}

impl Campaign {
    /// Adds the tally of another campaign (on another database): batches reached add up.
    fn add(&mut self, o: &Campaign) {
        self.kills += o.kills;
        self.reopened_ok += o.reopened_ok;
        self.before_create += o.before_create;
        self.lost_batches += o.lost_batches;
        self.batches += o.batches;
        self.in_recovery += o.in_recovery;
        self.open_us_max = self.open_us_max.max(o.open_us_max);
    }

    /// Reopens the database after a kill, counts the batches reported committed that are missing,
    /// and checks the rest against the model.
    fn reopened(&mut self, dir: &Path, reported: u64) {
        let db = Db::open(dir).expect("reopen after a kill");
        let m = batches_present(&db);
        self.lost_batches += reported.saturating_sub(m);
        check_state(&db, m);
        self.reopened_ok += 1;
        self.batches = m;
    }
}

/// The child can be killed after it created the database and before it created the collection.
#[test]
fn a_kill_before_the_collection_exists_reopens_as_no_batch() {
    let dir = tempfile::tempdir().unwrap();
    drop(Db::open(dir.path()).unwrap());
    let mut c = Campaign::default();
    c.reopened(dir.path(), 0);
    assert_eq!((c.reopened_ok, c.batches, c.lost_batches), (1, 0, 0));
    // Once a batch was reported, the same state counts it as lost.
    c.reopened(dir.path(), 1);
    assert_eq!(c.lost_batches, 1);
}

/// Also the writer child's entry: with [`CHILD_ENV`] set, the process writes until it is killed.
#[test]
fn kill9_loses_no_committed_batch() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        crash_child(Path::new(&dir));
    }
    let var = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let kills = var("SKYSIFT_CRASH_KILLS", 120);
    // Kill loops run side by side (each with its own database), and each starts a fresh database
    // every `round` kills: the reopen check reads every row, so one database grown by 10,000 kills
    // would make the campaign quadratic.
    let jobs = var("SKYSIFT_CRASH_JOBS", 1).clamp(1, 64);
    let round = var("SKYSIFT_CRASH_ROUND", 1000).max(1);
    let seed = var("SKYSIFT_CRASH_SEED", rand::random::<u64>());
    println!("crash campaign seed {seed} (replay with SKYSIFT_CRASH_SEED={seed})");
    let t = Instant::now();
    // Per loop: its tally, the databases it used, and the verify reports that failed (checked
    // after the summary is printed, so a failing campaign still reports its figures).
    let tallies: Vec<(Campaign, u64, Vec<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..jobs)
            .map(|j| {
                // This loop's share of the kills.
                let share = kills / jobs + u64::from(j < kills % jobs);
                s.spawn(move || {
                    let (mut total, mut rounds, mut failed) = (Campaign::default(), 0u64, Vec::new());
                    let mut left = share;
                    while left > 0 {
                        let n = left.min(round);
                        let dir = tempfile::tempdir().unwrap();
                        total.add(&campaign(dir.path(), n, seed ^ (j << 48) ^ rounds));
                        let report = skysift::verify::verify(&skysift::io::RealVfs, dir.path());
                        if !report.ok() {
                            failed.push(format!("loop {j}, database {rounds}: {report:?}"));
                        }
                        rounds += 1;
                        left -= n;
                    }
                    (total, rounds, failed)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a kill loop panicked")).collect()
    });
    let mut c = Campaign::default();
    let (mut rounds, mut failed) = (0, Vec::new());
    for (loop_tally, loop_rounds, loop_failed) in tallies {
        c.add(&loop_tally);
        rounds += loop_rounds;
        failed.extend(loop_failed);
    }
    println!(
        "crash campaign: kills {}, reopened OK {}, killed before the database existed {}, committed batches lost {}, \
         batches reached {}, killed during recovery {} (longest open {:.1} ms; {jobs} loops, {rounds} fresh databases \
         of up to {round} kills, {:.0} s)",
        c.kills,
        c.reopened_ok,
        c.before_create,
        c.lost_batches,
        c.batches,
        c.in_recovery,
        c.open_us_max as f64 / 1e3,
        t.elapsed().as_secs_f64()
    );
    assert_eq!(c.lost_batches, 0);
    assert_eq!(c.reopened_ok + c.before_create, c.kills, "every kill is reopened or came before the database");
    assert!(c.batches > 0, "the writer made progress between kills");
    assert!(failed.is_empty(), "{failed:?}");
}

/// Kills `skysift import` at random moments (during model load, encoding, commits and the open of
/// the run before), reopens, and checks: every file the report says was imported is in the database
/// (report lines are written after their commit), there are never more records than files, the
/// database verifies, and a run that ends on its own holds exactly one record per file (resumption
/// skipped what was committed and added no duplicates). Then the next round starts from an empty
/// database. `SKYSIFT_IMPORT_KILLS` sets the number of kills (default 4); the seed is printed and
/// `SKYSIFT_CRASH_SEED` replays one.
#[test]
fn import_kill9_loses_no_committed_file() {
    let kills: u64 = std::env::var("SKYSIFT_IMPORT_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let seed =
        std::env::var("SKYSIFT_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(rand::random::<u64>);
    println!("import crash seed {seed} (replay with SKYSIFT_CRASH_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let d = tempfile::tempdir().unwrap();
    let arch = d.path().join("archive");
    std::fs::create_dir_all(&arch).unwrap();
    let mut n = 0u64;
    for class in ["Beach", "Forest", "Port", "River"] {
        for e in std::fs::read_dir(repo.join("samples/aid-mini").join(class)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "jpg") {
                std::fs::copy(&p, arch.join(p.file_name().unwrap())).unwrap();
                n += 1;
            }
        }
    }
    let db = d.path().join("db");
    let count = |db: &Path| -> u64 {
        if !db.join("MANIFEST").exists() {
            return 0;
        }
        let db = Db::builder(db).read_only(true).open().expect("reopen after a kill");
        db.snapshot().collection("images").map_or(0, |c| c.count())
    };
    let (mut killed, mut reopened, mut lost, mut completed, mut runs) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut before = 0u64;
    let mut full: Option<Duration> = None;
    while killed < kills {
        runs += 1;
        let report = d.path().join(format!("report-{runs}.jsonl"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_skysift"))
            .current_dir(repo)
            .arg("import")
            .args([&db, &arch])
            .args(["--device", "cpu", "--batch-size", "2", "--commit-every", "2", "--workers", "1", "--threads", "1"])
            .args(["--no-progress", "--report"])
            .arg(&report)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The first run is not killed and times a whole import; every later one is killed at a
        // random moment within that time (a run that beats it finishes and starts a new round).
        let started = Instant::now();
        let deadline = started + full.map_or(Duration::from_secs(600), |f| f.mul_f64(rng.random_range(0.0..1.0)));
        let exited = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if exited.is_none() {
            child.kill().unwrap();
            child.wait().unwrap();
            killed += 1;
        }
        let imported = std::fs::read_to_string(&report)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"kind\":\"file\"") && l.contains("\"status\":\"imported\""))
            .count() as u64;
        let now = count(&db);
        lost += (before + imported).saturating_sub(now);
        assert!(now <= n, "{now} records from {n} files after run {runs}");
        // A kill between the directory's creation and the first manifest leaves no database yet.
        if db.join("MANIFEST").exists() {
            let v = skysift::verify::verify(&skysift::io::RealVfs, &db);
            assert!(v.ok(), "run {runs}: {v:?}");
        }
        reopened += u64::from(exited.is_none());
        match exited {
            Some(status) if status.success() && now == n => {
                full.get_or_insert(started.elapsed());
                completed += 1;
                std::fs::remove_dir_all(&db).unwrap();
                before = 0;
            }
            Some(status) => panic!("run {runs} ended on its own with {status} and {now} of {n} records"),
            None => before = now,
        }
    }
    println!(
        "import crash campaign: kills {killed}, reopened OK {reopened}, committed files lost {lost}, imports completed {completed}, files {n}"
    );
    assert_eq!(lost, 0);
}
