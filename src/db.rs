//! The database handle, collections, write transactions and snapshots.
//!
//! Invariants:
//! - [`Db`] is `Send + Sync` and cheap to clone; many threads read through [`Snapshot`]s
//!   while one [`WriteTxn`] at a time writes (a second one fails at once with `Locked`);
//! - a snapshot never changes, whatever the writer does after it was taken;
//! - every record reaching storage satisfies its schema, and vectors of cosine collections
//!   are L2-normalised.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use skysift_storage::io::{RealVfs, Vfs};
use skysift_storage::schema::{FieldDef, FieldType, Metric, Record, Schema, Value};
use skysift_storage::store::{AppendReport, CollectionState, DbState, RowBatch, Store, StoreOptions, WriteGuard};
use skysift_storage::wal::Op;

use crate::error::{Error, Result};
use crate::index::segment_index::HnswIndexer;
use crate::index::{Hit, IndexParams, SearchParams, SearchScratch, exact};
use crate::query::exec::Selection;

/// Opens a database with options; see [`Db::builder`].
#[derive(Debug, Clone)]
#[expect(clippy::struct_excessive_bools, reason = "independent options, each set by its own builder method")]
pub struct DbBuilder {
    path: PathBuf,
    read_only: bool,
    recover: bool,
    create: bool,
    flush_rows: usize,
    flush_in_background: bool,
    index_threads: usize,
    vfs: Arc<dyn Vfs>,
}

impl DbBuilder {
    /// Threads used to build segment graphs. Default: 0 (all cores).
    #[must_use]
    pub fn index_threads(mut self, threads: usize) -> Self {
        self.index_threads = threads;
        self
    }

    /// Open without taking the writer lock; writes fail. Default: `false`.
    #[must_use]
    pub fn read_only(mut self, yes: bool) -> Self {
        self.read_only = yes;
        self
    }

    /// Skip damaged files instead of failing, read-only. Default: `false`.
    #[must_use]
    pub fn recover(mut self, yes: bool) -> Self {
        self.recover = yes;
        self
    }

    /// Create the directory when missing. Default: `true`.
    #[must_use]
    pub fn create(mut self, yes: bool) -> Self {
        self.create = yes;
        self
    }

    /// Flush a collection's in-memory rows to a segment after a commit leaves at least this
    /// many of them. Default: 100,000.
    #[must_use]
    pub fn flush_rows(mut self, rows: usize) -> Self {
        self.flush_rows = rows.max(1);
        self
    }

    /// Build the segment of an automatic flush (see [`DbBuilder::flush_rows`]) on a background
    /// thread, so that [`WriteTxn::commit`] returns once the batch is durable: the rows are
    /// searchable (exactly, from memory) at once and by the graph when the segment is in. The
    /// next write (a transaction, flush, compact, schema change, attach) waits for that build;
    /// a build that failed is reported by the next commit's [`CommitInfo::flush_error`].
    /// [`Db::wait_for_flush`] waits for it explicitly. Default: `false` (the commit builds it).
    #[must_use]
    pub fn flush_in_background(mut self, yes: bool) -> Self {
        self.flush_in_background = yes;
        self
    }

    /// File system to use (tests inject faults through this). Default: the real one.
    #[must_use]
    pub fn vfs(mut self, vfs: Arc<dyn Vfs>) -> Self {
        self.vfs = vfs;
        self
    }

    /// Opens the database.
    pub fn open(self) -> Result<Db> {
        let store = Store::open(
            &self.path,
            StoreOptions {
                read_only: self.read_only,
                recover: self.recover,
                create: self.create,
                vfs: self.vfs,
                indexer: Some(Arc::new(HnswIndexer { threads: self.index_threads })),
            },
        )?;
        Ok(Db {
            inner: Arc::new(Inner {
                store,
                flush_rows: self.flush_rows,
                flush_in_background: self.flush_in_background,
                background: Mutex::new(Background::default()),
            }),
        })
    }
}

#[derive(Debug)]
struct Inner {
    store: Store,
    flush_rows: usize,
    flush_in_background: bool,
    background: Mutex<Background>,
}

