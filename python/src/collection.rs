//! `Collection`: writes, searches and the analyst calls on one collection.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use numpy::{PyArray1, PyArray3, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::{PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use skysift::encode::{Encoder, Language, TextQuery};
use skysift::index::Hit;
use skysift::present::AnswerRow;
use skysift::schema::{FieldType, Value};
use skysift::session::MODEL_DIR_PARAM;
use skysift::{CollectionSnapshot, Db, NewRecord, SearchParams, SearchScratch};

use crate::convert;
use crate::database::Shared;
use crate::detached;
use crate::errors::{NotFoundError, SchemaError};

/// Results per query above which a search is refused (the whole collection is cheaper read
/// with `count`/`to_arrow` of a filter).
const MAX_K: usize = 1_000_000;

/// One collection of an open database.
#[pyclass(frozen, module = "skysift._native")]
pub struct Collection {
    shared: Arc<Shared>,
    name: String,
    encoder: Mutex<Option<(PathBuf, Arc<Encoder>)>>,
    scratch: Mutex<Vec<SearchScratch>>,
}

impl Collection {
    pub fn new(shared: Arc<Shared>, name: String) -> Self {
        Collection { shared, name, encoder: Mutex::new(None), scratch: Mutex::new(Vec::new()) }
    }

    fn snapshot(&self, db: &Db) -> skysift::Result<CollectionSnapshot> {
        db.snapshot().collection(&self.name)
    }

    /// [`Collection::snapshot`], refusing vectors of `dim` when the collection has another
    /// dimension; `what` names them ("queries have", "the query has").
    fn snapshot_of_dim(&self, db: &Db, dim: usize, what: &str) -> skysift::Result<CollectionSnapshot> {
        let col = self.snapshot(db)?;
        if dim != col.schema().dim as usize {
            return Err(skysift::Error::Schema(format!(
                "{what} dimension {dim}, collection {:?} has {}",
                self.name,
                col.schema().dim
            )));
        }
        Ok(col)
    }

    fn take_scratch(&self) -> SearchScratch {
        self.scratch.lock().ok().and_then(|mut v| v.pop()).unwrap_or_default()
    }

    fn give_scratch(&self, s: SearchScratch) {
        if let Ok(mut v) = self.scratch.lock() {
            v.push(s);
        }
    }

    /// The collection's encoder, loaded once (on `device`) and checked against its provenance.
    fn encoder(&self, db: &Db, model_dir: Option<PathBuf>, device: &str) -> skysift::Result<Arc<Encoder>> {
        let col = self.snapshot(db)?;
        let dir = match model_dir {
            Some(d) => d,
            None => match col.params().iter().find(|(k, _)| k == MODEL_DIR_PARAM) {
                Some((_, v)) if std::path::Path::new(v).join("manifest.json").is_file() => PathBuf::from(v),
                _ => skysift::encode::locate::default_model_dir().map_err(skysift::Error::Invalid)?,
            },
        };
        if let Ok(g) = self.encoder.lock()
            && let Some((d, e)) = g.as_ref()
            && *d == dir
        {
            return Ok(Arc::clone(e));
        }
        if !col.params().iter().any(|(k, _)| k == skysift::encode::KEY_FINGERPRINT) {
            return Err(skysift::Error::Invalid(format!(
                "collection {:?} holds vectors of unknown origin (no encoder provenance): text and image queries \
                 need a collection made with a model (create_collection(model=...) or import_archive); search it \
                 with vectors or like=ID",
                self.name
            )));
        }
        let enc = Encoder::builder(&dir).device(crate::encoder::device(device)?).build()?;
        enc.check_params(col.params())?;
        let enc = Arc::new(enc);
        if let Ok(mut g) = self.encoder.lock() {
            *g = Some((dir, Arc::clone(&enc)));
        }
        Ok(enc)
    }

    /// Runs a vector query as `skysift query` does: the chain's relevance feedback moves the
    /// query (Rocchio), then the analyst's refine path (`min_score`, `offset`, `group_by`,
    /// `diverse`, `merge_tiles`; plain top-k when none is set) ranks, and the result columns
    /// are gathered (with `tiles`, `area_km2` and `tile_ids` after merging).
    fn run_vector(
        &self,
        db: &Db,
        vector: &[f32],
        opts: &SearchOpts,
    ) -> skysift::Result<(Columns, Vec<String>, Option<String>)> {
        let col = self.snapshot(db)?;
        let mut notes = Vec::new();
        let moved;
        let vector = if opts.good.is_empty() && opts.bad.is_empty() {
            vector
        } else {
            let (alpha, beta, gamma) = opts.rocchio;
            let fb = skysift::analyst::Feedback {
                good: opts.good.clone(),
                bad: opts.bad.clone(),
                weights: skysift::analyst::Rocchio { alpha, beta, gamma },
                off: false,
            };
            moved = fb.apply(&col, Some(vector))?;
            notes.push(format!(
                "relevance feedback: {} good, {} bad (Rocchio alpha {alpha}, beta {beta}, gamma {gamma})",
                fb.good.len(),
                fb.bad.len()
            ));
            moved.as_slice()
        };
        let prepared = opts.filter.as_deref().map(|f| col.prepare_filter(f)).transpose()?;
        let refine = opts.refine()?;
        let mut scratch = self.take_scratch();
        let r = skysift::analyst::refine_rows(&col, vector, prepared.as_ref(), opts.k, opts.ef, &refine, &mut scratch);
        self.give_scratch(scratch);
        let (rows, more) = r?;
        notes.extend(more);
        let mut cols = gather(&col, &rows_to_hits(&rows, 0), opts.select.as_deref(), opts.thumbnails)?;
        if opts.merge_tiles {
            merged_columns(&rows, &mut cols.3);
        }
        let next = refine.next_cursor(&rows, opts.k).map(|c| c.token());
        Ok((cols, notes, next))
    }
}

/// The place columns of merged rows: `tiles`, `area_km2`, `tile_ids` (comma-separated) added,
/// and `footprint` (when selected) replaced by the bbox of the place.
fn merged_columns(rows: &[AnswerRow], columns: &mut Vec<(String, FieldType, Vec<Option<Value>>)>) {
    let value = |r: &AnswerRow, name: &str| r.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    for (name, ty) in [("tiles", FieldType::Integer), ("area_km2", FieldType::Float), ("tile_ids", FieldType::Text)] {
        columns.push((name.to_owned(), ty, rows.iter().map(|r| value(r, name)).collect()));
    }
    if let Some(c) = columns.iter_mut().find(|c| c.0 == "footprint") {
        c.2 = rows.iter().map(|r| value(r, "footprint")).collect();
    }
}

