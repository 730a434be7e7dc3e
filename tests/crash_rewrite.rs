//! Crash test of the rewrites a database sees after its import: `label --field` and `classify
//! --field` (records rewritten in batches, then a compaction: [`Session::store_values`]), schema
//! evolution (the first store into a field adds it: `add_field`), and `attach` of sealed shards.
//!
//! A child process runs one operation; the parent kills it with SIGKILL at a random moment within
//! the time such an operation takes, reopens the database and checks: every record is there once
//! (none lost, none duplicated), vectors and the import's fields are untouched, every label is
//! either the record's value before the operation or the operation's new value, a field is in the
//! schema or not (never half added), and each shard is attached whole or not at all. A run that
//! ends on its own must have done all of its operation.
//!
//! `SKYSIFT_REWRITE_KILLS` sets the number of kills (default 12); the seed is printed and
//! `SKYSIFT_CRASH_SEED` replays one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use skysift::Db;
use skysift::schema::{FieldType, Value};
use skysift::session::Session;

use crate::common::{copy_tree, record, spec, vector};

/// Records of the main collection: three label batches and a partial one.
const RECORDS: u64 = 3_500;
/// Shards prepared for attach, and records in each.
const SHARDS: u64 = 6;
const SHARD_ROWS: u64 = 150;
/// The first id of shard `s`.
fn shard_base(s: u64) -> u64 {
    1_000_000 + s * 10_000
}
/// Label fields a database gets before the campaign starts again from the template.
const MAX_LABEL_FIELDS: u64 = 24;

/// The variable that makes the test binary a child: `DIR ROUND`.
const CHILD_ENV: &str = "SKYSIFT_REWRITE_CHILD";
const CHILD_TEST: &str = "crash_rewrite::kill9_during_labels_new_fields_and_attach_loses_nothing";

/// What round `r` of a database does: every fifth round attaches the next shard (while there are
/// shards), the others store labels, into a new field every third round (its first store adds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Stores round `r`'s labels into field `label{f}`.
    Label { field: u64 },
    /// Attaches shard `s`.
    Attach(u64),
}

impl Op {
    fn of(round: u64, epoch_start: u64) -> Op {
        let r = round - epoch_start;
        if r % 5 == 4 && r / 5 < SHARDS {
            return Op::Attach(r / 5);
        }
        Op::Label { field: r / 3 }
    }

    /// 0: labels into an existing field, 1: into a new one (`add_field` first), 2: attach.
    fn kind(self, state: &Expect) -> usize {
        match self {
            Op::Label { field } if state.labels.contains_key(&field_name(field)) => 0,
            Op::Label { .. } => 1,
            Op::Attach(_) => 2,
        }
    }
}

/// Round `r`'s label of record `id`.
fn label(round: u64, id: u64) -> String {
    format!("r{round}:{}", id % 7)
}

fn field_name(f: u64) -> String {
    format!("label{f}")
}

/// The child: runs round `round`'s operation on `dir` and exits.
fn child(dir: &Path, round: u64, epoch_start: u64, shards: &Path) -> ! {
    let db = Db::builder(dir).flush_rows(1_000_000).open().unwrap();
    match Op::of(round, epoch_start) {
        Op::Label { field } => {
            let mut s = Session::open(db, Some("c"), None).unwrap();
            let values: Vec<(u64, Value)> = (0..RECORDS).map(|id| (id, Value::Keyword(label(round, id)))).collect();
            s.store_values(&field_name(field), FieldType::Keyword, &values, &mut |_, _| {}).unwrap();
        }
        Op::Attach(sh) => {
            db.attach("c", &[shards.join(format!("shard{sh}"))], false).unwrap();
        }
    }
    println!("done {round}");
    std::process::exit(0);
}

/// What the parent counts.
#[derive(Debug, Default)]
struct Tally {
    kills: [u64; 3],
    /// Kills after which the reopened database passed every check.
    reopened_ok: u64,
    completed: u64,
    lost: u64,
    duplicated: u64,
    changed: u64,
    neither_old_nor_new: u64,
    incomplete_runs: u64,
    partial_shards: u64,
    epochs: u64,
}