/// The automatic flush running on its own thread, and the failure of the last one.
#[derive(Debug, Default)]
struct Background {
    running: Option<JoinHandle<Result<()>>>,
    failed: Option<String>,
}

/// An open database. Clone it freely; all clones share one handle.
#[derive(Debug, Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

/// What a new collection looks like.
#[derive(Debug, Clone)]
pub struct CollectionSpec {
    /// Vector dimension.
    pub dim: u32,
    /// Similarity metric.
    pub metric: Metric,
    /// User fields (the reserved `source`, `scene`, `window`, `thumbnail` are added).
    pub fields: Vec<(String, FieldType)>,
    /// Free-form parameters stored with the collection.
    pub params: Vec<(String, String)>,
}

impl CollectionSpec {
    /// A spec with no user fields.
    #[must_use]
    pub fn new(dim: u32, metric: Metric) -> Self {
        CollectionSpec { dim, metric, fields: Vec::new(), params: Vec::new() }
    }

    /// Sets the index parameters (stored as `index.*` parameters).
    #[must_use]
    pub fn index(mut self, p: IndexParams) -> Self {
        self.params.retain(|(k, _)| !k.starts_with("index."));
        self.params.extend(p.to_params());
        self
    }

    /// Adds a field.
    #[must_use]
    pub fn field(mut self, name: impl Into<String>, ty: FieldType) -> Self {
        self.fields.push((name.into(), ty));
        self
    }
}

/// A record to write: id, vector and named values.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecord {
    /// Stable id.
    pub id: u64,
    /// The embedding.
    pub vector: Vec<f32>,
    /// Field values by name; absent fields are null.
    pub fields: Vec<(String, Value)>,
}

impl NewRecord {
    /// A record without metadata.
    #[must_use]
    pub fn new(id: u64, vector: Vec<f32>) -> Self {
        NewRecord { id, vector, fields: Vec::new() }
    }

    /// Adds a field value.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: Value) -> Self {
        self.fields.push((name.into(), value));
        self
    }
}

/// A record read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// Id.
    pub id: u64,
    /// Vector as stored (normalised for cosine collections).
    pub vector: Vec<f32>,
    /// Non-null fields, in schema order.
    pub fields: Vec<(String, Value)>,
}

impl Db {
    /// Starts building options for the database at `path`.
    pub fn builder(path: impl AsRef<Path>) -> DbBuilder {
        DbBuilder {
            path: path.as_ref().to_path_buf(),
            read_only: false,
            recover: false,
            create: true,
            flush_rows: 100_000,
            flush_in_background: false,
            index_threads: 0,
            vfs: Arc::new(RealVfs),
        }
    }

    /// Opens (or creates) the database at `path` as the writer.
    pub fn open(path: impl AsRef<Path>) -> Result<Db> {
        Db::builder(path).open()
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.inner.store.dir()
    }

    /// What opening found (torn WAL tails dropped, files skipped in recovery, orphans removed).
    #[must_use]
    pub fn open_report(&self) -> &skysift_storage::store::OpenReport {
        self.inner.store.open_report()
    }

    /// Creates a collection.
    pub fn create_collection(&self, name: &str, spec: CollectionSpec) -> Result<()> {
        let fields = spec.fields.into_iter().map(|(name, ty)| FieldDef { name, ty }).collect();
        let schema = Schema::new(spec.dim, spec.metric, fields).map_err(Error::Schema)?;
        IndexParams::from_params(&spec.params)?;
        self.settle();
        self.inner.store.create_collection(name, schema, spec.params)?;
        Ok(())
    }