/// What a search returns to Python: `(query_index, ids, scores, {field: values})`.
type Columns = (Vec<u32>, Vec<u64>, Vec<f32>, Vec<(String, FieldType, Vec<Option<Value>>)>, Vec<Option<Vec<u8>>>);

/// Which fields a result carries: all shown fields (`None`) or the named ones.
fn result_fields(
    col: &CollectionSnapshot,
    select: Option<&[String]>,
) -> skysift::Result<Vec<(usize, String, FieldType)>> {
    let schema = col.schema();
    match select {
        None => Ok(schema
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.ty != FieldType::Blob)
            .map(|(i, f)| (i, f.name.clone(), f.ty))
            .collect()),
        Some(names) => names
            .iter()
            .map(|n| {
                let i = schema.field_index(n).ok_or_else(|| {
                    skysift::Error::Schema(format!(
                        "select: no field {n:?}; fields are: {}",
                        schema.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
                    ))
                })?;
                Ok((i, n.clone(), schema.fields[i].ty))
            })
            .collect(),
    }
}

/// The fields (and thumbnails) of the hits, column by column.
fn gather(
    col: &CollectionSnapshot,
    hits: &[(u32, Hit)],
    select: Option<&[String]>,
    thumbnails: bool,
) -> skysift::Result<Columns> {
    let wanted = result_fields(col, select)?;
    let mut columns: Vec<(String, FieldType, Vec<Option<Value>>)> =
        wanted.iter().map(|(_, n, t)| (n.clone(), *t, Vec::with_capacity(hits.len()))).collect();
    let thumb = col.schema().field_index("thumbnail");
    let mut thumbs = Vec::new();
    let need_record = !wanted.is_empty() || thumbnails;
    for (_, h) in hits {
        if !need_record {
            break;
        }
        let rec = col.get(h.id)?;
        let mut by_name: HashMap<&str, &Value> = HashMap::new();
        if let Some(r) = &rec {
            for (n, v) in &r.fields {
                by_name.insert(n.as_str(), v);
            }
        }
        for (c, (_, name, _)) in columns.iter_mut().zip(&wanted) {
            c.2.push(by_name.get(name.as_str()).map(|v| (*v).clone()));
        }
        if thumbnails {
            let t = thumb.and_then(|_| by_name.get("thumbnail")).and_then(|v| match v {
                Value::Blob(b) => Some(b.clone()),
                _ => None,
            });
            thumbs.push(t);
        }
    }
    let qi = hits.iter().map(|(q, _)| *q).collect();
    let ids = hits.iter().map(|(_, h)| h.id).collect();
    let scores = hits.iter().map(|(_, h)| h.score).collect();
    Ok((qi, ids, scores, columns, thumbs))
}

fn rows_to_hits(rows: &[AnswerRow], q: u32) -> Vec<(u32, Hit)> {
    rows.iter().map(|r| (q, Hit { id: r.id, score: r.score })).collect()
}

/// `(dim, metric, [(field, type)], [(param, value)])`.
type SchemaTuple = (u32, String, Vec<(String, String)>, Vec<(String, String)>);

/// `[(id, [(label, score)])]`, best first.
type Labels = Vec<(u64, Vec<(String, f32)>)>;

/// Options of one search, as the Python chain collected them.
#[derive(Debug, Clone, FromPyObject)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "one flag per chain option (thumbnails, exact, all, merge_tiles), as the CLI has one per flag"
)]
pub struct SearchOpts {
    #[pyo3(item)]
    k: usize,
    #[pyo3(item)]
    ef: Option<usize>,
    #[pyo3(item("where"))]
    filter: Option<String>,
    #[pyo3(item)]
    select: Option<Vec<String>>,
    #[pyo3(item)]
    thumbnails: bool,
    #[pyo3(item)]
    exact: bool,
    /// Threads for a batch of queries (0: every core).
    #[pyo3(item)]
    threads: usize,
    /// Relevance feedback: records the query moves towards (`.good`).
    #[pyo3(item)]
    good: Vec<u64>,
    /// Relevance feedback: records the query moves away from (`.bad`).
    #[pyo3(item)]
    bad: Vec<u64>,
    /// Rocchio `(alpha, beta, gamma)` (default `(1.0, 0.75, 0.15)`, as `--rocchio`).
    #[pyo3(item)]
    rocchio: (f32, f32, f32),
    /// Every match at or above this score (`--min-score`).
    #[pyo3(item)]
    min_score: Option<f32>,
    /// With `min_score`: every match, not a page of `k` (`.limit()`/`.offset()` not given).
    #[pyo3(item)]
    all: bool,
    /// Results skipped before the page (`--offset`).
    #[pyo3(item)]
    offset: usize,
    /// At most `per_group` results per value of this field (`--group-by`).
    #[pyo3(item)]
    group_by: Option<String>,
    /// Results per group (`--per-group`, default 1).
    #[pyo3(item)]
    per_group: usize,
    /// Maximal marginal relevance with this lambda (`--diverse`).
    #[pyo3(item)]
    diverse: Option<f32>,
    /// Hits whose footprints touch joined into places (`--merge-tiles`).
    #[pyo3(item)]
    merge_tiles: bool,
    /// Resume after the page that returned this `next_cursor` (`--cursor`).
    #[pyo3(item)]
    cursor: Option<String>,
}

impl SearchOpts {
    /// The analyst options, as `skysift query` maps its flags (`AnalystOpts::apply`).
    fn refine(&self) -> skysift::Result<skysift::analyst::Refine> {
        let mut r = skysift::analyst::Refine {
            min_score: self.min_score,
            all: false,
            offset: self.offset,
            cursor: self.cursor.as_deref().map(skysift::analyst::Cursor::parse).transpose()?,
            group_by: self.group_by.clone(),
            per_group: self.per_group,
            diverse: self.diverse,
            merge_tiles: self.merge_tiles,
            exact: self.exact,
        }
        .every_match_unless_paged();
        // `.limit()` asks for a page too.
        r.all &= self.all;
        Ok(r)
    }
}

/// `[(place, bbox, delta, before, after, before_id, after_id, rows_before, rows_after)]`.
type Changes = Vec<(String, Option<[f64; 4]>, f32, f32, f32, u64, u64, u32, u32)>;

fn timestamp(s: &str, what: &str) -> PyResult<i64> {
    skysift::time::parse_timestamp(s)
        .ok_or_else(|| PyValueError::new_err(format!("{what} {s:?}: give a date as YYYY-MM-DD or RFC 3339")))
}

