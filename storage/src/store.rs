//! `Store`: the durable state machine of a database directory.
//!
//! ```text
//! DB/
//!   LOCK                     writer lock (flock)
//!   MANIFEST                 collections, schemas, segments, tombstones, current WAL
//!   col-<id>/seg-<n>.seg     immutable segments
//!   col-<id>/wal-<n>.log     write-ahead log of the mutable segment
//! ```
//!
//! Commit protocols (each step is a `Vfs` call; see `storage/FORMAT.md`):
//! - **write batch**: append one WAL frame, fdatasync. Committed when the sync returns.
//! - **flush**: write `seg-<n>.seg` from the live in-memory rows, fsync it; create the next
//!   WAL, fsync it; fsync the collection directory; publish a manifest naming the new segment
//!   and WAL (with the tombstones gathered so far); remove the old WAL.
//! - **compact**: flush, then write one segment holding the live rows of all segments, publish
//!   a manifest that replaces them, and remove the old files once no snapshot maps them.
//! - **create / drop collection**: create the directory and its first WAL, then publish; or
//!   publish, then remove the directory once unused.
//!
//! Invariants:
//! - readers see [`DbState`] values that are never mutated after publication; the writer
//!   builds the next one and swaps the `Arc`;
//! - after any I/O failure the writer is poisoned: the next write fails with
//!   [`Error::Poisoned`] and reopening recovers the last committed state;
//! - a file is unlinked only after an exclusive `flock` on it succeeds, i.e. when no process
//!   maps it; otherwise it is retried later.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use roaring::RoaringBitmap;

use crate::error::{Error, Result};
use crate::io::{RealVfs, Vfs};
use crate::lock::WriterLock;
use crate::manifest::{self, CollectionEntry, Manifest, SegmentEntry};
use crate::memtable::MemTable;
use crate::schema::{FieldDef, Record, Schema, Value};
use crate::segment::footer::SectionKind;
use crate::segment::{RowSource, Segment, write_segment};
use crate::vecblob;
use crate::wal::{self, Batch, Op, WalWriter};

mod attach;
mod bulk;
pub use attach::{AttachReport, StagedSegment, content_id};
pub use bulk::{AppendReport, RowBatch};

/// What an indexer gets to know about the segment it indexes.
#[derive(Debug)]
pub struct IndexContext<'a> {
    /// The collection's schema.
    pub schema: &'a Schema,
    /// The collection's parameters (index settings).
    pub params: &'a [(String, String)],
    /// The collection's query sample (row-major, `schema.dim` wide), when it has one.
    pub query_sample: Option<&'a [f32]>,
}

/// Builds index sections (graph, codes) for a segment about to be written. Implemented by the
/// root crate, which owns the index algorithms; storage only writes and checksums the bytes.
pub trait SegmentIndexer: Send + Sync + std::fmt::Debug {
    /// Returns the sections to append to the segment (none for small segments).
    fn build(&self, ctx: &IndexContext<'_>, rows: &dyn RowSource) -> Result<Vec<(SectionKind, Vec<u8>)>>;
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Open without the writer lock; writes are refused. Default: false.
    pub read_only: bool,
    /// Skip damaged segments and WAL frames instead of failing (implies `read_only`, so that
    /// nothing is made worse). Default: false.
    pub recover: bool,
    /// Create the directory when it does not exist (writers only). Default: true.
    pub create: bool,
    /// File system. Default: [`RealVfs`].
    pub vfs: Arc<dyn Vfs>,
    /// Builds index sections for new segments. Default: none (exact scan only).
    pub indexer: Option<Arc<dyn SegmentIndexer>>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { read_only: false, recover: false, create: true, vfs: Arc::new(RealVfs), indexer: None }
    }
}

/// A published segment with its tombstones.
#[derive(Debug, Clone)]
pub struct SegmentHandle {
    /// The mapped segment.
    pub segment: Arc<Segment>,
    /// Deleted rows.
    pub tombstones: Arc<RoaringBitmap>,
}

impl SegmentHandle {
    /// Live rows.
    #[must_use]
    pub fn live(&self) -> u64 {
        self.segment.rows() as u64 - self.tombstones.len()
    }

    /// Whether `row` is live.
    #[must_use]
    pub fn is_live(&self, row: u32) -> bool {
        (row as usize) < self.segment.rows() && !self.tombstones.contains(row)
    }
}

/// Where a live record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// In segment number `segment` (index into [`CollectionState::segments`]), at `row`.
    Segment {
        /// Index into the segment list.
        segment: usize,
        /// Row inside the segment.
        row: u32,
    },
    /// In the in-memory table at `row`.
    Mem {
        /// Row inside the memtable.
        row: u32,
    },
}

