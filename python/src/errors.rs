//! The exception hierarchy: `skysift.Error` and one subclass per case a caller handles
//! differently. Every engine error maps to exactly one of them.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(skysift, Error, PyException, "Base class of every error skysift raises.");
create_exception!(
    skysift,
    FilterError,
    Error,
    "A filter that does not parse or does not fit the schema; `.column`, `.hint`, `.expected` and `.position` say where and what to write."
);
create_exception!(
    skysift,
    LockedError,
    Error,
    "Another writer holds the database: open it with read_only=True, or close the other writer."
);
create_exception!(
    skysift,
    ModelMismatchError,
    Error,
    "The encoder is not the model the collection was built with (both are named)."
);
create_exception!(
    skysift,
    CorruptionError,
    Error,
    "A file of the database is damaged (the file and region are named)."
);
create_exception!(
    skysift,
    SchemaError,
    Error,
    "A record or query that does not fit the collection: wrong dimension, unknown field, wrong type, NaN."
);
create_exception!(skysift, NotFoundError, Error, "No such collection or record.");
create_exception!(
    skysift,
    ModelError,
    Error,
    "The model or ONNX Runtime cannot be loaded (what to do is in the message)."
);
create_exception!(skysift, ClosedError, Error, "The handle was closed.");

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("FilterError", py.get_type::<FilterError>())?;
    m.add("LockedError", py.get_type::<LockedError>())?;
    m.add("ModelMismatchError", py.get_type::<ModelMismatchError>())?;
    m.add("CorruptionError", py.get_type::<CorruptionError>())?;
    m.add("SchemaError", py.get_type::<SchemaError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    m.add("ClosedError", py.get_type::<ClosedError>())?;
    Ok(())
}

/// The Python exception for an engine error.
#[must_use]
pub fn to_py(e: &skysift::Error) -> PyErr {
    use skysift::encode::EncodeError as E;
    use skysift_storage::Error as S;
    let msg = e.to_string();
    match e {
        skysift::Error::Filter(f) => Python::attach(|py| {
            let err = FilterError::new_err(msg);
            let v = err.value(py);
            let column = f.source.as_deref().zip(f.span.clone()).and_then(|(s, r)| s.get(r)).map(str::to_owned);
            let _ = v.setattr("column", column);
            let _ = v.setattr("hint", f.help.clone());
            let _ = v.setattr("expected", f.expected.clone());
            let _ = v.setattr("position", f.span.as_ref().map(|r| r.start));
            err
        }),
        skysift::Error::Storage(s) => match s {
            S::Locked { .. } => LockedError::new_err(msg),
            S::Corrupted { .. } | S::ChecksumMismatch { .. } => CorruptionError::new_err(msg),
            S::AttachSchema { .. } => SchemaError::new_err(msg),
            _ => Error::new_err(msg),
        },
        skysift::Error::NoSuchCollection { .. } => NotFoundError::new_err(msg),
        skysift::Error::Schema(_) | skysift::Error::BadRecord { .. } | skysift::Error::DuplicateId { .. } => {
            SchemaError::new_err(msg)
        }
        skysift::Error::Encode(enc) => match enc {
            E::ModelMismatch { .. } | E::Provenance { .. } => ModelMismatchError::new_err(msg),
            E::RuntimeNotFound { .. }
            | E::RuntimeLoad { .. }
            | E::CudaUnavailable { .. }
            | E::ModelFileMissing { .. }
            | E::ManifestParse { .. }
            | E::ManifestInvalid { .. } => ModelError::new_err(msg),
            _ => Error::new_err(msg),
        },
        _ => Error::new_err(msg),
    }
}
