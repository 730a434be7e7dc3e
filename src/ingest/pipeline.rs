//! The import pipeline: threads joined by bounded channels, so a slow stage holds back the ones before
//! it (backpressure) and memory stays bounded.
//!
//! ```text
//! planner ──jobs──▶ decode/tile workers (N) ──tiles──▶ batcher+encoder ──batches──▶ writer (caller)
//!  (file indexes)    decode, tile, thumbnail,           one ONNX run per           records, commits,
//!                    preprocess to tensors              batch_size tiles            report
//! ```
//!
//! Invariants:
//! - a file's messages reach the writer in the order its worker sent them: its tiles, then its end
//!   (the batcher holds an end back until the tiles before it are encoded);
//! - the encoder never waits for a full batch while the tile queue is idle: after [`IDLE_FLUSH`] without
//!   a tile, a partial batch runs (so a slow decoder costs latency, not a stall at the end);
//! - the first batches ramp up (a quarter of `batch_size`, then doubling): the encoder starts once
//!   a few tiles are decoded instead of waiting for a whole batch while the workers fill the queue;
//! - when the writer stops (error), dropping its receiver unblocks every stage: each exits on its next
//!   send;
//! - Ctrl-C (the stop flag) stops the planner at once and the workers between tiles; tiles already
//!   queued are still encoded and handed to the writer, which commits them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use image::RgbImage;

use super::report::FileReport;
use crate::encode::Encoder;
use crate::error::{Error, Result};

/// How long the batcher waits for more tiles before running a partial batch.
pub const IDLE_FLUSH: Duration = Duration::from_millis(25);

/// What the pipeline needs from an image encoder. [`Encoder`] implements it; tests and benchmarks can
/// plug in others.
pub trait TileEncoder: Sync {
    /// Embedding dimension.
    fn dim(&self) -> usize;
    /// `f32` values of one preprocessed tile.
    fn input_len(&self) -> usize;
    /// Tiles per encoder run.
    fn batch_size(&self) -> usize;
    /// Writes the encoder input of `img` into `out` (`input_len()` values); runs in decode workers.
    fn preprocess(&self, img: &RgbImage, out: &mut [f32]) -> Result<()>;
    /// Embeddings of `rows` preprocessed tiles, in order.
    fn encode(&self, pixels: &[f32], rows: usize) -> Result<Vec<Vec<f32>>>;
    /// The provenance to record in a new collection's params.
    fn provenance_params(&self) -> Vec<(String, String)>;
    /// Refuses a collection made by another model.
    fn check_params(&self, params: &[(String, String)]) -> Result<()>;
}

impl TileEncoder for Encoder {
    fn dim(&self) -> usize {
        self.provenance().dim
    }

    fn input_len(&self) -> usize {
        self.preprocessor().map_or(0, crate::encode::Preprocessor::input_len)
    }

    fn batch_size(&self) -> usize {
        Encoder::batch_size(self)
    }

    fn preprocess(&self, img: &RgbImage, out: &mut [f32]) -> Result<()> {
        let p = self
            .preprocessor()
            .ok_or_else(|| Error::Invalid("the encoder was loaded without its image tower".into()))?;
        Ok(p.preprocess_into(img, out)?)
    }

    fn encode(&self, pixels: &[f32], rows: usize) -> Result<Vec<Vec<f32>>> {
        Ok(self.encode_pixels(pixels, rows)?)
    }

    fn provenance_params(&self) -> Vec<(String, String)> {
        self.provenance().to_params()
    }

    fn check_params(&self, params: &[(String, String)]) -> Result<()> {
        Ok(Encoder::check_params(self, params)?)
    }
}

/// One tile on its way to the encoder.
#[derive(Debug)]
pub struct TileItem {
    /// Index of the file in the walk.
    pub file: usize,
    /// The file's shared record fields.
    pub ctx: std::sync::Arc<FileCtx>,
    /// Tile index in the scene.
    pub index: u32,
    /// Source window `[x, y, w, h]`.
    pub window: [u32; 4],
    /// WGS84 footprint.
    pub footprint: Option<[f64; 4]>,
    /// JPEG thumbnail.
    pub thumbnail: Vec<u8>,
    /// Preprocessed encoder input.
    pub pixels: Vec<f32>,
    /// Fields of this tile only (`valid_fraction`).
    pub extra: Vec<(String, skysift_storage::schema::Value)>,
}