/// An immutable view of one collection.
#[derive(Debug, Clone)]
pub struct CollectionState {
    /// Numeric id (directory `col-<id>`).
    pub id: u64,
    /// Name.
    pub name: String,
    /// Schema.
    pub schema: Arc<Schema>,
    /// Settings kept in the manifest.
    pub params: Vec<(String, String)>,
    /// Published segments, oldest first.
    pub segments: Vec<SegmentHandle>,
    /// Committed rows not yet flushed.
    pub mem: Arc<MemTable>,
    /// Sequence number of the last committed batch.
    pub last_seq: u64,
    /// Sequence number of the last batch contained in segments.
    pub flushed_seq: u64,
    /// Current WAL id.
    pub wal_id: u64,
    /// Bytes in the current WAL.
    pub wal_len: u64,
    /// Next segment id.
    pub next_segment_id: u64,
}

impl CollectionState {
    /// Live records.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.segments.iter().map(SegmentHandle::live).sum::<u64>() + self.mem.live() as u64
    }

    /// Where the live record `id` is (an error when a segment's id index fails its first-use
    /// check).
    pub fn locate(&self, id: u64) -> Result<Option<Location>> {
        if let Some(row) = self.mem.row_of(id) {
            return Ok(Some(Location::Mem { row }));
        }
        for (i, s) in self.segments.iter().enumerate() {
            if let Some(row) = s.segment.row_of(id)?.filter(|r| s.is_live(*r)) {
                return Ok(Some(Location::Segment { segment: i, row }));
            }
        }
        Ok(None)
    }

    /// The live record `id`.
    pub fn get(&self, id: u64) -> Result<Option<Record>> {
        match self.locate(id)? {
            None => Ok(None),
            Some(Location::Mem { row }) => Ok(self.mem.record(row as usize).cloned()),
            Some(Location::Segment { segment, row }) => {
                let Some(s) = self.segments.get(segment) else { return Ok(None) };
                let seg = &s.segment;
                let values =
                    (0..self.schema.fields.len()).map(|f| seg.value(row as usize, f)).collect::<Result<_>>()?;
                Ok(Some(Record { id, vector: seg.vector(row as usize).to_vec(), values }))
            }
        }
    }

    /// A parameter value.
    #[must_use]
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn delete_id(&mut self, id: u64) -> Result<bool> {
        if Arc::make_mut(&mut self.mem).delete(id) {
            return Ok(true);
        }
        for s in &mut self.segments {
            if let Some(row) = s.segment.row_of(id)?
                && !s.tombstones.contains(row)
            {
                Arc::make_mut(&mut s.tombstones).insert(row);
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Applies a committed batch, moving its records into the in-memory rows (no copy). Fails
    /// only when a segment's id index fails its first-use check (a commit checks them first).
    fn apply(&mut self, batch: Batch) -> Result<()> {
        let mut pending: Vec<Option<Record>> = Vec::new();
        let mut at: HashMap<u64, usize> = HashMap::new();
        for op in batch.ops {
            match op {
                Op::Put(r) => {
                    if let Some(i) = at.get(&r.id) {
                        if let Some(slot) = pending.get_mut(*i) {
                            *slot = Some(r);
                        }
                    } else {
                        self.delete_id(r.id)?;
                        at.insert(r.id, pending.len());
                        pending.push(Some(r));
                    }
                }
                Op::Delete(id) => {
                    if let Some(i) = at.remove(&id) {
                        if let Some(slot) = pending.get_mut(i) {
                            *slot = None;
                        }
                    } else {
                        self.delete_id(id)?;
                    }
                }
            }
        }
        Arc::make_mut(&mut self.mem).append(pending.into_iter().flatten().collect());
        self.last_seq = batch.seq;
        Ok(())
    }

    fn entry(&self) -> Result<CollectionEntry> {
        let mut segments = Vec::with_capacity(self.segments.len());
        for s in &self.segments {
            let mut tombstones = Vec::new();
            s.tombstones.serialize_into(&mut tombstones).map_err(|e| Error::Invalid(e.to_string()))?;
            segments.push(SegmentEntry {
                id: s.segment.segment_id(),
                rows: s.segment.rows() as u64,
                file_len: s.segment.file_len() as u64,
                tombstones,
            });
        }
        Ok(CollectionEntry {
            id: self.id,
            name: self.name.clone(),
            schema: (*self.schema).clone(),
            segments,
            wal_id: self.wal_id,
            next_segment_id: self.next_segment_id,
            flushed_seq: self.flushed_seq,
            params: self.params.clone(),
        })
    }
}

/// An immutable view of the whole database.
#[derive(Debug, Clone, Default)]
pub struct DbState {
    /// Manifest generation this state derives from.
    pub generation: u64,
    /// Next collection id.
    pub next_collection_id: u64,
    /// Collections by name.
    pub collections: BTreeMap<String, Arc<CollectionState>>,
}

impl DbState {
    /// Whether this state holds commits that `other` lacks: a later manifest generation, or the
    /// same generation with a longer committed log in some collection. Two loads of one database
    /// are ordered this way because generations only grow and, within one, batches only append.
    fn is_newer_than(&self, other: &DbState) -> bool {
        self.generation > other.generation
            || (self.generation == other.generation
                && self
                    .collections
                    .iter()
                    .any(|(name, c)| other.collections.get(name).is_some_and(|o| c.last_seq > o.last_seq)))
    }

    fn manifest(&self) -> Result<Manifest> {
        Ok(Manifest {
            generation: self.generation,
            next_collection_id: self.next_collection_id,
            collections: self.collections.values().map(|c| c.entry()).collect::<Result<_>>()?,
        })
    }
}

/// What opening found and did.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    /// WAL files whose torn tail was dropped.
    pub torn_wal_tails: Vec<PathBuf>,
    /// Files skipped in recovery mode, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// Leftover files from interrupted operations that were removed.
    pub removed_orphans: Vec<PathBuf>,
}

#[derive(Debug, Default)]
struct Writer {
    wals: HashMap<u64, WalWriter>,
    poisoned: Option<String>,
    pending_deletes: Vec<PathBuf>,
}

/// An open database directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    opts: StoreOptions,
    _lock: Option<WriterLock>,
    current: RwLock<Arc<DbState>>,
    writer: Mutex<Writer>,
    report: OpenReport,
}