impl Tally {
    /// Everything counted that must not happen.
    fn wrong(&self) -> u64 {
        self.lost
            + self.duplicated
            + self.changed
            + self.neither_old_nor_new
            + self.incomplete_runs
            + self.partial_shards
    }
}

/// The state the parent expects: per label field, each record's value (absent: never stored).
#[derive(Debug, Default, Clone)]
struct Expect {
    labels: BTreeMap<String, BTreeMap<u64, String>>,
    shards: BTreeSet<u64>,
}

/// Reopens `dir`, checks it against `before` and what `op` of `round` may have done (all of it
/// when `done`), and returns the state seen.
fn check(dir: &Path, before: &Expect, op: Op, round: u64, done: bool, t: &mut Tally) -> Expect {
    let v = skysift::verify::verify(&skysift::io::RealVfs, dir);
    assert!(v.ok(), "round {round} ({op:?}): {v:?}");
    let db = Db::builder(dir).read_only(true).open().expect("reopen after a kill");
    let col = db.snapshot().collection("c").unwrap();
    let ids = col.ids().unwrap();
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    t.duplicated += (ids.len() - unique.len()) as u64 + col.count().saturating_sub(unique.len() as u64);
    let mut seen = Expect::default();
    // Shards: all of a shard's rows or none.
    for s in 0..SHARDS {
        let present = (0..SHARD_ROWS).filter(|j| unique.contains(&(shard_base(s) + j))).count() as u64;
        if present == SHARD_ROWS {
            seen.shards.insert(s);
        } else if present > 0 {
            t.partial_shards += 1;
        }
    }
    for s in &before.shards {
        t.lost += u64::from(!seen.shards.contains(s)) * SHARD_ROWS;
    }
    let allowed_new = match op {
        Op::Attach(s) => {
            t.incomplete_runs += u64::from(done && !seen.shards.contains(&s));
            None
        }
        Op::Label { field } => Some(field_name(field)),
    };
    let schema = col.schema();
    let label_fields: Vec<String> =
        schema.user_fields().iter().filter(|f| f.name.starts_with("label")).map(|f| f.name.clone()).collect();
    for f in before.labels.keys() {
        assert!(label_fields.contains(f), "round {round}: field {f} vanished from the schema");
    }
    for f in &label_fields {
        assert!(
            before.labels.contains_key(f) || allowed_new.as_deref() == Some(f.as_str()),
            "round {round}: field {f} appeared from nowhere"
        );
        seen.labels.insert(f.clone(), BTreeMap::new());
    }
    for id in 0..RECORDS {
        let Some(r) = col.get(id).unwrap() else {
            t.lost += 1;
            continue;
        };
        let want = record(id, 0);
        let base: Vec<&(String, Value)> = r.fields.iter().filter(|(n, _)| !n.starts_with("label")).collect();
        let mut want_fields: Vec<&(String, Value)> = want.fields.iter().collect();
        want_fields.sort_by(|a, b| a.0.cmp(&b.0));
        let mut base = base;
        base.sort_by(|a, b| a.0.cmp(&b.0));
        if r.vector != vector(id, 0) || base != want_fields {
            t.changed += 1;
        }
        for (n, v) in &r.fields {
            let Some(m) = seen.labels.get_mut(n) else { continue };
            let Value::Keyword(got) = v else {
                t.neither_old_nor_new += 1;
                continue;
            };
            let old = before.labels.get(n).and_then(|m| m.get(&id));
            let new = allowed_new.as_deref() == Some(n.as_str());
            if old != Some(got) && !(new && *got == label(round, id)) {
                t.neither_old_nor_new += 1;
            }
            m.insert(id, got.clone());
        }
        // A label that was there is never dropped.
        for (n, m) in &before.labels {
            if m.contains_key(&id) && !seen.labels.get(n).is_some_and(|s| s.contains_key(&id)) {
                t.neither_old_nor_new += 1;
            }
        }
    }
    if let (true, Some(f)) = (done, &allowed_new) {
        let all =
            seen.labels.get(f).map_or(0, |m| (0..RECORDS).filter(|id| m.get(id) == Some(&label(round, *id))).count());
        t.incomplete_runs += u64::from(all as u64 != RECORDS);
    }
    seen
}

