//! Property test: random operation sequences against a `BTreeMap` model.

use std::collections::BTreeMap;

use proptest::prelude::*;
use skysift::Db;

use crate::common::{Dump, dump, model_entry, record, spec};

#[derive(Debug, Clone)]
enum Step {
    Insert(u64),
    Upsert(u64),
    Delete(u64),
    Commit,
    Abort,
    Flush,
    Compact,
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u64..60).prop_map(Step::Insert),
        4 => (0u64..60).prop_map(Step::Upsert),
        3 => (0u64..60).prop_map(Step::Delete),
        4 => Just(Step::Commit),
        1 => Just(Step::Abort),
        1 => Just(Step::Flush),
        1 => Just(Step::Compact),
        1 => Just(Step::Reopen),
    ]
}

fn run(steps: &[Step]) {
    let dir = tempfile::tempdir().unwrap();
    let open = || Db::builder(dir.path()).flush_rows(25).open().unwrap();
    let mut db = open();
    db.create_collection("c", spec()).unwrap();
    let mut committed: BTreeMap<u64, u64> = BTreeMap::new();
    let mut pending: Vec<(u64, Option<u64>)> = Vec::new();
    let mut version = 0u64;
    let mut view = committed.clone();
    for s in steps {
        match s {
            Step::Insert(id) => {
                version += 1;
                let ok = !view.contains_key(id);
                let mut tx = db.begin_write("c").unwrap();
                replay(&mut tx, &pending);
                let r = tx.insert(record(*id, version));
                assert_eq!(r.is_ok(), ok, "insert {id}: {r:?}");
                drop(tx);
                if ok {
                    pending.push((*id, Some(version)));
                    view.insert(*id, version);
                }
            }
            Step::Upsert(id) => {
                version += 1;
                pending.push((*id, Some(version)));
                view.insert(*id, version);
            }
            Step::Delete(id) => {
                if view.remove(id).is_some() {
                    pending.push((*id, None));
                }
            }
            Step::Commit => {
                let mut tx = db.begin_write("c").unwrap();
                replay(&mut tx, &pending);
                tx.commit().unwrap();
                pending.clear();
                committed.clone_from(&view);
            }
            Step::Abort => {
                pending.clear();
                view.clone_from(&committed);
            }
            Step::Flush => db.flush("c").unwrap(),
            Step::Compact => db.compact("c").unwrap(),
            Step::Reopen => {
                drop(db);
                db = open();
                pending.clear();
                view.clone_from(&committed);
            }
        }
        if matches!(s, Step::Commit | Step::Flush | Step::Compact | Step::Reopen | Step::Abort) {
            let want: Dump = committed.iter().map(|(id, v)| (*id, model_entry(*id, *v))).collect();
            assert_eq!(dump(&db, "c"), want, "after {s:?}");
        }
    }
}

fn replay(tx: &mut skysift::WriteTxn<'_>, pending: &[(u64, Option<u64>)]) {
    for (id, v) in pending {
        match v {
            Some(v) => tx.upsert(record(*id, *v)).unwrap(),
            None => {
                tx.delete(*id).unwrap();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_match_a_btreemap(steps in proptest::collection::vec(step(), 1..120)) {
        run(&steps);
    }
}

#[test]
fn snapshot_is_stable_while_the_writer_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::builder(dir.path()).flush_rows(10).open().unwrap();
    db.create_collection("c", spec()).unwrap();
    let mut tx = db.begin_write("c").unwrap();
    for id in 0..30 {
        tx.insert(record(id, 0)).unwrap();
    }
    tx.commit().unwrap();
    let before = dump(&db, "c");
    let snap = db.snapshot();
    let mut tx = db.begin_write("c").unwrap();
    for id in 0..15 {
        tx.delete(id).unwrap();
    }
    tx.upsert(record(20, 9)).unwrap();
    tx.commit().unwrap();
    db.compact("c").unwrap();
    let col = snap.collection("c").unwrap();
    assert_eq!(col.count(), 30);
    for (id, entry) in &before {
        let r = col.get(*id).unwrap().unwrap();
        assert_eq!(&(r.vector, r.fields), entry);
    }
    assert_eq!(db.snapshot().collection("c").unwrap().count(), 15);
}

#[test]
fn insert_of_a_live_id_is_refused_and_upsert_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    db.create_collection("c", spec()).unwrap();
    let mut tx = db.begin_write("c").unwrap();
    tx.insert(record(1, 0)).unwrap();
    assert!(matches!(tx.insert(record(1, 1)), Err(skysift::Error::DuplicateId { id: 1, .. })));
    tx.commit().unwrap();
    db.flush("c").unwrap();
    let mut tx = db.begin_write("c").unwrap();
    assert!(tx.insert(record(1, 2)).is_err());
    tx.upsert(record(1, 3)).unwrap();
    tx.commit().unwrap();
    assert_eq!(dump(&db, "c")[&1], model_entry(1, 3));
}
