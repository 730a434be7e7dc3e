//! ONNX Runtime sessions: creation on the chosen execution provider, and the one way outputs are read.
//!
//! Invariants: a session that reports `ExecutionDevice::Cuda` had the CUDA provider registered with
//! `error_on_failure` (so ORT did not silently fall back); `Device::Auto` that cannot use CUDA yields a CPU
//! session and a note saying why; outputs are checked to be `[rows, dim]` before they are returned.

use std::path::Path;

use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

use super::error::{EncodeError, EncodeResult};
use super::runtime::{Device, ExecutionDevice, Runtime};

/// Session options shared by both towers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionOptions {
    pub(crate) device: Device,
    pub(crate) threads: Option<usize>,
    /// Whether idle intra-op threads spin before they sleep (ONNX Runtime's default: throughput
    /// for back-to-back batches, at the cost of a core kept busy between them).
    pub(crate) spinning: bool,
}

fn base_builder(rt: &Runtime, opts: SessionOptions, what: &str) -> EncodeResult<SessionBuilder> {
    let mut b = Session::builder(&rt.env).map_err(|e| EncodeError::ort(format!("{what}: session options"), &e))?;
    b = b
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| EncodeError::ort(format!("{what}: optimisation level"), &e))?;
    if let Some(n) = opts.threads {
        b = b.with_intra_threads(n).map_err(|e| EncodeError::ort(format!("{what}: thread count {n}"), &e))?;
    }
    if !opts.spinning {
        b = b.with_intra_op_spinning(false).map_err(|e| EncodeError::ort(format!("{what}: thread spinning"), &e))?;
    }
    Ok(b)
}

fn commit(mut b: SessionBuilder, path: &Path, what: &str) -> EncodeResult<Session> {
    b.commit_from_file(path).map_err(|e| EncodeError::ort(format!("{what}: loading {}", path.display()), &e))
}

/// Opens `path` on the device asked for. Returns the session, where it runs, and a note when `Auto` fell
/// back to the CPU.
pub(crate) fn open(
    rt: &Runtime,
    path: &Path,
    opts: SessionOptions,
    what: &str,
) -> EncodeResult<(Session, ExecutionDevice, Option<String>)> {
    if opts.device == Device::Cpu {
        let b = base_builder(rt, opts, what)?;
        return Ok((commit(b, path, what)?, ExecutionDevice::Cpu, None));
    }
    let cuda_attempt = || -> Result<Session, String> {
        if !rt.has_cuda {
            return Err(format!(
                "the ONNX Runtime library {} has no CUDA execution provider (a CPU build)",
                rt.library.display()
            ));
        }
        let b = base_builder(rt, opts, what).map_err(|e| e.to_string())?;
        let provider = ort::ep::CUDA::default().build().error_on_failure();
        let b = b.with_execution_providers([provider]).map_err(|e| format!("registering CUDA: {e}"))?;
        commit(b, path, what).map_err(|e| e.to_string())
    };
    match cuda_attempt() {
        Ok(s) => Ok((s, ExecutionDevice::Cuda, None)),
        Err(reason) if opts.device == Device::Cuda => Err(EncodeError::CudaUnavailable { reason }),
        Err(reason) => {
            let b = base_builder(rt, opts, what)?;
            let note = format!("device auto: running on the CPU because {reason}");
            Ok((commit(b, path, what)?, ExecutionDevice::Cpu, Some(note)))
        }
    }
}

/// Copies a `[rows, dim]` f32 output into one vector per row, checking the shape.
pub(crate) fn rows_of(
    tower: &'static str,
    shape: &[i64],
    data: &[f32],
    rows: usize,
    dim: usize,
) -> EncodeResult<Vec<Vec<f32>>> {
    let ok = shape.len() == 2
        && usize::try_from(shape.first().copied().unwrap_or(-1)).ok() == Some(rows)
        && usize::try_from(shape.get(1).copied().unwrap_or(-1)).ok() == Some(dim)
        && data.len() == rows * dim;
    if !ok {
        return Err(EncodeError::OutputShape { tower, got: shape.to_vec(), rows, dim });
    }
    Ok(data.chunks(dim).map(<[f32]>::to_vec).collect())
}

/// L2-normalises in place; a zero vector stays zero.
pub(crate) fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        let inv = (1.0 / norm) as f32;
        for x in v {
            *x *= inv;
        }
    }
}
