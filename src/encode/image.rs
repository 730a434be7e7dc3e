//! The image tower: preprocessing ([`super::Preprocessor`]) and the image ONNX graph.
//!
//! Invariants: the input tensor of a run is `[n, 3, H, W]` (or `[n, H, W, 3]`) with `n` at most the
//! encoder's batch size; output rows come back in input order; one run at a time per session (`Mutex`);
//! with several sessions a batch is cut into as many consecutive parts, run side by side.

use std::sync::Mutex;

use ort::session::Session;
use ort::value::TensorRef;

use super::error::{EncodeError, EncodeResult};
use super::manifest::{ImageSpec, Layout};
use super::ort_session::rows_of;
use super::preprocess::Preprocessor;

pub(crate) struct ImageTower {
    pub(crate) preprocessor: Preprocessor,
    sessions: Vec<Mutex<Session>>,
    spec: ImageSpec,
    dim: usize,
}

impl ImageTower {
    pub(crate) fn new(sessions: Vec<Session>, spec: &ImageSpec, dim: usize) -> Self {
        ImageTower {
            preprocessor: Preprocessor::new(spec),
            sessions: sessions.into_iter().map(Mutex::new).collect(),
            spec: spec.clone(),
            dim,
        }
    }

    /// Runs a batch already preprocessed into `pixels` (`rows * input_len` values): in one run, or
    /// cut into one part per session, run side by side.
    pub(crate) fn run(&self, pixels: &[f32], rows: usize) -> EncodeResult<Vec<Vec<f32>>> {
        let parts = self.sessions.len().min(rows);
        if parts <= 1 {
            return self.run_on(0, pixels, rows);
        }
        let per = pixels.len() / rows;
        let step = rows.div_ceil(parts);
        let chunks: Vec<(usize, &[f32])> = pixels.chunks(step * per).map(|c| (c.len() / per, c)).collect();
        let results: Vec<EncodeResult<Vec<Vec<f32>>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .iter()
                .enumerate()
                .skip(1)
                .map(|(i, &(n, c))| scope.spawn(move || self.run_on(i, c, n)))
                .collect();
            let first = chunks.first().map_or_else(|| Ok(Vec::new()), |&(n, c)| self.run_on(0, c, n));
            std::iter::once(first)
                .chain(handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))))
                .collect()
        });
        let mut out = Vec::with_capacity(rows);
        for r in results {
            out.extend(r?);
        }
        Ok(out)
    }

    /// Runs `rows` inputs on session `which`.
    fn run_on(&self, which: usize, pixels: &[f32], rows: usize) -> EncodeResult<Vec<Vec<f32>>> {
        if rows == 0 {
            return Ok(Vec::new());
        }
        let (h, w) = self.preprocessor.size();
        let (h, w) = (h as usize, w as usize);
        let shape = match self.spec.layout {
            Layout::Nchw => [rows, 3, h, w],
            Layout::Nhwc => [rows, h, w, 3],
        };
        let input = TensorRef::from_array_view((shape, pixels))
            .map_err(|e| EncodeError::ort("image tower: input tensor", &e))?;
        let mut session = self
            .sessions
            .get(which)
            .ok_or_else(|| EncodeError::Invalid("image tower: no such session".into()))?
            .lock()
            .map_err(|_| EncodeError::Invalid("image tower session lock poisoned".into()))?;
        let outputs = session
            .run(vec![(self.spec.input_name.as_str(), input)])
            .map_err(|e| EncodeError::ort("image tower: run", &e))?;
        let out = outputs.get(&self.spec.output_name).ok_or_else(|| EncodeError::Ort {
            context: "image tower: outputs".into(),
            reason: format!("no output named {:?} (manifest image.output_name)", self.spec.output_name),
        })?;
        let (shape, data) = out.try_extract_tensor::<f32>().map_err(|e| EncodeError::ort("image tower: output", &e))?;
        rows_of("image", shape, data, rows, self.dim)
    }
}
