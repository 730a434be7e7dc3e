//! `Database`: an open skysift database (one writer per directory, any number of readers).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use skysift::schema::{FieldType, Metric};
use skysift::{CollectionSpec, Db};

use crate::collection::Collection;
use crate::detached;
use crate::errors::{ClosedError, SchemaError};

/// The database handle shared by a `Database` and its `Collection`s; `None` once closed.
#[derive(Debug, Default)]
pub struct Shared {
    db: RwLock<Option<Db>>,
    pub path: PathBuf,
}

impl Shared {
    /// The open database (a cheap clone of the handle), or `ClosedError`.
    pub fn db(&self) -> PyResult<Db> {
        let g = self.db.read().map_err(|_| ClosedError::new_err("the database handle is poisoned"))?;
        g.clone().ok_or_else(|| {
            ClosedError::new_err(format!(
                "the database {} is closed; open it again with skysift.connect",
                self.path.display()
            ))
        })
    }
}

/// An open database.
#[pyclass(frozen, module = "skysift._native")]
pub struct Database {
    pub shared: Arc<Shared>,
}

pub fn metric(name: &str) -> PyResult<Metric> {
    match name.to_ascii_lowercase().as_str() {
        "cosine" => Ok(Metric::Cosine),
        "ip" | "dot" | "inner_product" => Ok(Metric::InnerProduct),
        other => {
            Err(SchemaError::new_err(format!("unknown metric {other:?}: use \"cosine\" or \"ip\" (inner product)")))
        }
    }
}

pub fn field_type(field: &str, name: &str) -> PyResult<FieldType> {
    FieldType::from_name(name).ok_or_else(|| {
        SchemaError::new_err(format!(
            "field {field:?}: unknown type {name:?}; use keyword, text, integer, float, bool, timestamp, geo_bbox, \
             window or blob"
        ))
    })
}

#[pymethods]
impl Database {
    /// Opens (creating when missing) the database in `path`. A second writer on the same
    /// directory raises `LockedError` at once; `read_only=True` opens a follower.
    #[new]
    #[pyo3(signature = (path, read_only=false))]
    fn new(py: Python<'_>, path: PathBuf, read_only: bool) -> PyResult<Self> {
        let p = path.clone();
        // A commit that fills the memtable returns once durable; the segment is built on a
        // background thread (the next write waits for it).
        let db = detached(py, move || {
            Db::builder(&p).read_only(read_only).create(!read_only).flush_in_background(true).open()
        })?;
        Ok(Database { shared: Arc::new(Shared { db: RwLock::new(Some(db)), path }) })
    }

    /// The database directory.
    #[getter]
    fn path(&self) -> String {
        self.shared.path.display().to_string()
    }

    /// True for a read-only handle.
    #[getter]
    fn read_only(&self) -> PyResult<bool> {
        Ok(self.shared.db()?.is_read_only())
    }

    /// Names of the collections.
    fn collections(&self) -> PyResult<Vec<String>> {
        Ok(self.shared.db()?.collections())
    }

    /// Creates a collection of `dim`-dimensional vectors with the fields `fields`
    /// (`[(name, type)]`) and `params` (`[(key, value)]`, recorded as they are).
    #[pyo3(signature = (name, dim, metric="cosine", fields=Vec::new(), params=Vec::new(), exist_ok=false))]
    fn create_collection(
        &self,
        py: Python<'_>,
        name: String,
        dim: u32,
        metric: &str,
        fields: Vec<(String, String)>,
        params: Vec<(String, String)>,
        exist_ok: bool,
    ) -> PyResult<Collection> {
        let db = self.shared.db()?;
        let mut spec = CollectionSpec::new(dim, self::metric(metric)?);
        for (f, ty) in &fields {
            spec = spec.field(f.clone(), field_type(f, ty)?);
        }
        spec.params = params;
        let n = name.clone();
        detached(py, move || {
            if exist_ok && db.collections().contains(&n) {
                return Ok(());
            }
            db.create_collection(&n, spec)
        })?;
        self.collection(name)
    }

