//! Values between Python and the engine, by the schema's field type.

use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use skysift::schema::{FieldType, Value};

use crate::errors::SchemaError;

/// A Python value as a field value of type `ty` (`None` for Python's `None` and NaN floats,
/// which are nulls). `field` names the column in errors.
pub fn value(field: &str, ty: FieldType, v: &Bound<'_, PyAny>) -> PyResult<Option<Value>> {
    if v.is_none() {
        return Ok(None);
    }
    let bad = |want: &str| {
        let got = v.get_type().name().map_or_else(|_| "?".to_owned(), |n| n.to_string());
        SchemaError::new_err(format!("field {field:?} is a {} field: expected {want}, got {got} {v}", ty.name()))
    };
    let out = match ty {
        FieldType::Keyword | FieldType::Text => {
            let s: String = v.extract().map_err(|_| bad("a str"))?;
            if ty == FieldType::Keyword { Value::Keyword(s) } else { Value::Text(s) }
        }
        FieldType::Integer => Value::Integer(v.extract().map_err(|_| bad("an int"))?),
        FieldType::Float => {
            let f: f64 = v.extract().map_err(|_| bad("a float"))?;
            if f.is_nan() {
                return Ok(None);
            }
            Value::Float(f)
        }
        FieldType::Bool => Value::Bool(v.extract().map_err(|_| bad("a bool"))?),
        FieldType::Timestamp => Value::Timestamp(timestamp(v).ok_or_else(|| {
            bad("a datetime (naive ones are read as UTC), an ISO 8601 str, or an int of microseconds since 1970")
        })?),
        FieldType::GeoBbox => {
            let b: Vec<f64> = v.extract().map_err(|_| bad("[min_lon, min_lat, max_lon, max_lat]"))?;
            let b: [f64; 4] = b.try_into().map_err(|_| bad("[min_lon, min_lat, max_lon, max_lat]"))?;
            Value::GeoBbox(b)
        }
        FieldType::Window => {
            let w: Vec<u32> = v.extract().map_err(|_| bad("[x, y, width, height] in pixels"))?;
            Value::Window(w.try_into().map_err(|_| bad("[x, y, width, height] in pixels"))?)
        }
        FieldType::Blob => Value::Blob(v.extract::<Vec<u8>>().map_err(|_| bad("bytes"))?),
    };
    Ok(Some(out))
}

/// Microseconds since 1970 from a `datetime` (naive = UTC), a pandas `Timestamp`, an ISO 8601
/// string or an int of microseconds.
fn timestamp(v: &Bound<'_, PyAny>) -> Option<i64> {
    if let Ok(i) = v.extract::<i64>() {
        return Some(i);
    }
    if let Ok(s) = v.extract::<String>() {
        return skysift::time::parse_timestamp(&s);
    }
    if v.hasattr("timestamp").ok()? {
        // A naive datetime is local time to Python; read it as UTC, as the import does.
        let aware = if v.getattr("tzinfo").ok()?.is_none() {
            let utc = v.py().import("datetime").ok()?.getattr("timezone").ok()?.getattr("utc").ok()?;
            v.call_method("replace", (), Some(&[("tzinfo", utc)].into_py_dict(v.py()).ok()?)).ok()?
        } else {
            v.clone()
        };
        let secs: f64 = aware.call_method0("timestamp").ok()?.extract().ok()?;
        return Some((secs * 1e6).round() as i64);
    }
    None
}

use pyo3::types::IntoPyDict;

/// A field value as a Python object (timestamps as microseconds; the Python layer types them).
pub fn to_object<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Keyword(s) | Value::Text(s) => s.into_pyobject(py)?.into_any(),
        Value::Integer(i) | Value::Timestamp(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(f) => f.into_pyobject(py)?.into_any(),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::GeoBbox(b) => PyList::new(py, b)?.into_any(),
        Value::Window(w) => PyList::new(py, w)?.into_any(),
        Value::Blob(b) => PyBytes::new(py, b).into_any(),
    })
}

/// Rows of a C-contiguous `float32` 2-D array, read in place: `(data, rows, dim)`.
pub fn matrix<'a>(a: &'a PyReadonlyArray2<'_, f32>, what: &str) -> PyResult<(&'a [f32], usize, usize)> {
    let shape = a.shape();
    let (rows, dim) = (shape[0], shape[1]);
    let data = a.as_slice().map_err(|_| {
        PyValueError::new_err(format!(
            "{what} must be a C-contiguous float32 array; pass numpy.ascontiguousarray({what}, dtype=numpy.float32)"
        ))
    })?;
    Ok((data, rows, dim))
}

/// A 1-D `uint64` array, read in place.
pub fn ids<'a>(a: &'a PyReadonlyArray1<'_, u64>) -> PyResult<&'a [u64]> {
    a.as_slice().map_err(|_| PyTypeError::new_err("ids must be a contiguous 1-D array of non-negative ints"))
}

/// Checks that every value of `data` is finite; names the first bad row.
pub fn finite(data: &[f32], dim: usize, what: &str) -> PyResult<()> {
    if let Some(i) = data.iter().position(|x| !x.is_finite()) {
        return Err(SchemaError::new_err(format!(
            "{what}: row {} holds a NaN or infinite value (column {}); nothing was written",
            i / dim.max(1),
            i % dim.max(1)
        )));
    }
    Ok(())
}
