//! `Db::attach` and `skysift attach`: shards published in one commit, checked before anything
//! is written, idempotent, and all-or-nothing across kill -9.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use skysift::schema::{FieldType, Metric, Value};
use skysift::{CollectionSpec, Db, Error, NewRecord};

use crate::common::{DIM, dump, record, spec};

/// A shard database at `dir` with collection `images` holding `ids` (flushed to segments).
fn shard(dir: &Path, ids: impl IntoIterator<Item = u64>, segments: usize) -> Db {
    let db = Db::open(dir).unwrap();
    db.create_collection("images", spec()).unwrap();
    let ids: Vec<u64> = ids.into_iter().collect();
    for part in ids.chunks(ids.len().div_ceil(segments.max(1)).max(1)) {
        let mut tx = db.begin_write("images").unwrap();
        for &id in part {
            tx.insert(record(id, 0)).unwrap();
        }
        tx.commit().unwrap();
        db.flush("images").unwrap();
    }
    db
}

fn target(dir: &Path) -> Db {
    let db = Db::open(dir).unwrap();
    db.create_collection("images", spec()).unwrap();
    db
}

#[test]
fn shards_attach_in_one_commit_with_the_same_records_and_search_results() {
    let d = tempfile::tempdir().unwrap();
    // The reference: one database that got every record directly.
    let all = shard(&d.path().join("all"), 0..600, 1);
    let _a = shard(&d.path().join("staging/a"), 0..300, 2);
    let _b = shard(&d.path().join("staging/b"), 300..600, 1);
    let db = target(&d.path().join("db"));
    let before = db.snapshot().generation();
    let done = db.attach("images", &[d.path().join("staging")], false).unwrap();
    assert_eq!(done.shards.len(), 2);
    assert_eq!(done.attached.len(), 3);
    assert_eq!(done.rows(), 600);
    assert_eq!(db.snapshot().generation(), before + 1, "one manifest publication");
    assert_eq!(dump(&db, "images"), dump(&all, "images"));
    // Graphs travelled with their segments: every attached segment keeps its index.
    let col = db.snapshot().collection("images").unwrap();
    let reference = all.snapshot().collection("images").unwrap();
    let q = crate::common::vector(12_345, 1);
    let mut scratch = skysift::SearchScratch::default();
    let ours: Vec<u64> = col.search_exact(&q, 10, &mut scratch).unwrap().iter().map(|h| h.id).collect();
    let theirs: Vec<u64> = reference.search_exact(&q, 10, &mut scratch).unwrap().iter().map(|h| h.id).collect();
    assert_eq!(ours, theirs);
    let f = col.prepare_filter("class = 'c2'").unwrap().count();
    assert_eq!(f, reference.prepare_filter("class = 'c2'").unwrap().count());
    drop((col, db));
    let v = skysift::verify::verify(&skysift::io::RealVfs, &d.path().join("db"));
    assert!(v.ok(), "{v:?}");
}

#[test]
fn a_second_attach_of_the_same_shard_is_a_no_op() {
    let d = tempfile::tempdir().unwrap();
    let _a = shard(&d.path().join("a"), 0..50, 1);
    let db = target(&d.path().join("db"));
    db.attach("images", &[d.path().join("a")], false).unwrap();
    let generation = db.snapshot().generation();
    let again = db.attach("images", &[d.path().join("a")], false).unwrap();
    assert!(again.attached.is_empty(), "{again:?}");
    assert_eq!(again.already_attached.len(), 1);
    assert_eq!(db.snapshot().generation(), generation, "nothing published");
    assert_eq!(db.snapshot().collection("images").unwrap().count(), 50);
    // Even after a reopen (content ids are derived from the files, not kept in memory).
    drop(db);
    let db = Db::open(d.path().join("db")).unwrap();
    assert!(db.attach("images", &[d.path().join("a")], false).unwrap().attached.is_empty());
}