fn check_k(k: usize) -> PyResult<()> {
    if k == 0 || k > MAX_K {
        return Err(PyValueError::new_err(format!(
            "limit must be from 1 to {MAX_K} per query of a batch, not {k} (one query takes any limit)"
        )));
    }
    Ok(())
}

/// One query takes any `k`: past a few thousand it is served by the exact scan (a heap of the
/// best `k`, never an allocation of `k`), as `skysift query` serves it.
fn check_one_k(k: usize) -> PyResult<()> {
    if k == 0 {
        return Err(PyValueError::new_err("limit must be at least 1"));
    }
    Ok(())
}

/// Every match at or above a score, as chunks of result columns: a scan on its own thread
/// (`skysift::analyst::stream_above`, what `skysift query --all` runs) stays at most two chunks
/// ahead of the reader, so memory is bounded whatever the number of matches; dropping the stream
/// stops the scan at its next chunk.
#[pyclass(frozen, module = "skysift._native")]
pub struct AboveStream {
    rx: Mutex<Option<std::sync::mpsc::Receiver<skysift::Result<Columns>>>>,
}

#[pymethods]
impl AboveStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let next = py.detach(|| {
            let guard = self.rx.lock().ok()?;
            guard.as_ref().map(std::sync::mpsc::Receiver::recv)
        });
        match next {
            Some(Ok(Ok(cols))) => Ok(Some(columns_to_py(py, cols)?)),
            Some(Ok(Err(e))) => {
                self.close();
                Err(crate::errors::to_py(&e))
            }
            Some(Err(_)) | None => {
                self.close();
                Ok(None)
            }
        }
    }

    /// Stops the scan (also done when the stream is dropped or exhausted).
    fn close(&self) {
        if let Ok(mut g) = self.rx.lock() {
            g.take();
        }
    }
}

/// Scans `col` for the matches of `query` at or above `opts.min_score`, sending chunks of `batch`
/// hits with their fields to `tx` until the scan ends or the receiver is gone.
fn scan_above(
    col: &CollectionSnapshot,
    query: &[f32],
    opts: &SearchOpts,
    batch: usize,
    tx: &std::sync::mpsc::SyncSender<skysift::Result<Columns>>,
) -> skysift::Result<()> {
    let pf = opts.filter.as_deref().map(|f| col.prepare_filter(f)).transpose()?;
    let closed = || skysift::Error::Invalid("the stream was closed".into());
    let mut hits: Vec<(u32, Hit)> = Vec::with_capacity(batch);
    skysift::analyst::stream_above(col, query, pf.as_ref(), opts.min_score, &mut |id, score, _row| {
        hits.push((0, Hit { id, score }));
        if hits.len() >= batch {
            let cols = gather(col, &hits, opts.select.as_deref(), opts.thumbnails)?;
            hits.clear();
            tx.send(Ok(cols)).map_err(|_| closed())?;
        }
        Ok(())
    })?;
    if !hits.is_empty() {
        tx.send(Ok(gather(col, &hits, opts.select.as_deref(), opts.thumbnails)?)).map_err(|_| closed())?;
    }
    Ok(())
}