/// Name of the query-sample vector blob.
pub const QUERY_SAMPLE: &str = "query_sample";

/// Directory of collection `id`.
#[must_use]
pub fn collection_dir(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("col-{id:06}"))
}

/// Path of a segment file.
#[must_use]
pub fn segment_path(dir: &Path, col: u64, seg: u64) -> PathBuf {
    collection_dir(dir, col).join(format!("seg-{seg:06}.seg"))
}

/// Path of a WAL file.
#[must_use]
pub fn wal_path(dir: &Path, col: u64, wal: u64) -> PathBuf {
    collection_dir(dir, col).join(format!("wal-{wal:06}.log"))
}

/// How long a read-only open or refresh keeps retrying a load that raced the writer.
const LOAD_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(10);

fn is_retryable(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if matches!(source.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::WouldBlock))
}

struct MemRows<'a> {
    rows: Vec<&'a Record>,
}

impl RowSource for MemRows<'_> {
    fn rows(&self) -> usize {
        self.rows.len()
    }
    fn id(&self, row: usize) -> u64 {
        self.rows.get(row).map_or(u64::MAX, |r| r.id)
    }
    fn vector(&self, row: usize) -> &[f32] {
        self.rows.get(row).map_or(&[], |r| &r.vector)
    }
    fn value(&self, row: usize, field: usize) -> Result<Option<Value>> {
        Ok(self.rows.get(row).and_then(|r| r.values.get(field)).cloned().flatten())
    }
}

struct SegmentRows<'a> {
    segments: &'a [SegmentHandle],
    rows: Vec<(usize, u32)>,
}

impl RowSource for SegmentRows<'_> {
    fn rows(&self) -> usize {
        self.rows.len()
    }
    fn id(&self, row: usize) -> u64 {
        self.rows.get(row).and_then(|(s, r)| Some(self.segments.get(*s)?.segment.id(*r as usize))).unwrap_or(u64::MAX)
    }
    fn vector(&self, row: usize) -> &[f32] {
        self.rows.get(row).and_then(|(s, r)| Some(self.segments.get(*s)?.segment.vector(*r as usize))).unwrap_or(&[])
    }
    fn value(&self, row: usize, field: usize) -> Result<Option<Value>> {
        match self.rows.get(row).and_then(|(s, r)| Some((self.segments.get(*s)?, *r))) {
            Some((s, r)) => s.segment.value(r as usize, field),
            None => Ok(None),
        }
    }
}

