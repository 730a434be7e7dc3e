//! `skysift._native`: the engine behind the `skysift` Python package.
//!
//! The Python layer (`python/skysift/`) owns the idioms (chained queries, Arrow, pandas,
//! `GeoPandas`, tqdm); this module owns every call into the engine. Invariants:
//! - every call that reads, searches, encodes or writes runs with the GIL released
//!   (`detached`), so handles are shared across Python threads and searches run in parallel;
//! - nothing panics across the boundary: a Rust panic becomes `skysift.Error` and the process
//!   lives on;
//! - vectors arrive as C-contiguous `float32` arrays and are read in place (no copy of the array;
//!   each record takes its row once, as the write path needs it);
//! - bad input is refused before anything is written: one commit per call.

#![allow(
    clippy::needless_pass_by_value,
    reason = "PyO3 extracts every argument as an owned value (arrays, objects, strings)"
)]
#![allow(clippy::too_many_arguments, reason = "Python keyword arguments, each with its default")]

use std::panic::AssertUnwindSafe;

use pyo3::prelude::*;

mod collection;
mod convert;
mod database;
mod demo;
mod encoder;
mod errors;

pub use errors::to_py;

/// Runs `f` with the GIL released, turning a panic into `skysift.Error`.
pub(crate) fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> skysift::Result<T> + Send) -> PyResult<T> {
    py.detach(|| match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(Failure::Engine),
        Err(p) => Err(Failure::Panic(panic_text(p.as_ref()))),
    })
    .map_err(Failure::into_py)
}

/// What went wrong in a detached call (built without the GIL, raised with it).
pub(crate) enum Failure {
    Engine(skysift::Error),
    Panic(String),
}

impl Failure {
    fn into_py(self) -> PyErr {
        match self {
            Failure::Engine(e) => to_py(&e),
            Failure::Panic(m) => errors::Error::new_err(format!(
                "internal error (a bug in skysift; please report it): {m}; nothing was left half-done"
            )),
        }
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<database::Database>()?;
    m.add_class::<collection::Collection>()?;
    m.add_class::<collection::AboveStream>()?;
    m.add_class::<encoder::Encoder>()?;
    errors::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(default_model_dir, m)?)?;
    m.add_function(wrap_pyfunction!(user_model_dir, m)?)?;
    m.add_function(wrap_pyfunction!(demo_files, m)?)?;
    m.add_function(wrap_pyfunction!(archive_plan, m)?)?;
    m.add_function(wrap_pyfunction!(import_field_names, m)?)?;
    Ok(())
}

/// The default model directory (`SKYSIFT_MODEL_DIR`, `./models/demo`, then the user cache), or
/// `None` when none holds a model.
#[pyfunction]
fn default_model_dir() -> Option<String> {
    skysift::encode::locate::default_model_dir().ok().map(|p| p.display().to_string())
}

/// Where `skysift.models.install_demo()` puts the demo model (`~/.cache/skysift/models/demo`).
#[pyfunction]
fn user_model_dir() -> Option<String> {
    skysift::encode::locate::user_model_dir().map(|p| p.display().to_string())
}

/// The demo model's committed files carried by the wheel: `[(relative_path, bytes)]`.
#[pyfunction]
fn demo_files(py: Python<'_>) -> Vec<(&'static str, Bound<'_, pyo3::types::PyBytes>)> {
    demo::FILES.iter().map(|(p, b)| (*p, pyo3::types::PyBytes::new(py, b))).collect()
}

/// What an import of `folder` reads: `([(image, bytes)], [(field, type)])` (see the Ray import).
#[pyfunction]
fn archive_plan(py: Python<'_>, folder: std::path::PathBuf) -> PyResult<ArchivePlan> {
    let (images, fields) = detached(py, move || encoder::archive_plan(&folder))?;
    Ok((images, fields.into_iter().map(|(n, t)| (n, t.name())).collect()))
}

/// `([(image, bytes)], [(field, type)])`.
type ArchivePlan = (Vec<(String, u64)>, Vec<(String, &'static str)>);

/// The fields every imagery collection has (the import's bookkeeping), before its metadata fields.
#[pyfunction]
fn import_field_names() -> Vec<&'static str> {
    skysift::ingest::fields::IMPORT_FIELDS
        .iter()
        .chain(&skysift::ingest::import::IMAGERY_FIELDS)
        .map(|(n, _)| *n)
        .collect()
}
