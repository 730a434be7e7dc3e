//! [`Db::attach`]: segments built in other databases (shards written by other processes or
//! machines, e.g. the workers of a distributed import) published in one commit.
//!
//! A shard is a skysift database directory holding a collection of the same schema and model
//! (its collection of the same name, or its only collection). A staging directory whose
//! sub-directories are shards stands for all of them, in name order. What is checked before
//! anything is written, and the commit itself, are [`skysift_storage::store::WriteGuard::attach`]'s:
//! every checksum, the schema, id collisions (or replacement with `upsert`), a content-derived
//! id that makes a second attach of the same segment a no-op, and all-or-nothing visibility
//! across a crash. Here: the shard's model provenance against the collection's, and no rows of
//! the shard left outside its segments.

use std::path::{Path, PathBuf};

use skysift_storage::store::StagedSegment;

use crate::db::Db;
#[cfg(feature = "encode")]
use crate::encode::Provenance;
use crate::error::{Error, Result};

/// What an attach did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachSummary {
    /// Shard databases read, in the order they were attached.
    pub shards: Vec<PathBuf>,
    /// Segment files attached: the staged file, the segment number it got, its live rows.
    pub attached: Vec<(PathBuf, u64, u64)>,
    /// Staged segment files already live in the collection (skipped).
    pub already_attached: Vec<PathBuf>,
    /// Live rows of the collection replaced by attached rows (with `upsert`).
    pub replaced: u64,
}

impl AttachSummary {
    /// Live rows added by the segments attached (replaced rows counted once).
    #[must_use]
    pub fn rows(&self) -> u64 {
        self.attached.iter().map(|(_, _, rows)| rows).sum()
    }
}

/// The shard databases named by `paths`: each path is a database directory (it has a
/// `MANIFEST`), or a staging directory whose sub-directories are (taken in name order).
pub fn shard_dirs(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.join(skysift_storage::manifest::FILE).is_file() {
            out.push(p.clone());
            continue;
        }
        let entries = std::fs::read_dir(p).map_err(|e| refused(p, format!("cannot read it: {e}")))?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|d| d.join(skysift_storage::manifest::FILE).is_file())
            .collect();
        if found.is_empty() {
            return Err(refused(p, "neither a skysift database (no MANIFEST) nor a directory of them"));
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

fn refused(shard: &Path, reason: impl Into<String>) -> Error {
    Error::AttachRefused { shard: shard.to_path_buf(), reason: reason.into() }
}

/// The segments of `shard`'s collection (`collection`, or its only one), checked against the
/// target collection's provenance. The shard stays open (its files mapped) in `keep`.
fn staged_from(
    shard: &Path,
    collection: &str,
    target: &[(String, String)],
    keep: &mut Vec<Db>,
) -> Result<Vec<StagedSegment>> {
    let db = Db::builder(shard).read_only(true).open()?;
    let snap = db.snapshot();
    let names = snap.collections();
    let name = if names.iter().any(|n| n == collection) {
        collection.to_owned()
    } else if let [only] = names.as_slice() {
        only.clone()
    } else {
        return Err(refused(shard, format!("it has no collection {collection:?} (it has: {})", names.join(", "))));
    };
    let col = snap.collection(&name)?;
    if col.memory_rows() > 0 {
        return Err(refused(
            shard,
            format!(
                "{} committed rows are not in a segment yet; flush it first (`skysift compact {} {name}`)",
                col.memory_rows(),
                shard.display()
            ),
        ));
    }
    #[cfg(not(feature = "encode"))]
    {
        // Without the encoder stack the provenance is compared as it is recorded.
        let model = |p: &[(String, String)]| {
            let mut m: Vec<(String, String)> = p.iter().filter(|(k, _)| k.starts_with("encoder.")).cloned().collect();
            m.sort();
            m
        };
        if model(target) != model(col.params()) {
            return Err(refused(shard, "its model provenance (encoder.* params) differs from the collection's"));
        }
    }
    #[cfg(feature = "encode")]
    match (Provenance::in_params(target), Provenance::in_params(col.params())) {
        (true, true) => {
            let ours = Provenance::from_params(target)?;
            ours.check_compatible(&Provenance::from_params(col.params())?)?;
        }
        (false, false) => {}
        (true, false) => return Err(refused(shard, "its vectors carry no model provenance; the collection's do")),
        (false, true) => {
            return Err(refused(shard, "its vectors come from a model; the collection's carry no provenance"));
        }
    }
    let staged = col
        .state()
        .segments
        .iter()
        .map(|h| StagedSegment { path: h.segment.path().to_path_buf(), tombstones: (*h.tombstones).clone() })
        .collect();
    keep.push(db);
    Ok(staged)
}

impl Db {
    /// Attaches the segments of the shard databases in `paths` (database directories, or
    /// staging directories of them: [`shard_dirs`]) to `collection` in one manifest commit. No
    /// vector is rewritten: each segment file is copied with its graph and indexes, relabelled
    /// with a new segment number. Refused, with the collection unchanged, on a damaged segment,
    /// another schema or model, unflushed shard rows, or an id live in the collection (unless
    /// `upsert`) or in two shards. A segment already attached is skipped.
    ///
    /// ```
    /// use skysift::{CollectionSpec, Db, NewRecord};
    /// use skysift::schema::Metric;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let spec = || CollectionSpec::new(2, Metric::Cosine);
    /// let shard = Db::open(dir.path().join("shard")).unwrap();
    /// shard.create_collection("c", spec()).unwrap();
    /// let mut tx = shard.begin_write("c").unwrap();
    /// tx.insert(NewRecord::new(7, vec![1.0, 0.0])).unwrap();
    /// tx.commit().unwrap();
    /// shard.flush("c").unwrap();
    ///
    /// let db = Db::open(dir.path().join("main")).unwrap();
    /// db.create_collection("c", spec()).unwrap();
    /// let done = db.attach("c", &[dir.path().join("shard")], false).unwrap();
    /// assert_eq!(done.rows(), 1);
    /// assert!(db.attach("c", &[dir.path().join("shard")], false).unwrap().attached.is_empty());
    /// ```
    pub fn attach(&self, collection: &str, paths: &[PathBuf], upsert: bool) -> Result<AttachSummary> {
        let target = self.snapshot().collection(collection)?;
        let shards = shard_dirs(paths)?;
        let mut keep = Vec::with_capacity(shards.len());
        let mut staged = Vec::new();
        for shard in &shards {
            if same_dir(shard, self.path()) {
                return Err(refused(shard, "it is the database being attached to"));
            }
            staged.extend(staged_from(shard, collection, target.params(), &mut keep)?);
        }
        let report = self.store().attach(collection, &staged, upsert)?;
        drop(keep);
        Ok(AttachSummary {
            shards,
            attached: report.attached,
            already_attached: report.already_attached,
            replaced: report.replaced,
        })
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