/// Fields shared by every record of one file.
#[derive(Debug, Clone)]
pub struct FileCtx {
    /// Path relative to the archive root.
    pub rel: String,
    /// Field values (metadata, source, scene, format, ledger...).
    pub fields: Vec<(String, skysift_storage::schema::Value)>,
    /// Tiles of the scene.
    pub tile_count: u32,
    /// The file's ledger hash while it is computed on a thread of its own (a TIFF the ledger did
    /// not know, hashed while it is decoded and encoded): the writer adds it to each record,
    /// waiting for it at the file's first record. `None` when `fields` hold it already.
    pub hashing: Option<Arc<PendingHash>>,
}

/// A file's ledger hash computed on a thread of its own ([`super::stages::hash_file`]).
#[derive(Debug)]
pub struct PendingHash {
    thread: Mutex<Option<std::thread::JoinHandle<Result<String, String>>>>,
    done: OnceLock<Result<String, String>>,
}

impl PendingHash {
    /// Starts hashing `path` (of `size` bytes when stat'ed).
    #[must_use]
    pub fn start(path: std::path::PathBuf, size: u64) -> PendingHash {
        let thread = std::thread::spawn(move || {
            super::stages::hash_file(&path, size).map_err(|p| format!("{}: {}", p.reason.name(), p.detail))
        });
        PendingHash { thread: Mutex::new(Some(thread)), done: OnceLock::new() }
    }

    /// The hash, waiting for it the first time; `Err` names why the file could not be hashed
    /// (unreadable, or its size changed while it was read).
    pub fn get(&self) -> Result<&str, &str> {
        let r = self.done.get_or_init(|| {
            let thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
            match thread.map(std::thread::JoinHandle::join) {
                Some(Ok(r)) => r,
                Some(Err(p)) => std::panic::resume_unwind(p),
                None => Err("the hash was not computed".to_owned()),
            }
        });
        r.as_deref().map_err(String::as_str)
    }
}

/// How a file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// All tiles sent (or already present): stale records beyond the tile count are removed.
    Complete,
    /// Nothing to write (unchanged, or skipped before any tile was sent).
    Nothing,
    /// Stopped by the user: tiles written so far stay, a rerun continues.
    Interrupted,
    /// Failed after tiles may have been sent: the writer removes what this run wrote for the file.
    Dropped,
}

/// The end of one file.
#[derive(Debug)]
pub struct FileEnd {
    /// Index of the file in the walk.
    pub file: usize,
    /// Its report line (tile counts filled in by the writer).
    pub report: FileReport,
    /// Its fields, when tiles were planned.
    pub ctx: Option<std::sync::Arc<FileCtx>>,
    /// What the writer must do.
    pub outcome: Outcome,
    /// Peak bytes its raster reader held.
    pub peak_bytes: u64,
}

/// From workers to the batcher.
#[derive(Debug)]
pub enum Msg {
    /// A tile.
    Tile(Box<TileItem>),
    /// A file is done.
    End(Box<FileEnd>),
}

/// From the batcher to the writer.
#[derive(Debug)]
pub enum Out {
    /// Encoded tiles and their vectors, in the same order.
    Batch(Vec<TileItem>, Vec<Vec<f32>>),
    /// Tiles the encoder failed on.
    Failed(Vec<TileItem>, String),
    /// A file is done (after all its tiles).
    End(Box<FileEnd>),
}

/// Encoder timing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timing {
    /// Seconds spent in encoder runs.
    pub busy: f64,
    /// Seconds from the first tile received to the end of the last run.
    pub window: f64,
    /// Tiles encoded.
    pub tiles: u64,
}

/// Channel capacities, in batches of tiles (tiles queue) and files (jobs queue).
const TILE_QUEUE_BATCHES: usize = 2;