    /// Drops a collection; its files go once no snapshot uses them.
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        self.snapshot().collection(name)?;
        self.settle();
        self.inner.store.drop_collection(name)?;
        Ok(())
    }

    /// Names of all collections, sorted.
    #[must_use]
    pub fn collections(&self) -> Vec<String> {
        self.inner.store.snapshot().collections.keys().cloned().collect()
    }

    /// A consistent read view of the whole database.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        Snapshot { state: self.inner.store.snapshot() }
    }

    /// Starts a write transaction on one collection; fails at once with `Locked` when
    /// another transaction is open.
    pub fn begin_write(&self, collection: &str) -> Result<WriteTxn<'_>> {
        self.settle();
        let col = self.snapshot().collection(collection)?.state;
        let guard = self.inner.store.try_begin_write()?;
        Ok(WriteTxn { db: self, guard, col, ops: Vec::new(), touched: HashSet::new(), inserted: 0, deleted: 0 })
    }

    /// Turns a collection's in-memory rows into a segment (after a background flush in flight,
    /// whose failure this one supersedes: it flushes the same rows).
    pub fn flush(&self, collection: &str) -> Result<()> {
        self.snapshot().collection(collection)?;
        self.settle();
        self.background().failed = None;
        self.inner.store.flush(collection)?;
        Ok(())
    }

    /// Merges a collection's segments into one and drops deleted rows.
    pub fn compact(&self, collection: &str) -> Result<()> {
        self.snapshot().collection(collection)?;
        self.settle();
        self.inner.store.compact(collection)?;
        Ok(())
    }

    /// Writes `batch` (values in the order of the collection's schema fields) into a
    /// collection as one new segment, durable and visible at once, without the WAL: the bulk
    /// path of `skysift load --from`, one write of every byte instead of two. Vectors are
    /// normalised in place under cosine. Refused, with nothing written, when a row breaks the
    /// schema, an id repeats in the batch, or an id is live in the collection (unless `upsert`:
    /// the batch's row replaces it).
    pub fn append_rows(&self, collection: &str, batch: &mut RowBatch, upsert: bool) -> Result<AppendReport> {
        let col = self.snapshot().collection(collection)?;
        if !upsert {
            for &id in batch.ids() {
                if col.state.locate(id)?.is_some() {
                    return Err(Error::DuplicateId { collection: collection.to_owned(), id });
                }
            }
        }
        if col.schema().metric == Metric::Cosine {
            for row in 0..batch.len() {
                let v = batch.vector_mut(row);
                // A component that is not finite is the schema check's to name.
                if v.iter().all(|x| x.is_finite()) && normalize(v).is_none() {
                    let id = batch.ids().get(row).copied().unwrap_or_default();
                    return Err(Error::BadRecord {
                        id,
                        reason: format!("record {id}: a zero vector has no direction under cosine"),
                    });
                }
            }
        }
        Ok(self.store().append_rows(collection, batch, upsert)?)
    }

    /// True when this handle was opened read-only (it follows a writer with [`Db::refresh`]).
    #[must_use]
    pub fn is_read_only(&self) -> bool {
        self.inner.store.read_only()
    }

    /// Adds a nullable field to a collection's schema; records written before read it as null.
    /// Flushes the collection first. Fails when the name is taken or not a valid field name.
    pub fn add_field(&self, collection: &str, name: &str, ty: FieldType) -> Result<()> {
        self.snapshot().collection(collection)?;
        self.settle();
        self.inner.store.add_field(collection, FieldDef { name: name.to_owned(), ty })?;
        Ok(())
    }

    /// Stores a sample of queries (row-major vectors of the collection's dimension) that guides
    /// the graphs of the collection's next segments (flush, compact) toward out-of-distribution
    /// queries such as text queries over image vectors.
    pub fn set_query_sample(&self, collection: &str, sample: &[f32]) -> Result<()> {
        let col = self.snapshot().collection(collection)?;
        let dim = col.schema().dim as usize;
        let mut rows = Vec::with_capacity(sample.len());
        for q in sample.chunks(dim) {
            rows.extend(col.prepare_query(q)?);
        }
        self.settle();
        self.inner.store.set_query_sample(collection, &rows)?;
        Ok(())
    }

    /// The storage handle for the crate's own write paths, such as [`Db::attach`] (after any
    /// background flush).
    pub(crate) fn store(&self) -> &Store {
        self.settle();
        &self.inner.store
    }

    /// Waits for the background flush in flight, if any (see
    /// [`DbBuilder::flush_in_background`]); returns its error when it failed.
    pub fn wait_for_flush(&self) -> Result<()> {
        self.settle();
        match self.background().failed.take() {
            Some(e) => Err(Error::Invalid(format!("the background flush failed: {e}"))),
            None => Ok(()),
        }
    }

    fn background(&self) -> std::sync::MutexGuard<'_, Background> {
        self.inner.background.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the background flush in flight and keeps its failure for the next commit. Every
    /// write path calls it first, so that the flush's thread holds the writer alone.
    fn settle(&self) {
        let mut bg = self.background();
        if let Some(h) = bg.running.take() {
            let failed = match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("the flush thread panicked (a bug in skysift; please report it)".to_owned()),
            };
            bg.failed = failed.or(bg.failed.take());
        }
    }

    /// Flushes `collection` on a background thread; see [`DbBuilder::flush_in_background`].
    fn flush_later(&self, collection: String) {
        let mut bg = self.background();
        let db = self.clone();
        let spawned = std::thread::Builder::new()
            .name("skysift-flush".to_owned())
            .spawn(move || Ok(db.inner.store.flush(&collection)?));
        match spawned {
            Ok(h) => bg.running = Some(h),
            Err(e) => bg.failed = Some(format!("could not start the flush thread: {e}")),
        }
    }

    /// Re-reads the database (read-only handles follow the writer this way).
    pub fn refresh(&self) -> Result<()> {
        self.inner.store.refresh()?;
        Ok(())
    }
}