#[test]
fn collisions_are_refused_or_replaced_with_upsert() {
    let d = tempfile::tempdir().unwrap();
    let db = target(&d.path().join("db"));
    let mut tx = db.begin_write("images").unwrap();
    for id in 0..20 {
        tx.insert(record(id, 0)).unwrap();
    }
    tx.commit().unwrap();
    let s = Db::open(d.path().join("s")).unwrap();
    s.create_collection("images", spec()).unwrap();
    let mut tx = s.begin_write("images").unwrap();
    for id in 10..30 {
        tx.insert(record(id, 1)).unwrap();
    }
    tx.commit().unwrap();
    s.flush("images").unwrap();
    drop(s);
    let before = dump(&db, "images");
    let err = db.attach("images", &[d.path().join("s")], false).unwrap_err();
    assert!(matches!(err, Error::Storage(skysift_storage::Error::IdCollision { id: 10, .. })), "{err}");
    assert!(err.to_string().contains("--upsert"), "{err}");
    assert_eq!(dump(&db, "images"), before, "a refused attach changes nothing");
    let done = db.attach("images", &[d.path().join("s")], true).unwrap();
    assert_eq!(done.replaced, 10);
    let after = dump(&db, "images");
    assert_eq!(after.len(), 30);
    assert_eq!(after[&5], crate::common::model_entry(5, 0));
    assert_eq!(after[&15], crate::common::model_entry(15, 1));
    // Two shards holding the same id collide with each other, upsert or not.
    let _x = shard(&d.path().join("x"), 100..110, 1);
    let y = Db::open(d.path().join("y")).unwrap();
    y.create_collection("images", spec()).unwrap();
    let mut tx = y.begin_write("images").unwrap();
    tx.insert(record(105, 3)).unwrap();
    tx.commit().unwrap();
    y.flush("images").unwrap();
    drop(y);
    let err = db.attach("images", &[d.path().join("x"), d.path().join("y")], true).unwrap_err();
    assert!(matches!(err, Error::Storage(skysift_storage::Error::IdCollision { id: 105, .. })), "{err}");
}

#[test]
fn a_shard_of_another_schema_dimension_or_model_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let db = target(&d.path().join("db"));
    let refuse = |dir: &str, spec: CollectionSpec, params: Vec<(String, String)>| -> Error {
        let path = d.path().join(dir);
        let s = Db::open(&path).unwrap();
        let mut spec = spec;
        spec.params.extend(params);
        s.create_collection("images", spec).unwrap();
        let mut tx = s.begin_write("images").unwrap();
        tx.insert(NewRecord::new(1, vec![0.5; s.snapshot().collection("images").unwrap().schema().dim as usize]))
            .unwrap();
        tx.commit().unwrap();
        s.flush("images").unwrap();
        drop(s);
        let err = db.attach("images", &[path], false).unwrap_err();
        assert_eq!(db.snapshot().collection("images").unwrap().count(), 0);
        err
    };
    let e = refuse("dim", CollectionSpec::new(DIM as u32 + 1, Metric::InnerProduct), Vec::new());
    assert!(matches!(e, Error::Storage(skysift_storage::Error::AttachSchema { .. })), "{e}");
    assert!(e.to_string().contains("dim 9"), "{e}");
    let e = refuse("metric", CollectionSpec::new(DIM as u32, Metric::Cosine), Vec::new());
    assert!(matches!(e, Error::Storage(skysift_storage::Error::AttachSchema { .. })), "{e}");
    let e = refuse("type", spec().field("extra", FieldType::Integer).field("zz", FieldType::Bool), Vec::new());
    assert!(matches!(e, Error::Storage(skysift_storage::Error::AttachSchema { .. })), "{e}");
    let model = skysift::encode::Provenance {
        model_id: "other-model".into(),
        fingerprint: skysift::encode::Fingerprint([7; 32]),
        dim: DIM,
        preprocessing: String::new(),
    };
    let e = refuse("model", spec(), model.to_params());
    assert!(matches!(e, Error::AttachRefused { .. }), "{e}");
    assert!(e.to_string().contains("provenance") || e.to_string().contains("model"), "{e}");
    // With a model on both sides, the fingerprints must agree.
    let ours = skysift::encode::Provenance { model_id: "ours".into(), ..model.clone() };
    let with_model = Db::open(d.path().join("db2")).unwrap();
    let mut s = spec();
    s.params
        .extend(skysift::encode::Provenance { fingerprint: skysift::encode::Fingerprint([8; 32]), ..ours }.to_params());
    with_model.create_collection("images", s).unwrap();
    let e = with_model.attach("images", &[d.path().join("model")], false).unwrap_err();
    assert!(e.to_string().contains("other-model"), "{e}");
    // Unflushed rows in a shard are refused with what to do.
    let path = d.path().join("unflushed");
    let s = Db::open(&path).unwrap();
    s.create_collection("images", spec()).unwrap();
    let mut tx = s.begin_write("images").unwrap();
    tx.insert(record(1, 0)).unwrap();
    tx.commit().unwrap();
    drop(s);
    let e = db.attach("images", &[path], false).unwrap_err();
    assert!(e.to_string().contains("compact"), "{e}");
}