impl Store {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path, mut opts: StoreOptions) -> Result<Store> {
        if opts.recover {
            opts.read_only = true;
        }
        let vfs = Arc::clone(&opts.vfs);
        let lock = if opts.read_only {
            if !vfs.exists(&dir.join(manifest::FILE)) {
                return Err(Error::Invalid(format!("{} is not a skysift database (no MANIFEST)", dir.display())));
            }
            None
        } else {
            if !vfs.exists(dir) {
                if !opts.create {
                    return Err(Error::Invalid(format!("{} does not exist", dir.display())));
                }
                vfs.create_dir_all(dir)?;
            }
            Some(WriterLock::acquire(dir)?)
        };
        let (state, wals, report) = Self::load_retrying(dir, &opts)?;
        let mut store = Store {
            dir: dir.to_path_buf(),
            opts,
            _lock: lock,
            current: RwLock::new(Arc::new(state)),
            writer: Mutex::new(Writer { wals, poisoned: None, pending_deletes: Vec::new() }),
            report,
        };
        if !store.opts.read_only {
            let removed = store.remove_orphans()?;
            store.report.removed_orphans = removed;
        }
        Ok(store)
    }

    /// [`Store::load`], retried while a read-only handle races the writer: the writer publishes a
    /// new manifest before it removes the files the old one named, so a file that vanished (or is
    /// being removed) while the manifest moved on is a race, and the load starts again, with a
    /// growing pause, for up to [`LOAD_RETRY_FOR`]. Two failures under the same manifest
    /// generation are an error (a file really missing costs one short retry). Writers hold the
    /// lock and never retry.
    fn load_retrying(dir: &Path, opts: &StoreOptions) -> Result<(DbState, HashMap<u64, WalWriter>, OpenReport)> {
        let start = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(1);
        let mut failed_under = None;
        loop {
            match Self::load(dir, opts) {
                Err(e) if opts.read_only && is_retryable(&e) && start.elapsed() < LOAD_RETRY_FOR => {
                    let generation = Manifest::load(&*opts.vfs, dir).ok().flatten().map(|m| m.generation);
                    if failed_under == Some(generation) {
                        return Err(e);
                    }
                    failed_under = Some(generation);
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(50));
                }
                r => return r,
            }
        }
    }

    fn load(dir: &Path, opts: &StoreOptions) -> Result<(DbState, HashMap<u64, WalWriter>, OpenReport)> {
        let vfs = &*opts.vfs;
        let mut report = OpenReport::default();
        let manifest = if let Some(m) = Manifest::load(vfs, dir)? {
            m
        } else {
            let m = Manifest { generation: 1, next_collection_id: 1, collections: Vec::new() };
            m.publish(vfs, dir)?;
            m
        };
        let mut collections = BTreeMap::new();
        let mut wals = HashMap::new();
        for c in &manifest.collections {
            let mut segments = Vec::with_capacity(c.segments.len());
            for s in &c.segments {
                let path = segment_path(dir, c.id, s.id);
                let opened = vfs.map(&path).and_then(|bytes| {
                    let mut seg = Segment::open(&path, bytes)?;
                    seg.bind_schema(&c.schema)?;
                    if seg.rows() as u64 != s.rows || seg.file_len() as u64 != s.file_len || seg.segment_id() != s.id {
                        return Err(Error::corrupted(&path, "header", 0, "segment does not match its manifest entry"));
                    }
                    let tombstones = RoaringBitmap::deserialize_from(&s.tombstones[..])
                        .map_err(|e| Error::corrupted(dir.join(manifest::FILE), "tombstones", 0, e.to_string()))?;
                    Ok(SegmentHandle { segment: Arc::new(seg), tombstones: Arc::new(tombstones) })
                });
                match opened {
                    Ok(h) => segments.push(h),
                    Err(e) if opts.recover && !is_retryable(&e) => report.skipped.push((path, e.to_string())),
                    Err(e) => return Err(e),
                }
            }
            let mut col = CollectionState {
                id: c.id,
                name: c.name.clone(),
                schema: Arc::new(c.schema.clone()),
                params: c.params.clone(),
                segments,
                mem: Arc::new(MemTable::default()),
                last_seq: c.flushed_seq,
                flushed_seq: c.flushed_seq,
                wal_id: c.wal_id,
                wal_len: wal::HEADER_LEN as u64,
                next_segment_id: c.next_segment_id,
            };
            let path = wal_path(dir, c.id, c.wal_id);
            let bytes = vfs.read(&path);
            let replay = match bytes.and_then(|b| wal::replay(&path, &b, &c.schema).map(|r| (r, b.len() as u64))) {
                Ok(r) => Some(r),
                Err(e) if opts.recover && !is_retryable(&e) => {
                    report.skipped.push((path.clone(), e.to_string()));
                    None
                }
                Err(e) => return Err(e),
            };
            if let Some((replay, file_len)) = replay {
                if replay.torn {
                    report.torn_wal_tails.push(path.clone());
                }
                for batch in replay.batches {
                    if batch.seq > col.flushed_seq {
                        col.apply(batch)?;
                    }
                }
                col.wal_len = replay.valid_len;
                if !opts.read_only {
                    wals.insert(c.id, WalWriter::reopen(vfs, &path, replay.valid_len, file_len)?);
                }
            }
            collections.insert(c.name.clone(), Arc::new(col));
        }
        let state =
            DbState { generation: manifest.generation, next_collection_id: manifest.next_collection_id, collections };
        Ok((state, wals, report))
    }

    fn remove_orphans(&self) -> Result<Vec<PathBuf>> {
        let vfs = &*self.opts.vfs;
        let state = self.snapshot();
        let mut removed = Vec::new();
        let known: HashMap<String, &CollectionState> =
            state.collections.values().map(|c| (format!("col-{:06}", c.id), &**c)).collect();
        for name in vfs.list(&self.dir)? {
            let path = self.dir.join(&name);
            if name == manifest::TMP_FILE {
                vfs.remove(&path)?;
                removed.push(path);
            } else if name.starts_with("col-") {
                match known.get(&name) {
                    None => {
                        let mut all_unused = true;
                        for f in vfs.list(&path)? {
                            all_unused &= vfs.remove_if_unused(&path.join(f))?;
                        }
                        if all_unused {
                            vfs.remove_dir_all(&path)?;
                            removed.push(path);
                        }
                    }
                    Some(c) => {
                        let live: Vec<String> = c
                            .segments
                            .iter()
                            .map(|s| format!("seg-{:06}.seg", s.segment.segment_id()))
                            .chain(std::iter::once(format!("wal-{:06}.log", c.wal_id)))
                            .chain(c.params.iter().filter_map(|(k, _)| k.strip_prefix("vec.")).map(vecblob::file_name))
                            .collect();
                        for f in vfs.list(&path)? {
                            if !live.contains(&f) && vfs.remove_if_unused(&path.join(&f))? {
                                removed.push(path.join(f));
                            }
                        }
                    }
                }
            }
        }
        if !removed.is_empty() {
            vfs.sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether writes are refused.
    #[must_use]
    pub fn read_only(&self) -> bool {
        self.opts.read_only
    }

    /// What opening found.
    #[must_use]
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// A consistent, immutable view of the database.
    #[must_use]
    pub fn snapshot(&self) -> Arc<DbState> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Re-reads the database from disk (read-only handles follow the writer this way).
    pub fn refresh(&self) -> Result<()> {
        if !self.opts.read_only {
            return Ok(());
        }
        let (state, _, _) = Self::load_retrying(&self.dir, &self.opts)?;
        self.publish_loaded(state);
        Ok(())
    }

    /// Publishes a state that `refresh` loaded, unless the current one is newer: threads sharing
    /// this handle refresh at the same time, and one that read the files earlier may finish later.
    fn publish_loaded(&self, state: DbState) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if !current.is_newer_than(&state) {
            *current = Arc::new(state);
        }
    }

    /// Publishes `state` with collection `c` replaced (by name): manifest first, then the view
    /// readers see.
    fn replace_collection(&self, state: &DbState, c: CollectionState) -> Result<()> {
        let mut next = state.clone();
        next.generation += 1;
        next.collections.insert(c.name.clone(), Arc::new(c));
        next.manifest()?.publish(&*self.opts.vfs, &self.dir)?;
        self.publish_state(next);
        Ok(())
    }

    fn publish_state(&self, state: DbState) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(state);
    }

    /// Takes the writer; fails at once when another thread holds it.
    fn writer(&self) -> Result<MutexGuard<'_, Writer>> {
        if self.opts.read_only {
            return Err(Error::Invalid("the database is open read-only".into()));
        }
        let w = match self.writer.try_lock() {
            Ok(w) => w,
            Err(std::sync::TryLockError::WouldBlock) => return Err(Error::Locked { path: self.dir.clone() }),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        };
        if let Some(p) = &w.poisoned {
            return Err(Error::Poisoned(p.clone()));
        }
        Ok(w)
    }

    /// Runs a mutating step; any error poisons the writer.
    fn guarded<T>(w: &mut Writer, f: impl FnOnce(&mut Writer) -> Result<T>) -> Result<T> {
        let r = f(w);
        if let Err(e) = &r
            && !matches!(e, Error::Invalid(_))
        {
            w.poisoned = Some(e.to_string());
        }
        r
    }

    fn retry_deletes(&self, w: &mut Writer) {
        let vfs = &*self.opts.vfs;
        w.pending_deletes.retain(|p| !matches!(vfs.remove_if_unused(p), Ok(true)));
    }

    fn index_sections(&self, col: &CollectionState, src: &dyn RowSource) -> Result<Vec<(SectionKind, Vec<u8>)>> {
        let Some(ix) = &self.opts.indexer else { return Ok(Vec::new()) };
        let sample = if col.param(&format!("vec.{QUERY_SAMPLE}")).is_some() {
            Some(vecblob::read(&*self.opts.vfs, &collection_dir(&self.dir, col.id), QUERY_SAMPLE)?)
        } else {
            None
        };
        let ctx = IndexContext {
            schema: &col.schema,
            params: &col.params,
            query_sample: sample.as_ref().filter(|(d, _)| *d == col.schema.dim as usize).map(|(_, v)| v.as_slice()),
        };
        ix.build(&ctx, src)
    }

    /// The collection's stored query sample, when it has one.
    pub fn query_sample(&self, name: &str) -> Result<Option<Vec<f32>>> {
        let state = self.snapshot();
        let col = state.collections.get(name).ok_or_else(|| Error::Invalid(format!("no collection named {name:?}")))?;
        if col.param(&format!("vec.{QUERY_SAMPLE}")).is_none() {
            return Ok(None);
        }
        Ok(Some(vecblob::read(&*self.opts.vfs, &collection_dir(&self.dir, col.id), QUERY_SAMPLE)?.1))
    }

    /// Stores a query sample for a collection (used when its next segments are indexed).
    pub fn set_query_sample(&self, name: &str, data: &[f32]) -> Result<()> {
        let mut g = self.try_begin_write()?;
        let (state, col) = g.collection(name)?;
        let dim = col.schema.dim as usize;
        if data.is_empty() || !data.len().is_multiple_of(dim) || data.iter().any(|x| !x.is_finite()) {
            return Err(Error::Invalid(format!("a query sample must be finite rows of {dim} components")));
        }
        let store = self;
        Store::guarded(&mut g.w, |_| {
            vecblob::write(&*store.opts.vfs, &collection_dir(&store.dir, col.id), QUERY_SAMPLE, dim, data)?;
            let mut c = (*col).clone();
            c.params.retain(|(k, _)| k != &format!("vec.{QUERY_SAMPLE}"));
            c.params.push((format!("vec.{QUERY_SAMPLE}"), format!("{} rows", data.len() / dim)));
            c.params.sort();
            store.replace_collection(&state, c)
        })
    }

    /// Whether a writer-side handle is held: used by the API to refuse a second writer.
    pub fn try_begin_write(&self) -> Result<WriteGuard<'_>> {
        Ok(WriteGuard { store: self, w: self.writer()? })
    }

    /// Creates a collection.
    pub fn create_collection(&self, name: &str, schema: Schema, params: Vec<(String, String)>) -> Result<()> {
        self.try_begin_write()?.create_collection(name, schema, params)
    }

    /// Drops a collection and (once no snapshot uses them) its files.
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        self.try_begin_write()?.drop_collection(name)
    }

    /// Commits one batch of operations to a collection.
    pub fn commit(&self, name: &str, ops: Vec<Op>) -> Result<u64> {
        self.try_begin_write()?.commit(name, ops)
    }

    /// Turns the in-memory rows of a collection into a segment.
    pub fn flush(&self, name: &str) -> Result<()> {
        self.try_begin_write()?.flush(name)
    }

    /// Merges all segments of a collection into one, dropping deleted rows.
    pub fn compact(&self, name: &str) -> Result<()> {
        self.try_begin_write()?.compact(name)
    }

    /// Adds a nullable user field to a collection; existing rows read it as null. The collection
    /// is flushed first, so that no WAL frame holds records of the old shape.
    pub fn add_field(&self, name: &str, field: FieldDef) -> Result<()> {
        self.try_begin_write()?.add_field(name, field)
    }

    /// Attaches sealed segments written elsewhere to a collection in one manifest commit (see
    /// [`WriteGuard::attach`]).
    pub fn attach(&self, name: &str, staged: &[StagedSegment], upsert: bool) -> Result<AttachReport> {
        self.try_begin_write()?.attach(name, staged, upsert)
    }

    /// Writes a batch of rows into a collection as one new segment, without the WAL (see
    /// [`WriteGuard::append_rows`]).
    pub fn append_rows(&self, name: &str, batch: &RowBatch, upsert: bool) -> Result<AppendReport> {
        self.try_begin_write()?.append_rows(name, batch, upsert)
    }

    /// Replaces a collection's parameters.
    pub fn set_params(&self, name: &str, params: Vec<(String, String)>) -> Result<()> {
        self.try_begin_write()?.set_params(name, params)
    }
}