/// A consistent, immutable view of the database.
#[derive(Debug, Clone)]
pub struct Snapshot {
    state: Arc<DbState>,
}

impl Snapshot {
    /// The collection called `name`.
    pub fn collection(&self, name: &str) -> Result<CollectionSnapshot> {
        match self.state.collections.get(name) {
            Some(c) => Ok(CollectionSnapshot { state: Arc::clone(c) }),
            None => Err(Error::NoSuchCollection {
                name: name.to_owned(),
                existing: self.state.collections.keys().cloned().collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// Names of all collections, sorted.
    #[must_use]
    pub fn collections(&self) -> Vec<String> {
        self.state.collections.keys().cloned().collect()
    }

    /// Manifest generation this snapshot reflects.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.state.generation
    }
}

/// One segment, as shown by `info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Segment id.
    pub id: u64,
    /// Rows in the file.
    pub rows: u64,
    /// Live rows.
    pub live: u64,
    /// File size.
    pub bytes: u64,
    /// File path.
    pub path: PathBuf,
}

/// Index state of one segment, as shown by `info`.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentIndexInfo {
    /// Segment id.
    pub segment: u64,
    /// Rows.
    pub rows: u64,
    /// Graph levels, when the segment has a graph.
    pub graph_levels: Option<u32>,
    /// HNSW neighbour slots per node on layer 0.
    pub hnsw_slots: Option<u32>,
    /// Query-guided neighbour slots per node on layer 0.
    pub guided_slots: Option<u32>,
    /// Whether the segment has int8 traversal codes.
    pub int8_codes: bool,
    /// Bytes of graph and codes.
    pub index_bytes: u64,
    /// Search calibration from the build: `(ef, recall@10, held-out queries)`; searches without
    /// an explicit `ef` use at least this width on the segment.
    pub calibration: Option<(u32, f32, u32)>,
}

/// A read view of one collection.
#[derive(Debug, Clone)]
pub struct CollectionSnapshot {
    state: Arc<CollectionState>,
}

impl CollectionSnapshot {
    /// Name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// Schema (user fields followed by the reserved ones).
    #[must_use]
    pub fn schema(&self) -> &Schema {
        &self.state.schema
    }

    /// Stored parameters.
    #[must_use]
    pub fn params(&self) -> &[(String, String)] {
        &self.state.params
    }

    /// Live records.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.state.count()
    }

    /// Rows held in memory (committed to the WAL, not yet in a segment).
    #[must_use]
    pub fn memory_rows(&self) -> usize {
        self.state.mem.live()
    }

