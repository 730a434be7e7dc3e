//! Attaching segments written elsewhere (a shard built by another process or machine) to a
//! collection in one manifest commit.
//!
//! Protocol ([`WriteGuard::attach`]):
//! 1. flush the collection, so that every live row is in a segment and the collisions and
//!    replacements below are decided against segments only;
//! 2. check every staged segment before anything is written: all section checksums
//!    ([`Segment::verify`]), its schema against the collection's ([`Segment::bind_schema`]),
//!    its ids against the collection's live ids and the other staged segments;
//! 3. copy each into `col-<id>/seg-<n>.seg` under a fresh number, with its header relabelled
//!    (the header's segment id and checksum are the only bytes that change: vectors, graphs,
//!    codes and indexes travel as they are), sync the files and the directory;
//! 4. publish one manifest that names them all (with the tombstones they carried, and, with
//!    `upsert`, tombstones for the rows they replace).
//!
//! A crash before step 4 leaves orphan files that the next writer open removes: none of the
//! staged segments is visible. After it, all are.
//!
//! Idempotence: a segment's [content id](content_id) is SHA-256 over its header (with the segment
//! id zeroed), its section table and its footer. The table holds every section's CRC32C, so the
//! id changes when any byte but the segment id does. A staged segment whose content id is already
//! live in the collection is skipped: attaching the same segment twice is a no-op.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use roaring::RoaringBitmap;
use sha2::{Digest, Sha256};

use super::{SegmentHandle, Store, WriteGuard, collection_dir, segment_path};
use crate::error::{Error, Result};
use crate::segment::Segment;
use crate::segment::footer::{FOOTER_LEN, Footer, HEADER_LEN, Header};

/// A segment file to attach, with the rows its own database had deleted.
#[derive(Debug, Clone)]
pub struct StagedSegment {
    /// The sealed segment file.
    pub path: PathBuf,
    /// Deleted rows of that segment (they stay deleted once attached).
    pub tombstones: RoaringBitmap,
}

/// What [`WriteGuard::attach`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachReport {
    /// Staged files attached, with the segment number each got and its live rows.
    pub attached: Vec<(PathBuf, u64, u64)>,
    /// Staged files skipped because a segment with the same content is already live.
    pub already_attached: Vec<PathBuf>,
    /// Live rows of the collection replaced by attached rows (`upsert` only).
    pub replaced: u64,
}

/// The content id of a segment file: SHA-256 over its header with the segment id zeroed, its
/// section table and its footer (see the module docs). `bytes` is the whole file.
pub fn content_id(path: &Path, bytes: &[u8]) -> Result<[u8; 32]> {
    let bad = |reason: &str| Error::corrupted(path, "header", 0, reason.to_string());
    let mut header = Header::decode(bytes).map_err(|_| bad("unreadable segment header"))?;
    header.segment_id = 0;
    let footer_at = bytes.len().checked_sub(FOOTER_LEN).ok_or_else(|| bad("file shorter than its footer"))?;
    let footer = Footer::decode(bytes.get(footer_at..).unwrap_or(&[])).map_err(|_| bad("unreadable footer"))?;
    let table = bytes
        .get(footer.table_offset as usize..)
        .filter(|_| footer.table_offset as usize >= HEADER_LEN)
        .ok_or_else(|| bad("section table out of bounds"))?;
    let mut h = Sha256::new();
    h.update(header.encode());
    h.update(table);
    Ok(h.finalize().into())
}

/// The staged segment, opened, checked and bound to the collection's schema.
struct Checked {
    source: PathBuf,
    segment: Segment,
    tombstones: RoaringBitmap,
    content: [u8; 32],
}

