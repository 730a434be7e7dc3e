//! ONNX Runtime sessions: creation on the chosen execution provider, and the one way outputs are read.
//!
//! Invariants: a session that reports `ExecutionDevice::Cuda` had the CUDA provider registered with
//! `error_on_failure` (so ORT did not silently fall back); `Device::Auto` that cannot use CUDA yields a CPU
//! session and a note saying why; outputs are checked to be `[rows, dim]` before they are returned.

use std::path::Path;

use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

use super::error::{EncodeError, EncodeResult};
use super::ort_cache;
use super::runtime::{Device, ExecutionDevice, Runtime};

/// Session options shared by both towers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionOptions<'a> {
    pub(crate) device: Device,
    /// Where optimised models are kept across processes ([`ort_cache`]); `None`: not kept.
    pub(crate) cache: Option<&'a Path>,
    pub(crate) threads: Option<usize>,
    /// Whether idle intra-op threads spin before they sleep (ONNX Runtime's default: throughput
    /// for back-to-back batches, at the cost of a core kept busy between them).
    pub(crate) spinning: bool,
}

fn base_builder(rt: &Runtime, opts: SessionOptions, what: &str) -> EncodeResult<SessionBuilder> {
    builder_at(rt, opts, what, GraphOptimizationLevel::Level3)
}

fn builder_at(
    rt: &Runtime,
    opts: SessionOptions,
    what: &str,
    level: GraphOptimizationLevel,
) -> EncodeResult<SessionBuilder> {
    let mut b = Session::builder(&rt.env).map_err(|e| EncodeError::ort(format!("{what}: session options"), &e))?;
    b = b.with_optimization_level(level).map_err(|e| EncodeError::ort(format!("{what}: optimisation level"), &e))?;
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

/// A CPU session of `path`: from its optimised copy in the cache when there is a current one, else
/// from `path` (writing the copy on the way when it can).
fn open_cpu(rt: &Runtime, path: &Path, opts: SessionOptions, what: &str) -> EncodeResult<Session> {
    match ort_cache::plan(opts.cache, path, &rt.library) {
        ort_cache::Plan::Use(cached) => {
            // The graph is already level 3's: optimising it again is skipped (and would not change it).
            if let Ok(s) = commit(builder_at(rt, opts, what, GraphOptimizationLevel::Disable)?, &cached, what) {
                return Ok(s);
            }
            ort_cache::discard(opts.cache, path);
        }
        ort_cache::Plan::Write(writer) => {
            let (target, entries) = writer.settings();
            let configured = entries
                .into_iter()
                .try_fold(base_builder(rt, opts, what)?, |b, (k, v)| b.with_config_entry(k, v).map_err(drop))
                .and_then(|b| b.with_optimized_model_path(&target).map_err(drop));
            if let Ok(b) = configured
                && let Ok(s) = commit(b, path, what)
            {
                writer.finish();
                return Ok(s);
            }
            // Whatever failed (the cache's folder, the runtime's options), the plain way says why.
            writer.abandon();
        }
        ort_cache::Plan::Off => {}
    }
    commit(base_builder(rt, opts, what)?, path, what)
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
        return Ok((open_cpu(rt, path, opts, what)?, ExecutionDevice::Cpu, None));
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
            let note = format!("device auto: running on the CPU because {reason}");
            Ok((open_cpu(rt, path, opts, what)?, ExecutionDevice::Cpu, Some(note)))
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