    /// Bytes in the write-ahead log.
    #[must_use]
    pub fn wal_bytes(&self) -> u64 {
        self.state.wal_len
    }

    /// The segments.
    #[must_use]
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.state
            .segments
            .iter()
            .map(|s| SegmentInfo {
                id: s.segment.segment_id(),
                rows: s.segment.rows() as u64,
                live: s.live(),
                bytes: s.segment.file_len() as u64,
                path: s.segment.path().to_path_buf(),
            })
            .collect()
    }

    /// Checks a filter expression against the schema without running it.
    pub fn check_filter(&self, expr: &str) -> Result<()> {
        crate::filter::IntoFilter::into_filter(expr, &self.state.schema)
            .map(|_| ())
            .map_err(|e| Error::Invalid(e.to_string()))
    }

    /// Every live id: segments in order, then the in-memory rows.
    pub fn ids(&self) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(self.count() as usize);
        for s in &self.state.segments {
            let ids = s.segment.ids();
            out.extend(ids.iter().enumerate().filter(|(r, _)| !s.tombstones.contains(*r as u32)).map(|(_, id)| *id));
        }
        out.extend(self.state.mem.live_rows().map(|(_, r)| r.id));
        Ok(out)
    }

    /// The live record `id`.
    pub fn get(&self, id: u64) -> Result<Option<StoredRecord>> {
        let Some(r) = self.state.get(id)? else { return Ok(None) };
        let fields =
            self.state.schema.fields.iter().zip(r.values).filter_map(|(f, v)| v.map(|v| (f.name.clone(), v))).collect();
        Ok(Some(StoredRecord { id: r.id, vector: r.vector, fields }))
    }

    /// Exact top-`k` by similarity to `query`, over every live row.
    pub fn search_exact(&self, query: &[f32], k: usize, scratch: &mut SearchScratch) -> Result<Vec<Hit>> {
        let q = self.prepare_query(query)?;
        scratch.top.reset(k);
        exact::scan(&self.state, &q, &mut scratch.top);
        Ok(scratch.top.drain_sorted())
    }

    /// Top-`k` by similarity to `query`: graph search on indexed segments (int8 traversal,
    /// exact rescoring), exact scan elsewhere, merged with the in-memory rows.
    pub fn search(&self, query: &[f32], p: &SearchParams, scratch: &mut SearchScratch) -> Result<Vec<Hit>> {
        let q = self.prepare_query(query)?;
        Ok(crate::query::exec::search(Selection::AllLive(&self.state), &q, p, scratch, None))
    }

    /// Checks a filter (text such as `"class = 'Port' AND year >= 2020"`, a built
    /// [`crate::filter::Expr`], or a [`crate::filter::Filter`]) against the schema and evaluates
    /// it on this snapshot, once, for any number of [`CollectionSnapshot::search_filtered`] calls.
    pub fn prepare_filter(&self, filter: impl crate::filter::IntoFilter) -> Result<crate::query::PreparedFilter> {
        let f = filter.into_filter(&self.state.schema)?;
        crate::query::PreparedFilter::new(Arc::clone(&self.state), f)
    }

    /// Live records passing `filter`.
    pub fn count_where(&self, filter: impl crate::filter::IntoFilter) -> Result<u64> {
        Ok(self.prepare_filter(filter)?.count())
    }

    /// Ids of the live records passing `filter`, ascending.
    pub fn ids_where(&self, filter: impl crate::filter::IntoFilter) -> Result<Vec<u64>> {
        Ok(self.prepare_filter(filter)?.ids())
    }

    /// Top-`k` among the live records passing a prepared filter. The planner picks, per segment,
    /// an exact scan of the passing rows or a graph traversal restricted to them; the result holds
    /// `min(k, passing records)` hits.
    pub fn search_filtered(
        &self,
        query: &[f32],
        filter: &crate::query::PreparedFilter,
        p: &SearchParams,
        scratch: &mut SearchScratch,
    ) -> Result<Vec<Hit>> {
        self.check_prepared(filter)?;
        let q = self.prepare_query(query)?;
        Ok(crate::query::exec::search(Selection::Filter(filter), &q, p, scratch, None))
    }

    /// Searches many queries (`queries`: rows of the collection's dimension, end to end), with
    /// or without a prepared filter, the results in query order. Queries go through in blocks;
    /// where a segment is scanned (a selective filter), each selected row is read once per
    /// block, which makes such searches several times faster than one query at a time. Under
    /// the same strategy each query's results are those [`CollectionSnapshot::search`] or
    /// [`CollectionSnapshot::search_filtered`] give it, to the bit; the planner, knowing the
    /// block shares a scan's reads, scans some segments it would traverse for one query.
    /// `scratch.evaluations` counts the vectors scored for all the queries.
    pub fn search_batch(
        &self,
        queries: &[f32],
        filter: Option<&crate::query::PreparedFilter>,
        p: &SearchParams,
        scratch: &mut SearchScratch,
    ) -> Result<Vec<Vec<Hit>>> {
        if let Some(f) = filter {
            self.check_prepared(f)?;
        }
        let dim = self.state.schema.dim as usize;
        if dim == 0 || !queries.len().is_multiple_of(dim) {
            return Err(Error::Schema(format!(
                "queries hold {} components, not a whole number of rows of dimension {dim} (collection {:?})",
                queries.len(),
                self.state.name
            )));
        }
        let selection = match filter {
            Some(f) => Selection::Filter(f),
            None => Selection::AllLive(&self.state),
        };
        let mut out = Vec::with_capacity(queries.len() / dim);
        let mut block = Vec::with_capacity(crate::query::exec::BLOCK * dim);
        let mut evaluations = 0;
        for chunk in queries.chunks(crate::query::exec::BLOCK * dim) {
            block.clear();
            for q in chunk.chunks_exact(dim) {
                block.extend(self.prepare_query(q)?);
            }
            out.extend(crate::query::exec::search_block(selection, &block, dim, p, scratch, None));
            evaluations += scratch.evaluations;
        }
        scratch.evaluations = evaluations;
        Ok(out)
    }

    /// [`CollectionSnapshot::search_filtered`] with a filter given as text or AST.
    pub fn search_where(
        &self,
        query: &[f32],
        filter: impl crate::filter::IntoFilter,
        p: &SearchParams,
        scratch: &mut SearchScratch,
    ) -> Result<Vec<Hit>> {
        let prepared = self.prepare_filter(filter)?;
        self.search_filtered(query, &prepared, p, scratch)
    }

    /// Runs a filtered search and reports, per segment, the estimated and actual passing rows,
    /// the chosen strategy and why, and the time spent.
    pub fn explain(
        &self,
        query: &[f32],
        filter: &crate::query::PreparedFilter,
        p: &SearchParams,
        scratch: &mut SearchScratch,
    ) -> Result<(Vec<Hit>, crate::query::Explain)> {
        self.check_prepared(filter)?;
        let q = self.prepare_query(query)?;
        let mut e = crate::query::Explain { filter: filter.filter().to_string(), k: p.k, ..Default::default() };
        let hits = crate::query::exec::search(Selection::Filter(filter), &q, p, scratch, Some(&mut e));
        e.hits = hits.len();
        for (x, s) in e.segments.iter_mut().zip(&self.state.segments) {
            x.estimated = Some(crate::filter::eval::estimate(filter.filter(), &s.segment)?);
        }
        Ok((hits, e))
    }

    /// [`CollectionSnapshot::explain`] for the first block of `queries` searched together as
    /// [`CollectionSnapshot::search_batch`] searches them: the plans made for the block and the
    /// time the block took. Returns the block's hits.
    pub fn explain_batch(
        &self,
        queries: &[f32],
        filter: &crate::query::PreparedFilter,
        p: &SearchParams,
        scratch: &mut SearchScratch,
    ) -> Result<(Vec<Vec<Hit>>, crate::query::Explain)> {
        self.check_prepared(filter)?;
        let dim = self.state.schema.dim as usize;
        let mut block = Vec::with_capacity(crate::query::exec::BLOCK * dim);
        for q in queries.chunks(dim.max(1)).take(crate::query::exec::BLOCK) {
            block.extend(self.prepare_query(q)?);
        }
        let mut e = crate::query::Explain { filter: filter.filter().to_string(), k: p.k, ..Default::default() };
        let hits = crate::query::exec::search_block(Selection::Filter(filter), &block, dim, p, scratch, Some(&mut e));
        e.hits = hits.first().map_or(0, Vec::len);
        for (x, s) in e.segments.iter_mut().zip(&self.state.segments) {
            x.estimated = Some(crate::filter::eval::estimate(filter.filter(), &s.segment)?);
        }
        Ok((hits, e))
    }

    fn check_prepared(&self, filter: &crate::query::PreparedFilter) -> Result<()> {
        if Arc::ptr_eq(&filter.state, &self.state) {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "the filter was prepared on another snapshot of {:?}; prepare it on this one",
                self.state.name
            )))
        }
    }

    /// Index parameters of the collection.
    pub fn index_params(&self) -> Result<IndexParams> {
        IndexParams::from_params(&self.state.params)
    }

    /// Per segment: rows, whether it has a graph (levels, slots) and codes, and index bytes.
    #[must_use]
    pub fn index_state(&self) -> Vec<SegmentIndexInfo> {
        self.state
            .segments
            .iter()
            .map(|s| {
                let g = s.segment.graph().and_then(Result::ok);
                SegmentIndexInfo {
                    segment: s.segment.segment_id(),
                    rows: s.segment.rows() as u64,
                    graph_levels: g.map(|g| g.levels()),
                    hnsw_slots: g.map(|g| g.base0()),
                    guided_slots: g.map(|g| g.slots0() - g.base0()),
                    int8_codes: s.segment.codes().is_some_and(|c| c.is_ok()),
                    index_bytes: s.segment.index_bytes().iter().map(|(_, b)| b).sum(),
                    calibration: s.segment.calibration(),
                }
            })
            .collect()
    }

    /// Checks a query vector and normalises it for cosine collections.
    pub fn prepare_query(&self, query: &[f32]) -> Result<Vec<f32>> {
        let dim = self.state.schema.dim as usize;
        if query.len() != dim {
            return Err(Error::Schema(format!(
                "query has {} components, collection {:?} has dimension {dim}",
                query.len(),
                self.state.name
            )));
        }
        if query.iter().any(|x| !x.is_finite()) {
            return Err(Error::Schema("query vector has NaN or infinite components".into()));
        }
        let mut q = query.to_vec();
        if self.state.schema.metric == Metric::Cosine {
            normalize(&mut q).ok_or_else(|| Error::Schema("query vector is all zeros".into()))?;
        }
        Ok(q)
    }

    /// The storage state (for the index and planner modules).
    #[must_use]
    pub fn state(&self) -> &Arc<CollectionState> {
        &self.state
    }
}

