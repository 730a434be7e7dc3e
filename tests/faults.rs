//! Fault injection through the I/O trait: fail the k-th mutating operation (EIO or ENOSPC)
//! for k = 1, 2, ... until the whole workload completes. After each failure the writer must
//! report an error, and reopening with the real file system must show the state before or
//! after the failing operation, never anything else.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use skysift::io::{Fault, FaultVfs, RealVfs, Vfs};
use skysift::{Db, RowBatch};

use crate::common::{model_entry, record, spec};

#[derive(Debug, Clone, Copy)]
enum Op {
    Create,
    Batch(u64),
    /// The rows of a batch through the bulk path (`Db::append_rows`, upsert).
    Bulk(u64),
    Delete(u64),
    Flush,
    Compact,
    Drop,
}

const WORKLOAD: [Op; 14] = [
    Op::Create,
    Op::Batch(0),
    Op::Batch(1),
    Op::Flush,
    Op::Batch(2),
    Op::Delete(3),
    Op::Flush,
    Op::Batch(3),
    Op::Compact,
    Op::Delete(5),
    Op::Batch(4),
    Op::Bulk(5),
    Op::Bulk(2),
    Op::Drop,
];

type Model = Option<BTreeMap<u64, u64>>;

fn step(model: &Model, op: Op) -> Model {
    let mut m = model.clone();
    match op {
        Op::Create => m = Some(BTreeMap::new()),
        Op::Batch(b) | Op::Bulk(b) => {
            if let Some(m) = m.as_mut() {
                for id in b * 10..b * 10 + 10 {
                    m.insert(id, b);
                }
            }
        }
        Op::Delete(id) => {
            if let Some(m) = m.as_mut() {
                m.remove(&id);
            }
        }
        Op::Drop => m = None,
        Op::Flush | Op::Compact => {}
    }
    m
}

fn run(db: &Db, op: Op) -> skysift::Result<()> {
    match op {
        Op::Create => db.create_collection("c", spec()),
        Op::Batch(b) => {
            let mut tx = db.begin_write("c")?;
            for id in b * 10..b * 10 + 10 {
                tx.upsert(record(id, b))?;
            }
            tx.commit().map(|_| ())
        }
        Op::Bulk(b) => {
            let schema = db.snapshot().collection("c")?.schema().clone();
            let mut rows = RowBatch::new(schema.dim as usize, schema.fields.len());
            for id in b * 10..b * 10 + 10 {
                let r = record(id, b);
                let slots = rows.push(id, &r.vector)?;
                for (name, v) in r.fields {
                    if let Some(slot) = schema.field_index(&name).and_then(|i| slots.get_mut(i)) {
                        *slot = Some(v);
                    }
                }
            }
            db.append_rows("c", &mut rows, true).map(|_| ())
        }
        Op::Delete(id) => {
            let mut tx = db.begin_write("c")?;
            tx.delete(id)?;
            tx.commit().map(|_| ())
        }
        Op::Flush => db.flush("c"),
        Op::Compact => db.compact("c"),
        Op::Drop => db.drop_collection("c"),
    }
}

fn observed(dir: &Path) -> Model {
    let db = Db::open(dir).expect("reopen with the real file system");
    let Ok(col) = db.snapshot().collection("c") else { return None };
    let mut m = BTreeMap::new();
    for id in 0..100 {
        if let Some(r) = col.get(id).unwrap() {
            let version = id / 10;
            assert_eq!((r.vector, r.fields), model_entry(id, version), "id {id}");
            m.insert(id, version);
        }
    }
    assert_eq!(col.count(), m.len() as u64);
    Some(m)
}

/// Tally of one fault campaign.
#[derive(Debug, Default)]
pub struct Tally {
    /// Faults injected.
    pub injected: u64,
    /// Reopens that showed the state before or after the failing operation.
    pub survived: u64,
}