/// Flips one byte in the middle of the first segment file of `shard`.
fn damage_first_segment(shard: &Path) -> PathBuf {
    let db = Db::builder(shard).read_only(true).open().unwrap();
    let path = db.snapshot().collection("images").unwrap().state().segments[0].segment.path().to_path_buf();
    drop(db);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_damaged_staged_segment_is_refused_and_nothing_is_attached() {
    let d = tempfile::tempdir().unwrap();
    let _good = shard(&d.path().join("staging/a"), 0..100, 1);
    let _bad = shard(&d.path().join("staging/b"), 100..200, 1);
    let damaged = damage_first_segment(&d.path().join("staging/b"));
    let db = target(&d.path().join("db"));
    let err = db.attach("images", &[d.path().join("staging")], false).unwrap_err();
    assert!(err.to_string().contains(&damaged.display().to_string()), "{err}");
    assert!(
        matches!(&err, Error::Storage(e) if e.is_corruption()) || matches!(&err, Error::Storage(_)),
        "typed storage error: {err}"
    );
    assert_eq!(db.snapshot().collection("images").unwrap().count(), 0, "all or none");
    // The writer is not poisoned by a refused shard.
    db.attach("images", &[d.path().join("staging/a")], false).unwrap();
    assert_eq!(db.snapshot().collection("images").unwrap().count(), 100);
}

#[test]
fn skysift_attach_on_the_command_line() {
    let d = tempfile::tempdir().unwrap();
    let _a = shard(&d.path().join("a"), 0..40, 1);
    let _b = shard(&d.path().join("b"), 40..90, 1);
    drop(target(&d.path().join("db")));
    let run = |args: &[&Path]| {
        Command::new(env!("CARGO_BIN_EXE_skysift")).arg("attach").args(args).arg("--json").output().unwrap()
    };
    let (db, col) = (d.path().join("db"), PathBuf::from("images"));
    let out = run(&[&db, &col, &d.path().join("a"), &d.path().join("b")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rows"], 90);
    assert_eq!(v["count"], 90);
    let out = run(&[&db, &col, &d.path().join("a")]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["already_attached"].as_array().map(Vec::len), Some(1));
    let out = run(&[&db, &col, &d.path().join("nowhere")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere"));
}

/// Kills `skysift attach` at random moments: after each kill the collection holds either none
/// or all of the shards' records, `verify` is clean, and a rerun completes the attach.
#[test]
fn kill_9_during_attach_leaves_none_or_all() {
    let rounds: u64 = std::env::var("SKYSIFT_ATTACH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let seed: u64 = std::env::var("SKYSIFT_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |t| t.as_secs())
    });
    println!("attach kill loop: seed {seed} (SKYSIFT_SEED), rounds {rounds} (SKYSIFT_ATTACH_KILLS)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let d = tempfile::tempdir().unwrap();
    // Enough rows that the copy takes a while (several segments of 2,000 rows each).
    let ids_a: Vec<u64> = (0..6_000).collect();
    let ids_b: Vec<u64> = (6_000..10_000).collect();
    let _a = shard(&d.path().join("staging/a"), ids_a, 3);
    let _b = shard(&d.path().join("staging/b"), ids_b, 2);
    let (mut killed, mut none, mut all, mut completed) = (0u64, 0u64, 0u64, 0u64);
    let mut full: Option<Duration> = None;
    for round in 0..rounds {
        let db = d.path().join(format!("db-{round}"));
        let base = Db::open(&db).unwrap();
        base.create_collection("images", spec()).unwrap();
        let mut tx = base.begin_write("images").unwrap();
        tx.insert(record(50_000, 0).with("class", Value::Keyword("mine".into()))).unwrap();
        tx.commit().unwrap();
        drop(base);
        let mut child = Command::new(env!("CARGO_BIN_EXE_skysift"))
            .arg("attach")
            .arg(&db)
            .arg("images")
            .arg(d.path().join("staging"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let deadline = started + full.map_or(Duration::from_secs(600), |f| f.mul_f64(rng.random_range(0.0..1.1)));
        let exited = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        if exited.is_none() {
            child.kill().unwrap();
            child.wait().unwrap();
            killed += 1;
        } else {
            assert!(exited.is_some_and(|s| s.success()), "round {round}: attach failed on its own");
            full.get_or_insert(started.elapsed());
        }
        let opened = Db::open(&db).expect("reopen after a kill");
        let n = opened.snapshot().collection("images").unwrap().count();
        assert!(n == 1 || n == 10_001, "round {round}: {n} records: neither none nor all");
        if n == 1 {
            none += 1;
        } else {
            all += 1;
        }
        drop(opened);
        let v = skysift::verify::verify(&skysift::io::RealVfs, &db);
        assert!(v.ok(), "round {round}: {v:?}");
        // A rerun completes it (or finds it done).
        let again = Db::open(&db).unwrap();
        again.attach("images", &[d.path().join("staging")], false).unwrap();
        assert_eq!(again.snapshot().collection("images").unwrap().count(), 10_001);
        completed += 1;
        drop(again);
        std::fs::remove_dir_all(&db).unwrap();
    }
    println!("attach kill loop: kills {killed}, none visible {none}, all visible {all}, reruns completed {completed}");
    assert_eq!(none + all, rounds);
    assert_eq!(completed, rounds);
}