    /// Creates a collection for imagery encoded by the model in `model_dir` (the default model
    /// when `None`): the dimension, the provenance and the import's fields come from the model,
    /// so `import_archive` and text or image queries work on it.
    #[pyo3(signature = (name, model_dir=None, fields=Vec::new(), exist_ok=false, fixed=false))]
    fn create_imagery_collection(
        &self,
        py: Python<'_>,
        name: String,
        model_dir: Option<PathBuf>,
        fields: Vec<(String, String)>,
        exist_ok: bool,
        fixed: bool,
    ) -> PyResult<Collection> {
        let db = self.shared.db()?;
        let mut extra = Vec::new();
        for (f, ty) in &fields {
            extra.push((f.clone(), field_type(f, ty)?));
        }
        let n = name.clone();
        detached(py, move || {
            if exist_ok && db.collections().contains(&n) {
                return Ok(());
            }
            crate::encoder::create_imagery_with(&db, &n, model_dir.as_deref(), &extra, !fixed)
        })?;
        self.collection(name)
    }

    /// The collection named `name` (`NotFoundError` when there is none).
    fn collection(&self, name: String) -> PyResult<Collection> {
        let db = self.shared.db()?;
        db.snapshot().collection(&name).map_err(|e| crate::to_py(&e))?;
        Ok(Collection::new(Arc::clone(&self.shared), name))
    }

    /// Drops a collection and its files.
    fn drop_collection(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let db = self.shared.db()?;
        detached(py, move || db.drop_collection(&name))
    }

    /// What the database holds: per collection the rows, dimension, metric, fields, segments
    /// and parameters.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let db = self.shared.db()?;
        let snap = db.snapshot();
        let out = PyDict::new(py);
        out.set_item("path", self.shared.path.display().to_string())?;
        out.set_item("read_only", db.is_read_only())?;
        out.set_item("generation", snap.generation())?;
        let cols = PyDict::new(py);
        for name in snap.collections() {
            let c = snap.collection(&name).map_err(|e| crate::to_py(&e))?;
            let d = PyDict::new(py);
            d.set_item("count", c.count())?;
            d.set_item("dim", c.schema().dim)?;
            d.set_item("metric", c.schema().metric.name())?;
            let fields: Vec<(String, &str)> =
                c.schema().user_fields().iter().map(|f| (f.name.clone(), f.ty.name())).collect();
            d.set_item("fields", fields)?;
            d.set_item("segments", c.segments().len())?;
            d.set_item("memory_rows", c.memory_rows())?;
            d.set_item("wal_bytes", c.wal_bytes())?;
            d.set_item("params", c.params().to_vec())?;
            cols.set_item(name, d)?;
        }
        out.set_item("collections", cols)?;
        Ok(out)
    }

    /// Reads every byte and checks every checksum: `{"ok": bool, "files": [...]}`.
    fn verify<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let path = self.shared.path.clone();
        let report = py.detach(move || skysift::verify::verify(&skysift::io::RealVfs, &path));
        let out = PyDict::new(py);
        out.set_item("ok", report.ok())?;
        let files = PyList::empty(py);
        for f in &report.files {
            let d = PyDict::new(py);
            d.set_item("path", f.path.display().to_string())?;
            d.set_item("kind", f.kind)?;
            d.set_item("bytes", f.bytes)?;
            d.set_item("problems", f.problems.clone())?;
            d.set_item("notes", f.notes.clone())?;
            files.append(d)?;
        }
        out.set_item("files", files)?;
        Ok(out)
    }

    /// A read-only handle follows the writer: picks up what it committed since.
    fn refresh(&self, py: Python<'_>) -> PyResult<()> {
        let db = self.shared.db()?;
        detached(py, move || db.refresh())
    }

    /// Attaches shards (other databases of the same schema and model, or staging directories of
    /// segment files) to `collection` in one commit; `upsert` replaces colliding ids.
    #[pyo3(signature = (collection, shards, upsert=false))]
    fn attach<'py>(
        &self,
        py: Python<'py>,
        collection: String,
        shards: Vec<PathBuf>,
        upsert: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let db = self.shared.db()?;
        let s = detached(py, move || db.attach(&collection, &shards, upsert))?;
        let out = PyDict::new(py);
        out.set_item("summary", format!("{s:?}"))?;
        Ok(out)
    }

    /// Closes the handle (releases the writer's lock when it is the last one); later calls raise
    /// `ClosedError`.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let mut g = self.shared.db.write().map_err(|_| ClosedError::new_err("the database handle is poisoned"))?;
        let Some(db) = g.take() else { return Ok(()) };
        drop(g);
        detached(py, move || db.wait_for_flush()).map_err(|e| {
            crate::errors::Error::new_err(format!(
                "the database is closed, but {e}; the rows are durable (in the write-ahead log) and are indexed \
                 after it is opened again"
            ))
        })
    }

    fn __repr__(&self) -> String {
        format!("skysift.Database({:?})", self.shared.path.display().to_string())
    }
}