/// Turns the gathered columns into Python objects.
fn columns_to_py(py: Python<'_>, c: Columns) -> PyResult<Bound<'_, PyDict>> {
    let (qi, ids, scores, fields, thumbs) = c;
    let out = PyDict::new(py);
    out.set_item("query_index", PyArray1::from_vec(py, qi))?;
    out.set_item("id", PyArray1::from_vec(py, ids))?;
    out.set_item("score", PyArray1::from_vec(py, scores))?;
    let cols = PyList::empty(py);
    for (name, ty, values) in fields {
        let list = PyList::empty(py);
        for v in &values {
            match v {
                Some(v) => list.append(convert::to_object(py, v)?)?,
                None => list.append(py.None())?,
            }
        }
        cols.append((name, ty.name(), list))?;
    }
    out.set_item("fields", cols)?;
    if !thumbs.is_empty() {
        let list = PyList::empty(py);
        for t in &thumbs {
            match t {
                Some(b) => list.append(pyo3::types::PyBytes::new(py, b))?,
                None => list.append(py.None())?,
            }
        }
        out.set_item("thumbnail", list)?;
    }
    Ok(out)
}

#[pymethods]
impl Collection {
    /// The collection's name.
    #[getter]
    fn name(&self) -> String {
        self.name.clone()
    }

    /// `(dim, metric, [(field, type)], [(param, value)])`.
    fn schema(&self) -> PyResult<SchemaTuple> {
        let db = self.shared.db()?;
        let col = self.snapshot(&db).map_err(|e| crate::to_py(&e))?;
        let s = col.schema();
        Ok((
            s.dim,
            s.metric.name().to_owned(),
            s.user_fields().iter().map(|f| (f.name.clone(), f.ty.name().to_owned())).collect(),
            col.params().to_vec(),
        ))
    }

    /// Live records passing `where` (all when `None`).
    #[pyo3(signature = (r#where=None))]
    fn count(&self, py: Python<'_>, r#where: Option<String>) -> PyResult<u64> {
        let db = self.shared.db()?;
        detached(py, move || {
            let col = self.snapshot(&db)?;
            match r#where {
                None => Ok(col.count()),
                Some(f) => col.count_where(f.as_str()),
            }
        })
    }

    /// One field of every live record passing `where`: `(ids, values)` in visit order (segments,
    /// then in-memory rows); nulls are `None`.
    #[pyo3(signature = (field, r#where=None))]
    fn column<'py>(
        &self,
        py: Python<'py>,
        field: String,
        r#where: Option<String>,
    ) -> PyResult<(Bound<'py, PyArray1<u64>>, Bound<'py, PyList>)> {
        let db = self.shared.db()?;
        let (ids, values) = detached(py, move || {
            let col = self.snapshot(&db)?;
            let i = col.schema().field_index(&field).ok_or_else(|| {
                skysift::Error::Schema(format!(
                    "no field {field:?}; fields are: {}",
                    col.schema().fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
                ))
            })?;
            let prepared = r#where.as_deref().map(|f| col.prepare_filter(f)).transpose()?;
            let (mut ids, mut values) = (Vec::new(), Vec::new());
            skysift::analyst::rows::visit(&col, prepared.as_ref(), &mut |id, _, row| {
                ids.push(id);
                values.push(row.value(i)?);
                Ok(())
            })?;
            Ok((ids, values))
        })?;
        let list = PyList::empty(py);
        for v in &values {
            match v {
                Some(v) => list.append(convert::to_object(py, v)?)?,
                None => list.append(py.None())?,
            }
        }
        Ok((PyArray1::from_vec(py, ids), list))
    }

    /// Ids of the live records passing `where` (all when `None`), ascending.
    #[pyo3(signature = (r#where=None))]
    fn ids<'py>(&self, py: Python<'py>, r#where: Option<String>) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let db = self.shared.db()?;
        let mut ids = detached(py, move || {
            let col = self.snapshot(&db)?;
            match r#where {
                None => col.ids(),
                Some(f) => col.ids_where(f.as_str()),
            }
        })?;
        ids.sort_unstable();
        Ok(PyArray1::from_vec(py, ids))
    }

    /// Writes `vectors` (C-contiguous float32, one row per record) with `ids` (default: after the
    /// largest id in the collection) and `columns` (`[(field, values)]`, one value per row) in one
    /// commit; `upsert` replaces live ids instead of refusing them. Returns the ids written.
    #[pyo3(signature = (vectors, ids=None, columns=Vec::new(), upsert=false))]
    fn add<'py>(
        &self,
        py: Python<'py>,
        vectors: PyReadonlyArray2<'py, f32>,
        ids: Option<PyReadonlyArray1<'py, u64>>,
        columns: Vec<(String, Bound<'py, PyAny>)>,
        upsert: bool,
    ) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let db = self.shared.db()?;
        let col = self.snapshot(&db).map_err(|e| crate::to_py(&e))?;
        let (data, rows, dim) = convert::matrix(&vectors, "vectors")?;
        if dim != col.schema().dim as usize {
            return Err(SchemaError::new_err(format!(
                "vectors have dimension {dim}, collection {:?} has {}; nothing was written",
                self.name,
                col.schema().dim
            )));
        }
        convert::finite(data, dim, "vectors")?;
        let given: Option<Vec<u64>> = match &ids {
            Some(a) => {
                let s = convert::ids(a)?;
                if s.len() != rows {
                    return Err(SchemaError::new_err(format!(
                        "{} ids for {rows} vectors; nothing was written",
                        s.len()
                    )));
                }
                Some(s.to_vec())
            }
            None => None,
        };
        // Column values are read from Python objects here, with the GIL, before anything is written.
        let schema = col.schema();
        let mut values: Vec<(String, Vec<Option<Value>>)> = Vec::with_capacity(columns.len());
        for (name, list) in &columns {
            let Some(i) = schema.field_index(name) else {
                return Err(SchemaError::new_err(format!(
                    "unknown field {name:?}; fields are: {}; nothing was written",
                    schema.user_fields().iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
                )));
            };
            let ty = schema.fields[i].ty;
            let n = list.len()?;
            if n != rows {
                return Err(SchemaError::new_err(format!(
                    "field {name:?} has {n} values for {rows} vectors; nothing was written"
                )));
            }
            let mut vals = Vec::with_capacity(rows);
            for item in list.try_iter()? {
                vals.push(convert::value(name, ty, &item?)?);
            }
            values.push((name.clone(), vals));
        }
        let name = self.name.clone();
        let written = detached(py, move || {
            let ids = if let Some(ids) = given {
                ids
            } else {
                let next = col.ids()?.into_iter().max().map_or(0, |m| m + 1);
                (next..next + rows as u64).collect()
            };
            let mut tx = db.begin_write(&name)?;
            for (r, &id) in ids.iter().enumerate() {
                let mut rec = NewRecord::new(id, data[r * dim..(r + 1) * dim].to_vec());
                for (field, vals) in &values {
                    if let Some(v) = &vals[r] {
                        rec = rec.with(field.clone(), v.clone());
                    }
                }
                if upsert { tx.upsert(rec)? } else { tx.insert(rec)? }
            }
            let info = tx.commit()?;
            if let Some(e) = info.flush_error {
                return Err(skysift::Error::Invalid(format!(
                    "the rows are committed, but the flush that followed failed ({e}); reopen the database"
                )));
            }
            Ok(ids)
        })?;
        Ok(PyArray1::from_vec(py, written))
    }

    /// Deletes records by id and/or by filter in one commit; returns how many existed.
    #[pyo3(signature = (ids=None, r#where=None))]
    fn delete(&self, py: Python<'_>, ids: Option<Vec<u64>>, r#where: Option<String>) -> PyResult<usize> {
        let db = self.shared.db()?;
        let name = self.name.clone();
        detached(py, move || {
            let col = self.snapshot(&db)?;
            let mut all = ids.unwrap_or_default();
            if let Some(f) = r#where {
                all.extend(col.ids_where(f.as_str())?);
            }
            let mut tx = db.begin_write(&name)?;
            let mut n = 0;
            for id in all {
                n += usize::from(tx.delete(id)?);
            }
            tx.commit()?;
            Ok(n)
        })
    }

    /// Vector search: one result block per row of `queries` (C-contiguous float32).
    fn search_vectors<'py>(
        &self,
        py: Python<'py>,
        queries: PyReadonlyArray2<'py, f32>,
        opts: SearchOpts,
    ) -> PyResult<Bound<'py, PyDict>> {
        check_k(opts.k)?;
        let db = self.shared.db()?;
        let (data, rows, dim) = convert::matrix(&queries, "queries")?;
        convert::finite(data, dim, "queries")?;
        let cols = detached(py, move || {
            let col = self.snapshot_of_dim(&db, dim, "queries have")?;
            let params = SearchParams { ef: opts.ef, exact: opts.exact, ..SearchParams::k(opts.k) };
            let prepared = opts.filter.as_deref().map(|f| col.prepare_filter(f)).transpose()?;
            // (One query never asks how many cores there are: that reads the cgroup's CPU quota
            // from /proc and /sys, longer than a search of a small collection.)
            let threads = match opts.threads {
                _ if rows <= 1 => 1,
                0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
                n => n,
            }
            .min(rows.max(1));
            // Each thread searches a contiguous share of the queries with its own scratch; the
            // shares are joined in query order.
            let per = rows.div_ceil(threads).max(1);
            // A share goes through `search_batch`: blocks of queries, each scanned row read once
            // per block where a selective filter makes the planner scan.
            let run = |first: usize, share: &[f32]| -> skysift::Result<Vec<(u32, Hit)>> {
                let mut scratch = self.take_scratch();
                let r = col.search_batch(share, prepared.as_ref(), &params, &mut scratch);
                self.give_scratch(scratch);
                let blocks = r?;
                let mut hits = Vec::with_capacity(blocks.len() * opts.k);
                for (i, h) in blocks.into_iter().enumerate() {
                    hits.extend(h.into_iter().map(|h| ((first + i) as u32, h)));
                }
                Ok(hits)
            };
            let shares: Vec<skysift::Result<Vec<(u32, Hit)>>> = if threads <= 1 {
                vec![run(0, data)]
            } else {
                std::thread::scope(|s| {
                    let handles: Vec<_> = data
                        .chunks(per * dim)
                        .enumerate()
                        .map(|(t, share)| {
                            let run = &run;
                            s.spawn(move || run(t * per, share))
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| {
                            h.join().unwrap_or_else(|_| {
                                Err(skysift::Error::Invalid(
                                    "a search thread panicked (a bug in skysift; please report it)".into(),
                                ))
                            })
                        })
                        .collect()
                })
            };
            let mut hits = Vec::with_capacity(rows * opts.k);
            for share in shares {
                hits.extend(share?);
            }
            gather(&col, &hits, opts.select.as_deref(), opts.thumbnails)
        })?;
        let _ = rows;
        columns_to_py(py, cols)
    }

    /// Text search: `text` through the collection's model (prompt ensemble in the detected or
    /// given language, minus the `negatives`), the same search as `skysift query`. Returns the
    /// result columns with `language`, `prompts` and `notes`.
    #[pyo3(signature = (text, opts, lang=None, negatives=Vec::new(), templates="ensemble", model_dir=None, device="auto"))]
    fn search_text<'py>(
        &self,
        py: Python<'py>,
        text: String,
        opts: SearchOpts,
        lang: Option<String>,
        negatives: Vec<String>,
        templates: &str,
        model_dir: Option<PathBuf>,
        device: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        check_one_k(opts.k)?;
        let prompting = crate::encoder::prompting(templates)?;
        let db = self.shared.db()?;
        let device = device.to_owned();
        let (cols, language, prompts, notes, next) = detached(py, move || {
            let enc = self.encoder(&db, model_dir, &device)?;
            let mut q = TextQuery::new(text).prompting(prompting);
            if let Some(l) = lang {
                q.language = Language::Code(l);
            }
            for n in negatives {
                q = q.negative(n);
            }
            let qv = enc.query(&q)?;
            let (cols, mut notes, next) = self.run_vector(&db, &qv.vector, &opts)?;
            notes.extend(qv.note);
            Ok((cols, qv.language, qv.prompts, notes, next))
        })?;
        let out = columns_to_py(py, cols)?;
        out.set_item("language", language)?;
        out.set_item("prompts", prompts)?;
        out.set_item("notes", notes)?;
        out.set_item("next_cursor", next)?;
        Ok(out)
    }

    /// The query vector of `text` (prompt ensemble, negatives), as `search_text` encodes it.
    #[pyo3(signature = (text, lang=None, negatives=Vec::new(), templates="ensemble", model_dir=None, device="auto"))]
    fn encode_text<'py>(
        &self,
        py: Python<'py>,
        text: String,
        lang: Option<String>,
        negatives: Vec<String>,
        templates: &str,
        model_dir: Option<PathBuf>,
        device: &str,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let prompting = crate::encoder::prompting(templates)?;
        let db = self.shared.db()?;
        let device = device.to_owned();
        let v = detached(py, move || {
            let enc = self.encoder(&db, model_dir, &device)?;
            let mut q = TextQuery::new(text).prompting(prompting);
            if let Some(l) = lang {
                q.language = Language::Code(l);
            }
            for n in negatives {
                q = q.negative(n);
            }
            Ok(enc.query(&q)?.vector)
        })?;
        Ok(PyArray1::from_vec(py, v))
    }

    /// The embedding of an image (a path, encoded bytes, or an `HxWx3` uint8 array).
    #[pyo3(signature = (image, model_dir=None, device="auto"))]
    fn encode_image<'py>(
        &self,
        py: Python<'py>,
        image: Bound<'py, PyAny>,
        model_dir: Option<PathBuf>,
        device: &str,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let img = crate::encoder::image_input(&image)?;
        let db = self.shared.db()?;
        let device = device.to_owned();
        let v = detached(py, move || {
            let enc = self.encoder(&db, model_dir, &device)?;
            let img = img.load()?;
            Ok(enc.encode_images(&[img])?.into_iter().next().unwrap_or_default())
        })?;
        Ok(PyArray1::from_vec(py, v))
    }

    /// The stored vector of record `id` (`NotFoundError` when it is not live).
    fn vector<'py>(&self, py: Python<'py>, id: u64) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let db = self.shared.db()?;
        let rec = detached(py, move || self.snapshot(&db)?.get(id))?;
        match rec {
            Some(r) => Ok(PyArray1::from_vec(py, r.vector)),
            None => Err(NotFoundError::new_err(format!("no record with id {id} in {:?}", self.name))),
        }
    }

    /// The stored fields of record `id` as a dict (`None` when it is not live).
    fn get<'py>(&self, py: Python<'py>, id: u64) -> PyResult<Option<Bound<'py, PyDict>>> {
        let db = self.shared.db()?;
        let rec = detached(py, move || self.snapshot(&db)?.get(id))?;
        let Some(r) = rec else { return Ok(None) };
        let d = PyDict::new(py);
        d.set_item("id", r.id)?;
        for (n, v) in &r.fields {
            d.set_item(n, convert::to_object(py, v)?)?;
        }
        Ok(Some(d))
    }

    /// Every match of `query` at or above `opts.min_score` (the filter applied), in storage order,
    /// as a stream of result chunks of at most `batch` rows (see [`AboveStream`]).
    fn stream_above(
        &self,
        py: Python<'_>,
        query: PyReadonlyArray1<'_, f32>,
        opts: SearchOpts,
        batch: usize,
    ) -> PyResult<AboveStream> {
        if batch == 0 {
            return Err(PyValueError::new_err("batch must be at least 1"));
        }
        let db = self.shared.db()?;
        let q = query.as_slice().map_err(|_| PyValueError::new_err("query must be contiguous float32"))?.to_vec();
        let dim = q.len();
        let col = detached(py, move || self.snapshot_of_dim(&db, dim, "the query has"))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        std::thread::spawn(move || {
            if let Err(e) = scan_above(&col, &q, &opts, batch, &tx) {
                let _ = tx.send(Err(e));
            }
        });
        Ok(AboveStream { rx: Mutex::new(Some(rx)) })
    }

    /// An HTML gallery of the records `ids` ranked in that order with their `scores` (the page
    /// `\\show` and `--gallery` write: thumbnails, scores, key fields, a map of the footprints),
    /// written into `dir`; returns the page's path. Ids no longer in the collection are left out.
    fn gallery(
        &self,
        py: Python<'_>,
        title: String,
        ids: Vec<u64>,
        scores: Vec<f32>,
        dir: PathBuf,
    ) -> PyResult<String> {
        if ids.len() != scores.len() {
            return Err(PyValueError::new_err(format!("{} ids but {} scores", ids.len(), scores.len())));
        }
        let db = self.shared.db()?;
        detached(py, move || {
            let col = self.snapshot(&db)?;
            let mut rows = Vec::with_capacity(ids.len());
            for (i, (&id, &score)) in ids.iter().zip(&scores).enumerate() {
                if let Some(r) = skysift::analyst::answer_row(&col, i + 1, &Hit { id, score })? {
                    rows.push(r);
                }
            }
            let answer = skysift::present::Answer {
                rows,
                language: None,
                prompts: Vec::new(),
                encode_time: Duration::ZERO,
                search_time: Duration::ZERO,
                notes: Vec::new(),
            };
            Ok(skysift::gallery::write(&dir, &title, &answer)?.display().to_string())
        })
    }

    /// The plan of a search for `query` (the text `--explain` prints).
    fn explain(&self, py: Python<'_>, query: PyReadonlyArray1<'_, f32>, opts: SearchOpts) -> PyResult<String> {
        check_k(opts.k)?;
        let db = self.shared.db()?;
        let q = query.as_slice().map_err(|_| PyValueError::new_err("query must be contiguous float32"))?;
        detached(py, move || {
            let col = self.snapshot(&db)?;
            let params = SearchParams { ef: opts.ef, exact: opts.exact, ..SearchParams::k(opts.k) };
            let pf = match &opts.filter {
                Some(f) => col.prepare_filter(f.as_str())?,
                None => col.prepare_filter(skysift::filter::Filter::all())?,
            };
            let (_, e) = col.explain(q, &pf, &params, &mut SearchScratch::default())?;
            Ok(e.to_string())
        })
    }

    /// Compacts the collection (merges segments, drops deleted rows).
    fn compact(&self, py: Python<'_>) -> PyResult<()> {
        let db = self.shared.db()?;
        detached(py, move || db.compact(&self.name))
    }

    /// Writes the in-memory rows to a segment (indexed).
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let db = self.shared.db()?;
        detached(py, move || db.flush(&self.name))
    }

    /// Stores a sample of typical query vectors (the index calibrates its search on them).
    fn set_query_sample(&self, py: Python<'_>, vectors: PyReadonlyArray2<'_, f32>) -> PyResult<()> {
        let db = self.shared.db()?;
        let (data, _, dim) = convert::matrix(&vectors, "vectors")?;
        convert::finite(data, dim, "vectors")?;
        detached(py, move || db.set_query_sample(&self.name, data))
    }

    /// Zero-shot labels: `[(id, [(label, score)])]`, best first; with `field`, the best label is
    /// stored in that keyword field of each record.
    #[pyo3(signature = (labels, top=1, field=None, lang=None, model_dir=None, device="auto"))]
    fn label(
        &self,
        py: Python<'_>,
        labels: Vec<String>,
        top: usize,
        field: Option<String>,
        lang: Option<String>,
        model_dir: Option<PathBuf>,
        device: &str,
    ) -> PyResult<Labels> {
        if labels.is_empty() {
            return Err(PyValueError::new_err("labels is empty: give at least one label"));
        }
        let db = self.shared.db()?;
        let dev = crate::encoder::device(device).map_err(|e| crate::to_py(&e))?;
        detached(py, move || {
            let mut s = skysift::session::Session::open(db, Some(&self.name), model_dir.as_deref())?;
            s.set_device(dev);
            s.lang = lang;
            let out = s.label_all(&labels, top.max(1))?;
            if let Some(f) = field {
                s.store_labels(&f, &out, &mut |_, _| {})?;
            }
            Ok(out)
        })
    }

    /// A heat map of `text` over the tiles of `scene` (its source path as imported): an `HxWx3`
    /// uint8 array, written as a PNG to `out` when given.
    #[pyo3(signature = (scene, text, out=None, size=512, legend=true, model_dir=None))]
    fn heatmap<'py>(
        &self,
        py: Python<'py>,
        scene: String,
        text: String,
        out: Option<PathBuf>,
        size: u32,
        legend: bool,
        model_dir: Option<PathBuf>,
    ) -> PyResult<Bound<'py, PyArray3<u8>>> {
        use skysift::query::heatmap::{render, scene_tiles, scores, with_legend};
        let db = self.shared.db()?;
        let img = detached(py, move || {
            let col = self.snapshot(&db)?;
            let tiles = scene_tiles(&col, &scene)?;
            if tiles.is_empty() {
                return Err(skysift::Error::Invalid(format!(
                    "scene {scene:?} has no tiles in {:?}: give the source path as imported (see the records' \
                     `source` field)",
                    self.name
                )));
            }
            let enc = self.encoder(&db, model_dir, "auto")?;
            let q = enc.query(&TextQuery::new(text))?;
            let s = scores(&tiles, &q.vector);
            let img = render(&tiles, &s, size.max(16));
            let img = if legend { with_legend(&img) } else { img };
            if let Some(p) = &out {
                img.save(p).map_err(|e| skysift::Error::Invalid(format!("cannot write {}: {e}", p.display())))?;
            }
            Ok(img)
        })?;
        let (w, h) = img.dimensions();
        let arr = PyArray1::from_vec(py, img.into_raw());
        arr.reshape([h as usize, w as usize, 3])
    }

    /// Imports a folder of imagery, as `skysift import` does (resumable: unchanged files are
    /// skipped). `progress(done, total)` is called about five times a second; Ctrl-C stops it
    /// after committing what was encoded and raises `KeyboardInterrupt`. Returns
    /// `(summary_json, [report_line_json])`.
    #[pyo3(signature = (folder, model_dir=None, device="auto", tile=512, overlap=0, gsd=None, workers=0, batch_size=None, commit_every=1024, min_valid=0.5, progress=None, encoder=None, only=None))]
    fn import_archive(
        &self,
        py: Python<'_>,
        folder: PathBuf,
        model_dir: Option<PathBuf>,
        device: &str,
        tile: u32,
        overlap: u32,
        gsd: Option<f64>,
        workers: usize,
        batch_size: Option<usize>,
        commit_every: usize,
        min_valid: f64,
        progress: Option<Py<PyAny>>,
        encoder: Option<PyRef<'_, crate::encoder::Encoder>>,
        only: Option<Vec<String>>,
    ) -> PyResult<(String, Vec<String>)> {
        let shared = self.shared.db()?;
        let loaded = encoder.map(|e| e.shared());
        let opts = crate::encoder::ImportArgs {
            collection: self.name.clone(),
            folder,
            model_dir,
            device: device.to_owned(),
            tile,
            overlap,
            gsd,
            workers,
            batch_size,
            commit_every,
            min_valid,
            only,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(skysift::ingest::Progress::default());
        let (stop2, counters2) = (Arc::clone(&stop), Arc::clone(&counters));
        let interrupted = AtomicBool::new(false);
        let result = py.detach(|| {
            std::thread::scope(|s| {
                let job = s.spawn(move || {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        crate::encoder::run_import(&shared, &opts, loaded.as_ref(), stop2, counters2)
                    }))
                });
                let mut last = Instant::now();
                while !job.is_finished() {
                    std::thread::sleep(Duration::from_millis(50));
                    let due = last.elapsed() >= Duration::from_millis(200);
                    if due {
                        last = Instant::now();
                    }
                    Python::attach(|py| {
                        if py.check_signals().is_err() {
                            interrupted.store(true, Ordering::SeqCst);
                            stop.store(true, Ordering::SeqCst);
                        }
                        if let (true, Some(cb)) = (due, &progress) {
                            tick(py, cb, &counters);
                        }
                    });
                }
                job.join()
            })
        });
        if let Some(cb) = &progress {
            tick(py, cb, &counters);
        }
        let done = match result {
            Ok(Ok(r)) => r.map_err(|e| crate::to_py(&e))?,
            Ok(Err(p)) | Err(p) => {
                return Err(crate::errors::Error::new_err(format!(
                    "internal error during the import (a bug in skysift; please report it): {}; committed records \
                     are kept, a rerun resumes",
                    crate::panic_text(p.as_ref())
                )));
            }
        };
        if interrupted.load(Ordering::SeqCst) {
            return Err(PyKeyboardInterrupt::new_err(format!(
                "import stopped: what was encoded is committed; run it again to finish ({})",
                done.0
            )));
        }
        Ok(done)
    }

    /// Search by a stored record's vector ("more like this"), as `skysift query --like` does.
    fn search_like<'py>(&self, py: Python<'py>, id: u64, opts: SearchOpts) -> PyResult<Bound<'py, PyDict>> {
        check_one_k(opts.k)?;
        let db = self.shared.db()?;
        let (cols, notes, next) = detached(py, move || {
            let col = self.snapshot(&db)?;
            let v = col
                .get(id)?
                .ok_or_else(|| skysift::Error::Invalid(format!("no record with id {id} in {:?}", self.name)))?
                .vector;
            self.run_vector(&db, &v, &opts)
        })?;
        let out = columns_to_py(py, cols)?;
        out.set_item("notes", notes)?;
        out.set_item("next_cursor", next)?;
        Ok(out)
    }

    /// Search by one query vector through the same path as text queries (`skysift query`).
    fn search_query_vector<'py>(
        &self,
        py: Python<'py>,
        vector: PyReadonlyArray1<'py, f32>,
        opts: SearchOpts,
    ) -> PyResult<Bound<'py, PyDict>> {
        check_one_k(opts.k)?;
        let db = self.shared.db()?;
        let v = vector.as_slice().map_err(|_| PyValueError::new_err("vector must be contiguous float32"))?;
        convert::finite(v, v.len(), "vector")?;
        let (cols, notes, next) = detached(py, move || self.run_vector(&db, v, &opts))?;
        let out = columns_to_py(py, cols)?;
        out.set_item("notes", notes)?;
        out.set_item("next_cursor", next)?;
        Ok(out)
    }

    /// Search without a query, from relevance feedback only: the start is the mean of the good
    /// examples (as `skysift query --good ID` without a question), then the feedback applies.
    fn search_examples<'py>(&self, py: Python<'py>, opts: SearchOpts) -> PyResult<Bound<'py, PyDict>> {
        check_one_k(opts.k)?;
        let db = self.shared.db()?;
        let (cols, notes, next) = detached(py, move || {
            let col = self.snapshot(&db)?;
            let good = skysift::analyst::Feedback::vectors(&col, &opts.good)?;
            let start = skysift::analyst::Rocchio { alpha: 0.0, beta: 1.0, gamma: 0.0 }.apply(None, &good, &[])?;
            self.run_vector(&db, &start, &opts)
        })?;
        let out = columns_to_py(py, cols)?;
        out.set_item("notes", notes)?;
        out.set_item("next_cursor", next)?;
        Ok(out)
    }

    /// A classifier trained on `good` and `bad` (plus random negatives, `text` as its prior)
    /// scores every record passing `where`, as `skysift classify` does; returns the records at
    /// or above `min_score` best first (the best `k` when given) as result columns with
    /// `classifier`, `scored`, `above` and `stored`. With `field`, every scored record's
    /// probability is stored in that float field (added when missing).
    #[pyo3(signature = (good, bad, text=None, min_score=0.5, field=None, r#where=None, k=None, negatives=50, l2=1.0, seed=17, select=None, thumbnails=false, model_dir=None, device="auto", prior=None))]
    fn classify<'py>(
        &self,
        py: Python<'py>,
        good: Vec<u64>,
        bad: Vec<u64>,
        text: Option<String>,
        min_score: f32,
        field: Option<String>,
        r#where: Option<String>,
        k: Option<usize>,
        negatives: usize,
        l2: f64,
        seed: u64,
        select: Option<Vec<String>>,
        thumbnails: bool,
        model_dir: Option<PathBuf>,
        device: &str,
        prior: Option<Vec<f32>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        if text.is_some() && prior.is_some() {
            return Err(PyValueError::new_err("give the classifier's prior as text or as a vector, not both"));
        }
        if !(0.0..=1.0).contains(&min_score) {
            return Err(PyValueError::new_err(format!("min_score is a probability from 0 to 1, not {min_score}")));
        }
        if good.is_empty() {
            return Err(PyValueError::new_err("classify needs good examples: good=[id, ...]"));
        }
        if !(l2.is_finite() && l2 > 0.0) {
            return Err(PyValueError::new_err(format!("l2 must be a finite number > 0, not {l2}")));
        }
        let db = self.shared.db()?;
        let dev = crate::encoder::device(device).map_err(|e| crate::to_py(&e))?;
        let (cols, describe, scored, above, written) = detached(py, move || {
            let mut s = skysift::session::Session::open(db, Some(&self.name), model_dir.as_deref())?;
            s.set_device(dev);
            s.feedback.mark_good(&good);
            s.feedback.mark_bad(&bad);
            let opts = skysift::analyst::TrainOptions { l2, negatives, seed };
            let c = match prior {
                // A vector prior: unit length, the collection's dimension (a text prior is encoded
                // by the model in `train_classifier`).
                Some(mut v) => {
                    let col = s.snapshot()?;
                    if v.len() != col.schema().dim as usize {
                        return Err(skysift::Error::Schema(format!(
                            "the prior has dimension {}, the collection {}",
                            v.len(),
                            col.schema().dim
                        )));
                    }
                    skysift::db::normalize(&mut v)
                        .ok_or_else(|| skysift::Error::Schema("the prior vector is all zeros or not finite".into()))?;
                    skysift::analyst::Classifier::train(&col, &good, &bad, Some(("a vector", v.as_slice())), &opts)?
                }
                None => s.train_classifier(text.as_deref(), &opts)?.clone(),
            };
            let col = s.snapshot()?;
            let prepared = r#where.as_deref().map(|f| col.prepare_filter(f)).transpose()?;
            // With `field` every record is kept (floor 0) and the threshold applies to what is returned.
            let floor = if field.is_some() { 0.0 } else { min_score };
            let mut keep: Vec<Hit> = Vec::new();
            let mut to_store: Vec<(u64, Value)> = Vec::new();
            let scored = c.score_rows(&col, prepared.as_ref(), floor, &mut |id, p, _| {
                if field.is_some() {
                    to_store.push((id, Value::Float(f64::from(p))));
                }
                if p >= min_score {
                    keep.push(Hit { id, score: p });
                }
                Ok(())
            })?;
            keep.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
            let above = keep.len() as u64;
            if let Some(k) = k {
                keep.truncate(k);
            }
            let written = match &field {
                Some(f) => Some(s.store_values(f, FieldType::Float, &to_store, &mut |_, _| {})?),
                None => None,
            };
            // A fresh snapshot: the stored scores show in the returned fields.
            let col = s.snapshot()?;
            let hits: Vec<(u32, Hit)> = keep.into_iter().map(|h| (0, h)).collect();
            let cols = gather(&col, &hits, select.as_deref(), thumbnails)?;
            Ok((cols, c.describe(), scored.scored, above, written))
        })?;
        let out = columns_to_py(py, cols)?;
        out.set_item("classifier", describe)?;
        out.set_item("scored", scored)?;
        out.set_item("above", above)?;
        out.set_item("stored", written)?;
        Ok(out)
    }

    /// Change between two periods, as `skysift change` does: per place seen before `before`
    /// and at or after `after` (dates), the best score of each period for the query (`text`
    /// through the model, or `vector`) and their difference, ranked (largest gain first, or
    /// largest loss with `loss`). `place` is `"grid"` (cells of `cell` degrees over
    /// `footprint_field`) or a field name. Returns `(places, geojson, notes)`.
    #[pyo3(signature = (before, after, text=None, vector=None, r#where=None, place="grid", cell=skysift::analyst::DEFAULT_CELL_DEG, footprint_field="footprint", time_field=None, loss=false, lang=None, model_dir=None, device="auto"))]
    fn change(
        &self,
        py: Python<'_>,
        before: &str,
        after: &str,
        text: Option<String>,
        vector: Option<PyReadonlyArray1<'_, f32>>,
        r#where: Option<String>,
        place: &str,
        cell: f64,
        footprint_field: &str,
        time_field: Option<String>,
        loss: bool,
        lang: Option<String>,
        model_dir: Option<PathBuf>,
        device: &str,
    ) -> PyResult<(Changes, String, Vec<String>)> {
        use skysift::analyst::{ChangeOptions, PlaceKey};
        let opts = ChangeOptions {
            before: timestamp(before, "before")?,
            after: timestamp(after, "after")?,
            time_field,
            place: if place == "grid" {
                PlaceKey::Grid { cell_deg: cell, field: footprint_field.to_owned() }
            } else {
                PlaceKey::Field(place.to_owned())
            },
            loss,
        };
        let given: Option<Vec<f32>> = match &vector {
            Some(v) => {
                let v = v.as_slice().map_err(|_| PyValueError::new_err("vector must be contiguous float32"))?;
                convert::finite(v, v.len(), "vector")?;
                Some(v.to_vec())
            }
            None => None,
        };
        let label = text.clone().unwrap_or_else(|| "vector".to_owned());
        let db = self.shared.db()?;
        let device = device.to_owned();
        let (changes, notes) = detached(py, move || {
            let mut notes = Vec::new();
            let q = match (given, text) {
                (Some(v), None) => v,
                (None, Some(t)) => {
                    let enc = self.encoder(&db, model_dir, &device)?;
                    let mut q = TextQuery::new(t);
                    if let Some(l) = lang {
                        q.language = Language::Code(l);
                    }
                    let qv = enc.query(&q)?;
                    notes.extend(qv.note);
                    qv.vector
                }
                _ => return Err(skysift::Error::Invalid("change needs one query: a text or a vector".into())),
            };
            let col = self.snapshot(&db)?;
            let prepared = r#where.as_deref().map(|f| col.prepare_filter(f)).transpose()?;
            let changes = skysift::analyst::change(&col, &q, prepared.as_ref(), &opts)?;
            notes.push(format!(
                "scores are after - before: {} place(s) seen in both periods, best score of each period",
                changes.len()
            ));
            Ok((changes, notes))
        })?;
        let geojson = skysift::analyst::change_geojson(&label, &changes).to_string();
        let rows = changes
            .into_iter()
            .map(|c| {
                (c.place, c.bbox, c.delta, c.before, c.after, c.before_id, c.after_id, c.rows_before, c.rows_after)
            })
            .collect();
        Ok((rows, geojson, notes))
    }

    fn __repr__(&self) -> String {
        format!("skysift.Collection({:?})", self.name)
    }
}

/// Calls the progress callback with `(files_done, files_total)`; an exception in it is printed,
/// not raised (the import goes on).
fn tick(py: Python<'_>, cb: &Py<PyAny>, p: &skysift::ingest::Progress) {
    let done = p.files_done.load(Ordering::Relaxed);
    let total = p.files_total.load(Ordering::Relaxed);
    if let Err(e) = cb.call1(py, (done, total)) {
        e.print(py);
    }
}