/// L2-normalises in place; `None` for a zero vector.
pub fn normalize(v: &mut [f32]) -> Option<()> {
    let norm = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return None;
    }
    for x in v.iter_mut() {
        *x = (f64::from(*x) / norm) as f32;
    }
    Some(())
}

/// What a commit wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// Commit sequence number in the collection.
    pub seq: u64,
    /// Records inserted or replaced.
    pub written: usize,
    /// Delete operations.
    pub deleted: usize,
    /// The batch is committed, but the automatic flush that followed failed (the writer is now
    /// stopped; reopen the database to continue). `None` when no flush ran or it succeeded.
    pub flush_error: Option<String>,
}

/// A write transaction on one collection: buffered operations, applied atomically by
/// [`WriteTxn::commit`], discarded on drop.
#[derive(Debug)]
pub struct WriteTxn<'a> {
    db: &'a Db,
    guard: WriteGuard<'a>,
    col: Arc<CollectionState>,
    ops: Vec<Op>,
    touched: HashSet<u64>,
    inserted: usize,
    deleted: usize,
}

impl WriteTxn<'_> {
    fn to_record(&self, r: NewRecord) -> Result<Record> {
        let schema = &self.col.schema;
        let mut values = vec![None; schema.fields.len()];
        for (name, v) in r.fields {
            let Some(i) = schema.field_index(&name) else {
                return Err(Error::BadRecord {
                    id: r.id,
                    reason: format!(
                        "record {}: unknown field {name:?}; fields are: {}",
                        r.id,
                        schema.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                });
            };
            if let Some(slot) = values.get_mut(i) {
                *slot = Some(v);
            }
        }
        let mut rec = Record { id: r.id, vector: r.vector, values };
        schema.check_record(&rec).map_err(|reason| Error::BadRecord { id: rec.id, reason })?;
        if schema.metric == Metric::Cosine {
            normalize(&mut rec.vector).ok_or_else(|| Error::BadRecord {
                id: rec.id,
                reason: format!("record {}: a zero vector has no direction under cosine", rec.id),
            })?;
        }
        Ok(rec)
    }

    fn live(&self, id: u64) -> Result<bool> {
        Ok(self.col.locate(id)?.is_some())
    }

    /// Inserts a new record; fails with `DuplicateId` when the id is live.
    pub fn insert(&mut self, r: NewRecord) -> Result<()> {
        let id = r.id;
        let exists = if self.touched.contains(&id) {
            self.ops.iter().rev().find_map(|op| match op {
                Op::Put(p) if p.id == id => Some(true),
                Op::Delete(d) if *d == id => Some(false),
                _ => None,
            }) == Some(true)
        } else {
            self.live(id)?
        };
        if exists {
            return Err(Error::DuplicateId { collection: self.col.name.clone(), id });
        }
        let rec = self.to_record(r)?;
        self.touched.insert(id);
        self.ops.push(Op::Put(rec));
        self.inserted += 1;
        Ok(())
    }

    /// Inserts or replaces a record.
    pub fn upsert(&mut self, r: NewRecord) -> Result<()> {
        let rec = self.to_record(r)?;
        self.touched.insert(rec.id);
        self.ops.push(Op::Put(rec));
        self.inserted += 1;
        Ok(())
    }

    /// Deletes a record; returns whether it existed (as seen by this transaction).
    pub fn delete(&mut self, id: u64) -> Result<bool> {
        let existed = if self.touched.contains(&id) {
            self.ops.iter().rev().find_map(|op| match op {
                Op::Put(p) if p.id == id => Some(true),
                Op::Delete(d) if *d == id => Some(false),
                _ => None,
            }) == Some(true)
        } else {
            self.live(id)?
        };
        if existed {
            self.touched.insert(id);
            self.ops.push(Op::Delete(id));
            self.deleted += 1;
        }
        Ok(existed)
    }

    /// Operations buffered so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when nothing is buffered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Makes the buffered operations durable and visible, atomically. Flushes the in-memory
    /// rows to a segment when they reach the database's `flush_rows`.
    pub fn commit(mut self) -> Result<CommitInfo> {
        let name = self.col.name.clone();
        let info =
            CommitInfo { seq: self.col.last_seq, written: self.inserted, deleted: self.deleted, flush_error: None };
        if self.ops.is_empty() {
            return Ok(info);
        }
        let seq = self.guard.commit(&name, std::mem::take(&mut self.ops))?;
        let rows = self.guard.snapshot().collections.get(&name).map_or(0, |c| c.mem.rows());
        // A background flush that failed since the last commit is reported here.
        let mut flush_error = self.db.background().failed.take();
        if rows >= self.db.inner.flush_rows {
            if self.db.inner.flush_in_background {
                let db = self.db;
                drop(self);
                db.flush_later(name);
            } else {
                // The batch is durable already: a failed flush is reported, not turned into a
                // failed commit.
                flush_error = self.guard.flush(&name).err().map(|e| e.to_string()).or(flush_error);
            }
        }
        Ok(CommitInfo { seq, flush_error, ..info })
    }
}