/// Writes the template database (the main collection) and the shards under `dir`; returns their
/// paths.
fn prepare(dir: &Path) -> (PathBuf, PathBuf) {
    let template = dir.join("template");
    {
        let db = Db::open(&template).unwrap();
        db.create_collection("c", spec()).unwrap();
        let mut tx = db.begin_write("c").unwrap();
        for id in 0..RECORDS {
            tx.insert(record(id, 0)).unwrap();
        }
        tx.commit().unwrap();
        db.flush("c").unwrap();
    }
    let shards = dir.join("shards");
    for s in 0..SHARDS {
        let db = Db::open(shards.join(format!("shard{s}"))).unwrap();
        db.create_collection("c", spec()).unwrap();
        let mut tx = db.begin_write("c").unwrap();
        for j in 0..SHARD_ROWS {
            let id = shard_base(s) + j;
            tx.insert(record(id, 0)).unwrap();
        }
        tx.commit().unwrap();
        db.flush("c").unwrap();
    }
    (template, shards)
}

/// Also the child's entry: with [`CHILD_ENV`] set, the process runs one round's operation.
#[test]
fn kill9_during_labels_new_fields_and_attach_loses_nothing() {
    if let Ok(v) = std::env::var(CHILD_ENV) {
        let mut it = v.split('|');
        let (dir, round, start, shards) =
            (it.next().unwrap(), it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        child(Path::new(dir), round.parse().unwrap(), start.parse().unwrap(), Path::new(shards));
    }
    let kills: u64 = std::env::var("SKYSIFT_REWRITE_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    let seed =
        std::env::var("SKYSIFT_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(rand::random::<u64>);
    println!("rewrite crash seed {seed} (replay with SKYSIFT_CRASH_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let d = tempfile::tempdir().unwrap();
    let (template, shards) = prepare(d.path());
    let mut t = Tally::default();
    // The duration of a whole run of each kind, once seen (the first run of a kind is not killed).
    let mut full: [Option<Duration>; 3] = [None; 3];
    let mut round = 0u64;
    let mut epoch_start = 0u64;
    let mut dir = PathBuf::new();
    let mut state = Expect::default();
    while t.kills.iter().sum::<u64>() < kills {
        if round == epoch_start {
            t.epochs += 1;
            dir = d.path().join(format!("db{}", t.epochs));
            copy_tree(&template, &dir);
            state = Expect::default();
        }
        let op = Op::of(round, epoch_start);
        let kind = op.kind(&state);
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{}|{round}|{epoch_start}|{}", dir.display(), shards.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let started = Instant::now();
        let mut child = c.spawn().unwrap();
        let deadline = full[kind].map(|f| started + f.mul_f64(rng.random_range(0.0..1.2)));
        let exited = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let done = match exited {
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                t.kills[kind] += 1;
                false
            }
            Some(status) => {
                assert!(status.success(), "round {round} ({op:?}) failed on its own: {status}");
                full[kind].get_or_insert(started.elapsed());
                t.completed += 1;
                true
            }
        };
        let wrong = t.wrong();
        state = check(&dir, &state, op, round, done, &mut t);
        t.reopened_ok += u64::from(!done && t.wrong() == wrong);
        round += 1;
        let Op::Label { field } = Op::of(round, epoch_start) else { continue };
        if field >= MAX_LABEL_FIELDS {
            epoch_start = round;
        }
    }
    println!(
        "rewrite crash campaign: kills {} (label {}, new field {}, attach {}), reopened OK {}, runs completed {}, records lost {}, \
         duplicated {}, changed {}, labels neither old nor new {}, runs that ended short {}, shards partly attached {}, \
         databases {}",
        t.kills.iter().sum::<u64>(),
        t.kills[0],
        t.kills[1],
        t.kills[2],
        t.reopened_ok,
        t.completed,
        t.lost,
        t.duplicated,
        t.changed,
        t.neither_old_nor_new,
        t.incomplete_runs,
        t.partial_shards,
        t.epochs
    );
    assert_eq!(
        (t.lost, t.duplicated, t.changed, t.neither_old_nor_new, t.incomplete_runs, t.partial_shards),
        (0, 0, 0, 0, 0, 0)
    );
}