impl WriteGuard<'_> {
    /// Attaches `staged` segments to collection `name` in one manifest commit (protocol in the
    /// module docs). Refused, with nothing changed, when a staged segment is damaged, was
    /// written for another schema (dimension, metric, field names or types), or holds an id that
    /// is live in the collection (unless `upsert`: the attached row replaces it) or in another
    /// staged segment.
    pub fn attach(&mut self, name: &str, staged: &[StagedSegment], upsert: bool) -> Result<AttachReport> {
        self.flush(name)?;
        let (state, col) = self.collection(name)?;
        let vfs = &*self.store.opts.vfs;
        let mut live_content = HashSet::new();
        for s in &col.segments {
            live_content.insert(content_id(s.segment.path(), s.segment.bytes())?);
        }
        let mut report = AttachReport::default();
        let mut checked: Vec<Checked> = Vec::new();
        for s in staged {
            let bytes = vfs.map(&s.path)?;
            let content = content_id(&s.path, bytes.as_slice())?;
            if live_content.contains(&content) || checked.iter().any(|c| c.content == content) {
                report.already_attached.push(s.path.clone());
                continue;
            }
            let mut segment = Segment::open(&s.path, bytes)?;
            if let Some(d) = segment.verify().into_iter().next() {
                return Err(Error::corrupted(&s.path, d.region, d.offset, d.reason));
            }
            segment.bind_schema(&col.schema).map_err(|_| Error::AttachSchema {
                shard: s.path.clone(),
                reason: format!(
                    "its dimension, metric or fields ({}) differ from collection {name:?}'s ({})",
                    describe(segment.dim(), segment.fields()),
                    describe(col.schema.dim as usize, &col.schema.fields),
                ),
            })?;
            if s.tombstones.max().is_some_and(|r| r as usize >= segment.rows()) {
                return Err(Error::corrupted(
                    &s.path,
                    "tombstones",
                    0,
                    "a tombstone names a row past the segment's end",
                ));
            }
            checked.push(Checked { source: s.path.clone(), segment, tombstones: s.tombstones.clone(), content });
        }

        // Ids: unique across the staged segments; a live id of the collection is a collision, or
        // with `upsert` a row to replace.
        let mut seen: HashMap<u64, usize> = HashMap::new();
        let mut replace: Vec<(usize, u32)> = Vec::new();
        for (i, c) in checked.iter().enumerate() {
            for (row, &id) in c.segment.ids().iter().enumerate() {
                if c.tombstones.contains(row as u32) {
                    continue;
                }
                if let Some(&j) = seen.get(&id) {
                    return Err(Error::IdCollision {
                        id,
                        shard: c.source.clone(),
                        other: checked.get(j).map_or_else(PathBuf::new, |o| o.source.clone()),
                    });
                }
                seen.insert(id, i);
                if let Some(super::Location::Segment { segment, row }) = col.locate(id)? {
                    if !upsert {
                        return Err(Error::IdCollision { id, shard: c.source.clone(), other: store_dir(self) });
                    }
                    replace.push((segment, row));
                }
            }
        }
        if checked.is_empty() {
            return Ok(report);
        }

        let store = self.store;
        Store::guarded(&mut self.w, |_| {
            let cdir = collection_dir(&store.dir, col.id);
            let mut c = (*col).clone();
            for (segment, row) in &replace {
                if let Some(h) = c.segments.get_mut(*segment) {
                    Arc::make_mut(&mut h.tombstones).insert(*row);
                }
            }
            report.replaced = replace.len() as u64;
            for staged in &checked {
                let id = c.next_segment_id;
                let path = segment_path(&store.dir, col.id, id);
                copy_relabelled(store, &path, staged.segment.bytes(), id)?;
                let mut seg = Segment::open(&path, vfs.map(&path)?)?;
                seg.bind_schema(&col.schema)?;
                let live = seg.rows() as u64 - staged.tombstones.len();
                c.segments
                    .push(SegmentHandle { segment: Arc::new(seg), tombstones: Arc::new(staged.tombstones.clone()) });
                c.next_segment_id += 1;
                report.attached.push((staged.source.clone(), id, live));
            }
            vfs.sync_dir(&cdir)?;
            store.replace_collection(&state, c)?;
            Ok(())
        })?;
        Ok(report)
    }
}

fn store_dir(g: &WriteGuard<'_>) -> PathBuf {
    g.store.dir.clone()
}

fn describe(dim: usize, fields: &[crate::schema::FieldDef]) -> String {
    let names: Vec<String> = fields.iter().map(|f| format!("{}:{}", f.name, f.ty.name())).collect();
    format!("dim {dim}; {}", names.join(", "))
}