/// Exclusive write access to a [`Store`], held by one transaction at a time.
#[derive(Debug)]
pub struct WriteGuard<'a> {
    store: &'a Store,
    w: MutexGuard<'a, Writer>,
}

impl WriteGuard<'_> {
    fn collection(&self, name: &str) -> Result<(Arc<DbState>, Arc<CollectionState>)> {
        let state = self.store.snapshot();
        let col = state
            .collections
            .get(name)
            .cloned()
            .ok_or_else(|| Error::Invalid(format!("no collection named {name:?}")))?;
        Ok((state, col))
    }

    /// See [`Store::create_collection`].
    pub fn create_collection(&mut self, name: &str, schema: Schema, params: Vec<(String, String)>) -> Result<()> {
        let store = self.store;
        let state = store.snapshot();
        if state.collections.contains_key(name) {
            return Err(Error::Invalid(format!("collection {name:?} already exists")));
        }
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(Error::Invalid(format!("collection name {name:?} must be 1..=128 printable characters")));
        }
        schema.validate().map_err(Error::Invalid)?;
        let mut params = params;
        params.sort();
        Store::guarded(&mut self.w, |w| {
            let vfs = &*store.opts.vfs;
            let id = state.next_collection_id;
            let cdir = collection_dir(&store.dir, id);
            vfs.create_dir_all(&cdir)?;
            let wal = WalWriter::create(vfs, &wal_path(&store.dir, id, 1), 1)?;
            vfs.sync_dir(&cdir)?;
            vfs.sync_dir(&store.dir)?;
            let mut next = (*state).clone();
            next.generation += 1;
            next.next_collection_id = id + 1;
            let col = CollectionState {
                id,
                name: name.to_owned(),
                schema: Arc::new(schema),
                params,
                segments: Vec::new(),
                mem: Arc::new(MemTable::default()),
                last_seq: 0,
                flushed_seq: 0,
                wal_id: 1,
                wal_len: wal.len(),
                next_segment_id: 1,
            };
            next.collections.insert(name.to_owned(), Arc::new(col));
            next.manifest()?.publish(vfs, &store.dir)?;
            w.wals.insert(id, wal);
            store.publish_state(next);
            Ok(())
        })
    }

    /// See [`Store::drop_collection`].
    pub fn drop_collection(&mut self, name: &str) -> Result<()> {
        let (state, col) = self.collection(name)?;
        let store = self.store;
        Store::guarded(&mut self.w, |w| {
            let mut next = (*state).clone();
            next.generation += 1;
            next.collections.remove(name);
            next.manifest()?.publish(&*store.opts.vfs, &store.dir)?;
            w.wals.remove(&col.id);
            store.publish_state(next);
            Ok(())
        })?;
        drop(state);
        drop(col);
        // The directory goes once no snapshot maps its files; until then the orphan sweep
        // of a later open (or drop) retries.
        let _ = self.store.remove_orphans();
        Ok(())
    }

    /// See [`Store::commit`]. Records must already satisfy the schema (checked again here).
    pub fn commit(&mut self, name: &str, ops: Vec<Op>) -> Result<u64> {
        let (state, col) = self.collection(name)?;
        for op in &ops {
            if let Op::Put(r) = op {
                col.schema.check_record(r).map_err(Error::Invalid)?;
            }
        }
        // Applying the batch looks ids up: their indexes are checked before it is durable, so
        // that a damaged one refuses the commit instead of failing it after the WAL write.
        for s in &col.segments {
            s.segment.check_id_index()?;
        }
        let store = self.store;
        let seq = col.last_seq + 1;
        let batch = Batch { seq, ops };
        drop(col);
        Store::guarded(&mut self.w, |w| {
            let wal = w
                .wals
                .get_mut(&state.collections.get(name).map_or(u64::MAX, |c| c.id))
                .ok_or_else(|| Error::Invalid(format!("collection {name:?} has no open WAL")))?;
            wal.append(&batch)?;
            let wal_len = wal.len();
            let mut next = (*state).clone();
            drop(state);
            if let Some(c) = next.collections.get_mut(name) {
                let c = Arc::make_mut(c);
                c.apply(batch)?;
                c.wal_len = wal_len;
            }
            store.publish_state(next);
            store.retry_deletes(w);
            Ok(seq)
        })
    }

    /// See [`Store::flush`].
    pub fn flush(&mut self, name: &str) -> Result<()> {
        let (state, col) = self.collection(name)?;
        if col.wal_len <= wal::HEADER_LEN as u64 && col.mem.rows() == 0 {
            return Ok(());
        }
        let store = self.store;
        Store::guarded(&mut self.w, |w| {
            let vfs = &*store.opts.vfs;
            let cdir = collection_dir(&store.dir, col.id);
            let mut c = (*col).clone();
            let rows: Vec<&Record> = col.mem.live_rows().map(|(_, r)| r).collect();
            if !rows.is_empty() {
                let seg_id = c.next_segment_id;
                let path = segment_path(&store.dir, col.id, seg_id);
                let src = MemRows { rows };
                let extra = store.index_sections(&col, &src)?;
                write_segment(vfs, &path, seg_id, &col.schema, &src, &extra)?;
                let bytes = vfs.map(&path)?;
                let seg = Segment::open(&path, bytes)?;
                c.segments.push(SegmentHandle { segment: Arc::new(seg), tombstones: Arc::new(RoaringBitmap::new()) });
                c.next_segment_id += 1;
            }
            let new_wal_id = c.wal_id + 1;
            let wal = WalWriter::create(vfs, &wal_path(&store.dir, col.id, new_wal_id), new_wal_id)?;
            vfs.sync_dir(&cdir)?;
            let old_wal = wal_path(&store.dir, col.id, c.wal_id);
            c.wal_id = new_wal_id;
            c.wal_len = wal.len();
            c.flushed_seq = c.last_seq;
            c.mem = Arc::new(MemTable::default());
            let mut next = (*state).clone();
            next.generation += 1;
            next.collections.insert(name.to_owned(), Arc::new(c));
            next.manifest()?.publish(vfs, &store.dir)?;
            w.wals.insert(col.id, wal);
            store.publish_state(next);
            vfs.remove(&old_wal)?;
            store.retry_deletes(w);
            Ok(())
        })
    }

    /// See [`Store::compact`].
    pub fn compact(&mut self, name: &str) -> Result<()> {
        self.flush(name)?;
        let (state, col) = self.collection(name)?;
        let dead: u64 = col.segments.iter().map(|s| s.tombstones.len()).sum();
        if col.segments.len() <= 1 && dead == 0 {
            return Ok(());
        }
        let store = self.store;
        Store::guarded(&mut self.w, |w| {
            let vfs = &*store.opts.vfs;
            let mut rows = Vec::new();
            for (i, s) in col.segments.iter().enumerate() {
                rows.extend((0..s.segment.rows() as u32).filter(|r| !s.tombstones.contains(*r)).map(|r| (i, r)));
            }
            let mut c = (*col).clone();
            let old: Vec<PathBuf> = col.segments.iter().map(|s| s.segment.path().to_path_buf()).collect();
            c.segments.clear();
            if !rows.is_empty() {
                let seg_id = c.next_segment_id;
                let path = segment_path(&store.dir, col.id, seg_id);
                let src = SegmentRows { segments: &col.segments, rows };
                let extra = store.index_sections(&col, &src)?;
                write_segment(vfs, &path, seg_id, &col.schema, &src, &extra)?;
                vfs.sync_dir(&collection_dir(&store.dir, col.id))?;
                let seg = Segment::open(&path, vfs.map(&path)?)?;
                c.segments.push(SegmentHandle { segment: Arc::new(seg), tombstones: Arc::new(RoaringBitmap::new()) });
                c.next_segment_id += 1;
            }
            let mut next = (*state).clone();
            next.generation += 1;
            next.collections.insert(name.to_owned(), Arc::new(c));
            next.manifest()?.publish(vfs, &store.dir)?;
            store.publish_state(next);
            drop(state);
            drop(col);
            w.pending_deletes.extend(old);
            store.retry_deletes(w);
            Ok(())
        })
    }

    /// See [`Store::add_field`].
    pub fn add_field(&mut self, name: &str, field: FieldDef) -> Result<()> {
        let (_, col) = self.collection(name)?;
        let schema = col.schema.with_field(field).map_err(Error::Invalid)?;
        drop(col);
        self.flush(name)?;
        let (state, col) = self.collection(name)?;
        let store = self.store;
        Store::guarded(&mut self.w, |_| {
            let mut c = (*col).clone();
            // Rebind every segment to the new field numbering; the maps are shared, not copied.
            let mut segments = Vec::with_capacity(c.segments.len());
            for h in &c.segments {
                let mut seg = (*h.segment).clone();
                seg.bind_schema(&schema)?;
                segments.push(SegmentHandle { segment: Arc::new(seg), tombstones: Arc::clone(&h.tombstones) });
            }
            c.segments = segments;
            c.schema = Arc::new(schema);
            store.replace_collection(&state, c)
        })
    }

    /// See [`Store::set_params`].
    pub fn set_params(&mut self, name: &str, mut params: Vec<(String, String)>) -> Result<()> {
        let (state, col) = self.collection(name)?;
        params.sort();
        let store = self.store;
        Store::guarded(&mut self.w, |_| {
            let mut c = (*col).clone();
            c.params = params;
            store.replace_collection(&state, c)
        })
    }

    /// The state as of now.
    #[must_use]
    pub fn snapshot(&self) -> Arc<DbState> {
        self.store.snapshot()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Ok(mut w) = self.writer.lock() {
            let pending = std::mem::take(&mut w.pending_deletes);
            // Our own snapshots are gone once the store is dropped by its last holder.
            *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(DbState::default());
            for p in pending {
                let _ = self.opts.vfs.remove_if_unused(&p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::schema;

    fn put(store: &Store, id: u64) {
        let values = vec![None; schema().fields.len()];
        store.commit("c", vec![Op::Put(Record { id, vector: vec![1.0, 0.0, 0.0, 0.0], values })]).unwrap();
    }

    /// A writer on `dir` with collection "c" holding one committed row.
    fn writer_with_one_row(dir: &Path) -> Store {
        let writer = Store::open(dir, StoreOptions::default()).unwrap();
        writer.create_collection("c", schema(), Vec::new()).unwrap();
        put(&writer, 1);
        writer
    }

    fn last_seq(store: &Store) -> u64 {
        store.snapshot().collections["c"].last_seq
    }

    #[test]
    fn a_refresh_that_read_earlier_never_replaces_a_newer_state() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer_with_one_row(dir.path());
        let reader = Store::open(dir.path(), StoreOptions { read_only: true, ..StoreOptions::default() }).unwrap();
        // What a slow thread read: one batch, in the current generation.
        let (early, _, _) = Store::load(dir.path(), &reader.opts).unwrap();
        put(&writer, 2);
        reader.refresh().unwrap();
        assert_eq!(last_seq(&reader), 2);
        reader.publish_loaded(early);
        assert_eq!(last_seq(&reader), 2, "same generation, fewer batches");
        // A later generation (the flush) wins over the same batches in the one before.
        let (before_flush, _, _) = Store::load(dir.path(), &reader.opts).unwrap();
        writer.flush("c").unwrap();
        reader.refresh().unwrap();
        let flushed = reader.snapshot().generation;
        reader.publish_loaded(before_flush);
        assert_eq!(reader.snapshot().generation, flushed);
        assert_eq!(last_seq(&reader), 2);
        // And a newer load still replaces the current state.
        put(&writer, 3);
        let (newer, _, _) = Store::load(dir.path(), &reader.opts).unwrap();
        reader.publish_loaded(newer);
        assert_eq!(last_seq(&reader), 3);
    }

    #[test]
    fn a_file_missing_under_an_unchanged_manifest_fails_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer_with_one_row(dir.path());
        writer.flush("c").unwrap();
        let state = writer.snapshot();
        let c = &state.collections["c"];
        let seg = segment_path(dir.path(), c.id, c.segments[0].segment.segment_id());
        drop((state, writer));
        std::fs::remove_file(&seg).unwrap();
        let t = std::time::Instant::now();
        let err = Store::open(dir.path(), StoreOptions { read_only: true, ..StoreOptions::default() }).unwrap_err();
        assert!(is_retryable(&err), "{err}");
        assert!(t.elapsed() < std::time::Duration::from_secs(1), "{:?}", t.elapsed());
    }
}