/// Runs the pipeline over `jobs` files with `workers` decode workers. `work(file, send)` decodes one
/// file, calling `send` for each message (it returns false once the pipeline is shutting down);
/// `sink` receives everything the writer must handle and may stop the pipeline by returning an error.
pub fn run<W, S>(
    jobs: usize,
    workers: usize,
    enc: &dyn TileEncoder,
    stop: &AtomicBool,
    work: W,
    mut sink: S,
) -> Result<Timing>
where
    W: Fn(usize, &dyn Fn(Msg) -> bool) + Sync,
    S: FnMut(Out) -> Result<()>,
{
    let batch = enc.batch_size().max(1);
    let workers = workers.max(1);
    let (job_tx, job_rx) = bounded::<usize>(workers * 2);
    let (tile_tx, tile_rx) = bounded::<Msg>(batch * TILE_QUEUE_BATCHES);
    let (out_tx, out_rx) = bounded::<Out>(2);
    let timing = Mutex::new(Timing::default());
    std::thread::scope(|s| -> Result<Timing> {
        s.spawn(move || {
            for i in 0..jobs {
                if stop.load(Ordering::Relaxed) || job_tx.send(i).is_err() {
                    break;
                }
            }
        });
        for _ in 0..workers {
            let (rx, tx, work) = (job_rx.clone(), tile_tx.clone(), &work);
            s.spawn(move || {
                let send = |m: Msg| tx.send(m).is_ok();
                while let Ok(i) = rx.recv() {
                    work(i, &send);
                }
            });
        }
        drop((job_rx, tile_tx));
        let timing_ref = &timing;
        s.spawn(move || batcher(enc, &tile_rx, &out_tx, batch, timing_ref));
        let mut result = Ok(());
        for out in &out_rx {
            if let Err(e) = sink(out) {
                result = Err(e);
                break;
            }
        }
        drop(out_rx);
        result?;
        Ok(*timing.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    })
}

fn batcher(enc: &dyn TileEncoder, rx: &Receiver<Msg>, tx: &Sender<Out>, batch: usize, timing: &Mutex<Timing>) {
    let mut pending: Vec<TileItem> = Vec::with_capacity(batch);
    let mut held: Vec<Box<FileEnd>> = Vec::new();
    let mut pixels: Vec<f32> = Vec::new();
    let (mut first, mut last): (Option<Instant>, Option<Instant>) = (None, None);
    let mut busy = Duration::ZERO;
    let mut tiles = 0u64;
    // Tiles that make the next batch: ramps up to `batch` (see the module's invariants).
    let mut size = batch.div_ceil(4);
    let mut run = |pending: &mut Vec<TileItem>, held: &mut Vec<Box<FileEnd>>, size: &mut usize| -> bool {
        if !pending.is_empty() {
            *size = (*size * 2).min(batch);
            pixels.clear();
            for t in pending.iter() {
                pixels.extend_from_slice(&t.pixels);
            }
            let t0 = Instant::now();
            let r = enc.encode(&pixels, pending.len());
            let t1 = Instant::now();
            busy += t1 - t0;
            last = Some(t1);
            tiles += pending.len() as u64;
            let items: Vec<TileItem> = std::mem::take(pending);
            let msg = match r {
                Ok(v) if v.len() == items.len() => Out::Batch(items, v),
                Ok(v) => Out::Failed(items, format!("the encoder returned {} vectors", v.len())),
                Err(e) => Out::Failed(items, e.to_string()),
            };
            if tx.send(msg).is_err() {
                return false;
            }
        }
        held.drain(..).all(|e| tx.send(Out::End(e)).is_ok())
    };
    loop {
        let msg = if pending.is_empty() {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(IDLE_FLUSH)
        };
        let alive = match msg {
            Ok(Msg::Tile(t)) => {
                first.get_or_insert_with(Instant::now);
                pending.push(*t);
                pending.len() < size || run(&mut pending, &mut held, &mut size)
            }
            Ok(Msg::End(e)) => {
                if pending.is_empty() {
                    tx.send(Out::End(e)).is_ok()
                } else {
                    held.push(e);
                    true
                }
            }
            Err(RecvTimeoutError::Timeout) => run(&mut pending, &mut held, &mut size),
            Err(RecvTimeoutError::Disconnected) => {
                run(&mut pending, &mut held, &mut size);
                break;
            }
        };
        if !alive {
            break;
        }
    }
    let window = match (first, last) {
        (Some(f), Some(l)) => (l - f).as_secs_f64(),
        _ => 0.0,
    };
    if let Ok(mut t) = timing.lock() {
        *t = Timing { busy: busy.as_secs_f64(), window, tiles };
    }
}