/// Writes `bytes` (a whole segment file) to `path` with the header's segment id set to `id`,
/// and syncs the file.
fn copy_relabelled(store: &Store, path: &Path, bytes: &[u8], id: u64) -> Result<()> {
    const CHUNK: usize = 8 << 20;
    let bad = || Error::corrupted(path, "header", 0, "staged segment header changed while attaching");
    let mut header = Header::decode(bytes).map_err(|_| bad())?;
    header.segment_id = id;
    let mut file = store.opts.vfs.create(path)?;
    file.write_all(&header.encode())?;
    for chunk in bytes.get(HEADER_LEN..).ok_or_else(bad)?.chunks(CHUNK) {
        file.write_all(chunk)?;
    }
    file.sync()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::schema;
    use crate::schema::Record;
    use crate::store::StoreOptions;
    use crate::wal::Op;

    fn shard(dir: &Path, ids: std::ops::Range<u64>) -> Store {
        let s = Store::open(dir, StoreOptions::default()).unwrap();
        s.create_collection("c", schema(), Vec::new()).unwrap();
        let values = vec![None; schema().fields.len()];
        let ops = ids
            .map(|id| Op::Put(Record { id, vector: vec![id as f32, 1.0, 0.0, 0.0], values: values.clone() }))
            .collect();
        s.commit("c", ops).unwrap();
        s.flush("c").unwrap();
        s
    }

    fn staged(s: &Store) -> Vec<StagedSegment> {
        s.snapshot().collections["c"]
            .segments
            .iter()
            .map(|h| StagedSegment { path: h.segment.path().to_path_buf(), tombstones: (*h.tombstones).clone() })
            .collect()
    }

    #[test]
    fn attach_is_one_commit_idempotent_and_refuses_collisions() {
        let dir = tempfile::tempdir().unwrap();
        let main = shard(&dir.path().join("main"), 0..10);
        let a = shard(&dir.path().join("a"), 10..20);
        let b = shard(&dir.path().join("b"), 5..15);
        let before = main.snapshot().generation;
        let r = main.try_begin_write().unwrap().attach("c", &staged(&a), false).unwrap();
        assert_eq!(r.attached.len(), 1);
        assert_eq!(main.snapshot().collections["c"].count(), 20);
        // flush (nothing to flush) + one publication
        assert_eq!(main.snapshot().generation, before + 1);
        let again = main.try_begin_write().unwrap().attach("c", &staged(&a), false).unwrap();
        assert!(again.attached.is_empty() && again.already_attached.len() == 1, "{again:?}");
        let err = main.try_begin_write().unwrap().attach("c", &staged(&b), false).unwrap_err();
        assert!(matches!(err, Error::IdCollision { id: 5, .. }), "{err}");
        assert_eq!(main.snapshot().collections["c"].count(), 20);
        let r = main.try_begin_write().unwrap().attach("c", &staged(&b), true).unwrap();
        assert_eq!(r.replaced, 10);
        let state = main.snapshot();
        assert_eq!(state.collections["c"].count(), 20);
        assert_eq!(state.collections["c"].get(7).unwrap().unwrap().vector, vec![7.0, 1.0, 0.0, 0.0]);
        drop(state);
        drop(main);
        let reopened = Store::open(&dir.path().join("main"), StoreOptions::default()).unwrap();
        assert_eq!(reopened.snapshot().collections["c"].count(), 20);
        assert!(crate::verify::verify(&crate::io::RealVfs, &dir.path().join("main")).ok());
    }

    #[test]
    fn content_id_ignores_the_segment_number_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = shard(&dir.path().join("a"), 0..4);
        let path = staged(&a)[0].path.clone();
        let bytes = std::fs::read(&path).unwrap();
        let id = content_id(&path, &bytes).unwrap();
        let mut relabelled = bytes.clone();
        let mut h = Header::decode(&bytes).unwrap();
        h.segment_id = 99;
        relabelled[..HEADER_LEN].copy_from_slice(&h.encode());
        assert_eq!(content_id(&path, &relabelled).unwrap(), id);
        let mut other = bytes.clone();
        let n = other.len();
        other[n - FOOTER_LEN - 1] ^= 1;
        assert_ne!(content_id(&path, &other).unwrap(), id);
    }
}