/// Runs the workload failing the k-th operation for every k until it completes.
pub fn campaign(fault: Fault, sticky: bool) -> Tally {
    let mut t = Tally::default();
    for k in 1.. {
        let dir = tempfile::tempdir().unwrap();
        let fvfs = FaultVfs::new(Arc::new(RealVfs), k, fault, sticky);
        let vfs: Arc<dyn Vfs> = Arc::new(fvfs.clone());
        let db = match Db::builder(dir.path()).vfs(vfs).open() {
            Ok(db) => db,
            Err(e) => {
                assert!(fvfs.tripped(), "open failed without a fault: {e}");
                t.injected += 1;
                // Whatever was half-created must open cleanly or not be a database yet.
                if dir.path().join("MANIFEST").exists() {
                    assert_eq!(observed(dir.path()), None);
                }
                t.survived += 1;
                continue;
            }
        };
        let mut model: Model = None;
        let mut failed = None;
        for op in WORKLOAD {
            let next = step(&model, op);
            match run(&db, op) {
                Ok(()) => model = next,
                Err(e) => {
                    assert!(fvfs.tripped(), "{op:?} failed without a fault: {e}");
                    failed = Some((op, next, e));
                    break;
                }
            }
        }
        let Some((op, next, err)) = failed else {
            assert!(!fvfs.tripped() || fvfs.ops() >= k, "fault at {k} was swallowed");
            if !fvfs.tripped() {
                drop(db);
                assert_eq!(observed(dir.path()), model);
                return t;
            }
            // The fault hit a best-effort step (old-file removal) after a commit point.
            t.injected += 1;
            drop(db);
            assert_eq!(observed(dir.path()), model);
            t.survived += 1;
            continue;
        };
        t.injected += 1;
        // A poisoned writer refuses further writes with a clear error.
        if !matches!(err, skysift::Error::Invalid(_) | skysift::Error::Schema(_)) {
            let again = run(&db, Op::Batch(9));
            assert!(again.is_err(), "writer kept going after {err}");
        }
        drop(db);
        let seen = observed(dir.path());
        assert!(
            seen == model || seen == next,
            "fault {k} during {op:?} ({err}): saw {seen:?}, want {model:?} or {next:?}"
        );
        t.survived += 1;
    }
    t
}

#[test]
fn eio_at_every_operation_keeps_the_last_committed_state() {
    let t = campaign(Fault::Eio, false);
    println!("fault injection EIO: injected {}, survived {}", t.injected, t.survived);
    assert!(t.injected > 20);
    assert_eq!(t.injected, t.survived);
}

#[test]
fn enospc_at_every_operation_keeps_the_last_committed_state() {
    let t = campaign(Fault::Enospc, true);
    println!("fault injection ENOSPC (disk stays full): injected {}, survived {}", t.injected, t.survived);
    assert!(t.injected > 20);
    assert_eq!(t.injected, t.survived);
}

/// Fills a real small filesystem (`SKYSIFT_SMALL_FS` = a directory on a tiny tmpfs or loop
/// device, as `scripts/campaign.sh` mounts) until the disk is full; every batch committed before
/// ENOSPC must survive a reopen.
#[test]
#[ignore = "needs a small filesystem; run by scripts/campaign.sh"]
fn disk_full_on_a_small_filesystem_keeps_committed_batches() {
    let Some(root) = std::env::var_os("SKYSIFT_SMALL_FS") else { panic!("set SKYSIFT_SMALL_FS") };
    let dir = std::path::PathBuf::from(root).join("db");
    let _ = std::fs::remove_dir_all(&dir);
    let mut committed = 0u64;
    let mut failure = None;
    {
        let db = Db::builder(&dir).flush_rows(200).open().unwrap();
        db.create_collection("c", spec()).unwrap();
        for b in 0..100_000u64 {
            let r = (|| {
                let mut tx = db.begin_write("c")?;
                for id in b * 10..b * 10 + 10 {
                    tx.upsert(record(id, b))?;
                }
                tx.commit()
            })();
            match r {
                Ok(info) => {
                    committed = b + 1;
                    if let Some(e) = info.flush_error {
                        failure = Some(e);
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
    }
    let failure = failure.expect("the small filesystem never filled up");
    assert!(failure.contains("No space") || failure.contains("os error 28"), "{failure}");
    let db = Db::builder(&dir).read_only(true).open().expect("reopen after ENOSPC");
    let col = db.snapshot().collection("c").unwrap();
    let mut lost = 0;
    for id in 0..committed * 10 {
        match col.get(id).unwrap() {
            Some(r) => assert_eq!((r.vector, r.fields), model_entry(id, id / 10)),
            None => lost += 1,
        }
    }
    println!("disk full: committed batches {committed}, rows lost {lost}, error: {failure}");
    assert_eq!(lost, 0);
    assert_eq!(col.count(), committed * 10);
}
