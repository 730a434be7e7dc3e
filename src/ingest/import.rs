//! `import`: an archive of imagery and metadata into a collection, resumable and idempotent.
//!
//! Per file, a worker: stats it, hashes its content (SHA-256), asks the ledger (the records themselves:
//! tile `i` of `path` has the stable id [`record_id`]`(path, i)` and carries `file_size`, `file_hash`,
//! `tile_count` and `tiling`) whether it is already in, opens it ([`Raster`]), georeferences it, picks its
//! bands, stretches, plans tiles, and sends each tile (window, footprint, thumbnail, preprocessed
//! pixels) down the [`pipeline`] module. The writer upserts records and commits every
//! `commit_rows` records or `commit_interval`, then writes the report lines of the files that commit made
//! durable.
//!
//! Invariants:
//! - a file whose size, hash and tiling match its records, with every tile present, is not decoded
//!   or encoded again (`unchanged`); tiles present from an interrupted run are not encoded again;
//! - a changed file's records are replaced in place (same ids), and ids beyond its new tile count are
//!   deleted, so a file never has records of two versions once its import completes;
//! - a file that fails after some of its tiles were written (changed during import, encoder error)
//!   has this run's records removed again; committed data of other files is never touched;
//! - a collection records its encoder's provenance at creation, and an import with another model is
//!   refused before anything is read.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skysift_storage::schema::{FieldType, Metric, Value};

use super::archive_metadata::{self, ImageMeta, MetaSet};
use super::decode::{Limits, Raster};
use super::fields;
use super::fields::IMPORT_FIELDS;
use super::geo::GeoRef;
use super::nodata::{self, DEFAULT_MIN_VALID};
use super::overview::{self, MaskPlane};
use super::pipeline::{self, FileCtx, FileEnd, Msg, Out, Outcome, PendingHash, TileEncoder, TileItem};
use super::report::{FileReport, Problem, Reason, ReportWriter, Status, Summary};
use super::stages;
use super::thumbnail;
use super::tiff::TiffRaster;
use super::tile::{Plan, Tiling, plan, record_id};
use super::walk::{Entry, walk};
use crate::db::{CollectionSnapshot, CollectionSpec, Db, NewRecord, WriteTxn};
use crate::encode::Provenance;
use crate::error::{Error, Result};

/// Collection param holding the import recipe of the collection's first import.
pub const PARAM_TILING: &str = "import.tiling";
pub use super::fields::IMAGERY_FIELDS;
/// Most metadata fields a new collection gets (the schema allows 256 in all).
pub const MAX_METADATA_FIELDS: usize = 200;

/// Live counters of an import, for progress displays.
#[derive(Debug, Default)]
pub struct Progress {
    /// Imagery files found.
    pub files_total: AtomicU64,
    /// Files finished (any status).
    pub files_done: AtomicU64,
    /// Bytes of imagery found.
    pub bytes_total: AtomicU64,
    /// Bytes of finished files.
    pub bytes_done: AtomicU64,
    /// Tiles encoded and handed to the writer.
    pub tiles_written: AtomicU64,
    /// Tiles already present.
    pub tiles_reused: AtomicU64,
    /// Files skipped or failed so far.
    pub problems: AtomicU64,
}

/// A hook called with each file's path after it is hashed and before it is decoded (tests use it to
/// change files mid-import).
pub type FileHook = Arc<dyn Fn(&Path) + Send + Sync>;

/// How to import.
#[derive(Clone)]
pub struct ImportOptions {
    /// Target collection (created when missing). Default: `images`.
    pub collection: String,
    /// Tiling. Default: [`Tiling::default`].
    pub tiling: Tiling,
    /// Bands drawn as R, G, B (0-based); `None` chooses per file. Default: `None`.
    pub bands: Option<[usize; 3]>,
    /// Metadata field types overriding inference. Default: none.
    pub schema: Vec<(String, FieldType)>,
    /// Decode workers; 0 = one per core. Default: 0.
    pub workers: usize,
    /// Commit after this many records. Default: 1024.
    pub commit_rows: usize,
    /// Commit at least this often while records arrive. Default: 2 s.
    pub commit_interval: Duration,
    /// Longest side of thumbnails. Default: 96.
    pub thumbnail_px: u32,
    /// Decoder limits. Default: [`Limits::default`].
    pub limits: Limits,
    /// Set to stop (Ctrl-C): workers stop between tiles, what is encoded is committed.
    pub stop: Arc<AtomicBool>,
    /// Live counters.
    pub progress: Arc<Progress>,
    /// See [`FileHook`]. Default: none.
    pub after_hash: Option<FileHook>,
    /// Extra params recorded in a new collection (e.g. the model directory). Default: none.
    pub params: Vec<(String, String)>,
    /// Tiles with a smaller share of valid (not no-data) pixels are not encoded. Default:
    /// [`DEFAULT_MIN_VALID`] (0.5).
    pub min_valid: f64,
    /// Only these images (paths relative to the archive root, as the `source` field holds them);
    /// every metadata file is still read, so records are those of a whole-archive import.
    /// Distributed imports give each worker its share this way. Default: `None` (all).
    pub only: Option<Arc<std::collections::HashSet<String>>>,
}

impl std::fmt::Debug for ImportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportOptions")
            .field("collection", &self.collection)
            .field("tiling", &self.tiling)
            .field("bands", &self.bands)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            collection: "images".into(),
            tiling: Tiling::default(),
            bands: None,
            schema: Vec::new(),
            workers: 0,
            commit_rows: 1024,
            commit_interval: Duration::from_secs(2),
            thumbnail_px: thumbnail::DEFAULT_THUMBNAIL_PX,
            limits: Limits::default(),
            stop: Arc::new(AtomicBool::new(false)),
            progress: Arc::new(Progress::default()),
            after_hash: None,
            params: Vec::new(),
            min_valid: DEFAULT_MIN_VALID,
            only: None,
        }
    }
}

impl ImportOptions {
    /// The recipe stored with each record (`tiling` field): tiling and band choice.
    #[must_use]
    pub fn recipe(&self) -> String {
        let bands = self.bands.map_or_else(|| "auto".to_string(), stages::bands_text);
        // The default threshold is left out, so collections imported before it existed stay unchanged.
        let min_valid = if (self.min_valid - DEFAULT_MIN_VALID).abs() < 1e-12 {
            String::new()
        } else {
            format!(",min_valid={}", self.min_valid)
        };
        format!("{},bands={bands}{min_valid}", self.tiling.describe())
    }
}

/// Imports the imagery under `archive` into `opts.collection`, writing report lines to `report`.
pub fn import(
    db: &Db,
    enc: &dyn TileEncoder,
    archive: &Path,
    opts: &ImportOptions,
    report: &mut ReportWriter,
) -> Result<Summary> {
    let t0 = Instant::now();
    let root =
        fs::canonicalize(archive).map_err(|e| Error::bad_input(archive, format!("cannot open the archive: {e}")))?;
    let mut inv =
        walk(&root, &[db.path().to_path_buf()]).map_err(|e| Error::bad_input(&root, format!("cannot walk: {e}")))?;
    let meta = archive_metadata::collect(&root, &inv, &opts.schema);
    if let Some(only) = &opts.only {
        // After the metadata is read for the whole archive: fields and types are the archive's.
        inv.images.retain(|e| only.contains(&e.rel));
        inv.problems.retain(|(p, _)| only.contains(p));
    }
    let mut summary =
        Summary { collection: opts.collection.clone(), files: inv.images.len() as u64, ..Summary::default() };
    let types = ensure_collection(db, enc, opts, &meta, &mut summary)?;
    summary.ignored = inv.ignored + meta.unused;
    summary.metadata_notes.extend(meta.notes.iter().cloned());
    report.line(
        "schema",
        &serde_json::json!({"collection": opts.collection, "fields": summary.fields, "notes": summary.metadata_notes}),
    );
    for (path, p) in &inv.problems {
        let r = FileReport::problem(path.clone(), Status::Skipped, p.clone());
        report.line("entry", &r);
        summary.add(&r);
    }
    for (path, p) in &meta.problems {
        let r = FileReport::problem(path.clone(), Status::Skipped, p.clone());
        report.line("metadata", &r);
        summary.add(&r);
    }
    let progress = &opts.progress;
    progress.files_total.store(inv.images.len() as u64, Ordering::Relaxed);
    progress.bytes_total.store(inv.images.iter().map(|e| e.size).sum(), Ordering::Relaxed);

    let dropped_values = Mutex::new(BTreeMap::new());
    let worker = Worker {
        db,
        collection: &opts.collection,
        enc,
        opts,
        images: &inv.images,
        meta: &meta,
        types: &types,
        recipe: opts.recipe(),
        dropped_values: &dropped_values,
    };
    let workers = if opts.workers == 0 {
        std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
    } else {
        opts.workers
    };
    let mut writer = Writer {
        db,
        collection: &opts.collection,
        opts,
        txn: None,
        since: Instant::now(),
        pending: Vec::new(),
        report,
        summary: &mut summary,
        written: HashMap::new(),
        failed: HashMap::new(),
        ended: 0,
        sizes: &inv.images,
    };
    let timing = pipeline::run(
        inv.images.len(),
        workers,
        enc,
        &opts.stop,
        |i, send| worker.process(i, send),
        |out| writer.handle(out),
    );
    let ended = writer.ended;
    let committed = writer.commit();
    drop(writer);
    let timing = timing?;
    committed?;
    summary.not_started = inv.images.len() as u64 - ended;
    summary.interrupted = opts.stop.load(Ordering::Relaxed);
    summary.encoder_seconds = timing.busy;
    summary.encoder_window_seconds = timing.window;
    for (field, n) in dropped_values.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
        summary.metadata_notes.push(format!("{n} values of field {field:?} do not fit its type and were dropped"));
    }
    summary.seconds = t0.elapsed().as_secs_f64();
    report.line("summary", &summary);
    Ok(summary)
}

/// Creates the collection (schema: the import's own fields, then metadata fields; params: the
/// encoder's provenance and the recipe), or checks an existing one. Returns the type of every field
/// metadata may fill.
fn ensure_collection(
    db: &Db,
    enc: &dyn TileEncoder,
    opts: &ImportOptions,
    meta: &MetaSet,
    summary: &mut Summary,
) -> Result<HashMap<String, FieldType>> {
    let name = &opts.collection;
    let mut types = HashMap::new();
    if let Ok(col) = db.snapshot().collection(name) {
        if !Provenance::in_params(col.params()) {
            return Err(Error::Invalid(format!(
                "collection {name:?} has no encoder provenance (it was filled by `load`); import into another \
                 collection with --collection"
            )));
        }
        enc.check_params(col.params())?;
        let schema = col.schema();
        for (f, ty) in IMPORT_FIELDS {
            if schema.field_index(f).map(|i| schema.fields.get(i).map(|d| d.ty)) != Some(Some(ty)) {
                return Err(Error::Invalid(format!(
                    "collection {name:?} was not made by `skysift import` (field {f:?} of type {} is missing); \
                     import into another collection with --collection",
                    ty.name()
                )));
            }
        }
        for f in schema.user_fields() {
            types.insert(f.name.clone(), f.ty);
        }
        for (f, _) in &meta.fields {
            if !types.contains_key(f) {
                summary.metadata_notes.push(format!(
                    "field {f:?} is not in collection {name:?} (made by an earlier import); its values are dropped"
                ));
            }
        }
    } else {
        let mut spec = CollectionSpec::new(enc.dim() as u32, Metric::Cosine);
        for (f, ty) in IMPORT_FIELDS.into_iter().chain(IMAGERY_FIELDS) {
            spec = spec.field(f, ty);
            types.insert(f.to_string(), ty);
        }
        let mut extra = 0usize;
        for (f, ty) in &meta.fields {
            if types.contains_key(f) {
                continue;
            }
            if extra == MAX_METADATA_FIELDS {
                summary
                    .metadata_notes
                    .push(format!("more than {MAX_METADATA_FIELDS} metadata fields: {f:?} and later ones dropped"));
                break;
            }
            extra += 1;
            spec = spec.field(f.clone(), *ty);
            types.insert(f.clone(), *ty);
        }
        spec.params = enc.provenance_params();
        spec.params.push((PARAM_TILING.into(), opts.recipe()));
        spec.params.extend(opts.params.iter().cloned());
        db.create_collection(name, spec)?;
    }
    let col = db.snapshot().collection(name)?;
    summary.fields = col.schema().user_fields().iter().map(|f| (f.name.clone(), f.ty.name().to_string())).collect();
    Ok(types)
}

/// What a worker needs, shared by all workers.
struct Worker<'a> {
    db: &'a Db,
    collection: &'a str,
    enc: &'a dyn TileEncoder,
    opts: &'a ImportOptions,
    images: &'a [Entry],
    meta: &'a MetaSet,
    types: &'a HashMap<String, FieldType>,
    recipe: String,
    dropped_values: &'a Mutex<BTreeMap<String, u64>>,
}

/// What the ledger says about a file.
enum Ledger {
    /// Nothing usable: import every tile.
    Fresh,
    /// Same file and recipe; these tiles are present.
    Partial(HashSet<u32>),
    /// Same file and recipe, every tile present.
    Unchanged(u32),
    /// Another path owns the id.
    Collision(String),
}

fn text_field<'r>(fields: &'r [(String, Value)], name: &str) -> Option<&'r str> {
    fields.iter().find(|(n, _)| n == name).and_then(|(_, v)| match v {
        Value::Text(s) | Value::Keyword(s) => Some(s.as_str()),
        _ => None,
    })
}

fn int_field(fields: &[(String, Value)], name: &str) -> Option<i64> {
    fields.iter().find(|(n, _)| n == name).and_then(|(_, v)| if let Value::Integer(i) = v { Some(*i) } else { None })
}

fn ledger(col: &CollectionSnapshot, rel: &str, size: u64, hash: &str, recipe: &str) -> Result<Ledger> {
    let Some(first) = col.get(record_id(rel, 0))? else { return Ok(Ledger::Fresh) };
    if text_field(&first.fields, fields::SOURCE) != Some(rel) {
        return Ok(Ledger::Collision(text_field(&first.fields, fields::SOURCE).unwrap_or_default().to_owned()));
    }
    let same = |f: &[(String, Value)]| {
        text_field(f, fields::FILE_HASH) == Some(hash)
            && int_field(f, fields::FILE_SIZE) == Some(size as i64)
            && text_field(f, fields::TILING) == Some(recipe)
    };
    if !same(&first.fields) {
        return Ok(Ledger::Fresh);
    }
    let n = int_field(&first.fields, fields::TILE_COUNT).unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32;
    let mut present = HashSet::new();
    for i in 0..n {
        if let Some(r) = col.get(record_id(rel, i))?
            && same(&r.fields)
        {
            present.insert(i);
        }
    }
    Ok(if present.len() as u32 == n && n > 0 { Ledger::Unchanged(n) } else { Ledger::Partial(present) })
}

/// The tile's share of a scene-level bbox (north-up assumed): for imagery georeferenced only by its
/// metadata.
#[expect(clippy::many_single_char_names, reason = "x, y, w, h name a window")]
fn sub_bbox(b: [f64; 4], win: [u32; 4], width: u32, height: u32) -> [f64; 4] {
    let [x, y, w, h] = win.map(f64::from);
    let (fw, fh) = (f64::from(width.max(1)), f64::from(height.max(1)));
    let (dx, dy) = (b[2] - b[0], b[3] - b[1]);
    [b[0] + dx * x / fw, b[3] - dy * (y + h) / fh, b[0] + dx * (x + w) / fw, b[3] - dy * y / fh]
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

fn end(file: usize, report: FileReport, outcome: Outcome) -> FileEnd {
    FileEnd { file, report, ctx: None, outcome, peak_bytes: 0 }
}

impl Worker<'_> {
    fn process(&self, i: usize, send: &dyn Fn(Msg) -> bool) {
        let Some(entry) = self.images.get(i) else { return };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.file(i, entry, send)));
        let e = r.unwrap_or_else(|p| {
            let detail = format!("the decoder panicked: {}", panic_text(&*p));
            end(
                i,
                FileReport::problem(entry.rel.clone(), Status::Failed, Problem::new(Reason::DecoderPanic, detail)),
                Outcome::Dropped,
            )
        });
        if e.report.status != Status::Imported && e.report.status != Status::Unchanged {
            self.opts.progress.problems.fetch_add(1, Ordering::Relaxed);
        }
        send(Msg::End(Box::new(e)));
    }

    fn fields(&self, rel: &str, im: Option<&ImageMeta>) -> Vec<(String, Value)> {
        let mut out = vec![
            (fields::SOURCE.to_string(), Value::Text(rel.to_owned())),
            (fields::SCENE.to_string(), Value::Keyword(rel.to_owned())),
        ];
        let Some(im) = im else { return out };
        for (k, v) in &im.values {
            let Some(ty) = self.types.get(k) else { continue };
            if fields::is_import_field(k) {
                continue;
            }
            match archive_metadata::to_value(v, *ty) {
                Some(val) => out.push((k.clone(), val)),
                None => {
                    if let Ok(mut m) = self.dropped_values.lock() {
                        *m.entry(k.clone()).or_default() += 1;
                    }
                }
            }
        }
        out
    }

    /// For a TIFF with overviews, the level `--gsd` reads (see [`overview`]): opened when it is not
    /// level 0, with level 0's no-data value. The internal mask of the level read is attached. Returns
    /// the level opened (if not level 0) and the level read (when the file has overviews).
    fn open_level(
        &self,
        entry: &Entry,
        size: u64,
        base: &mut TiffRaster,
        src_gsd: Option<f64>,
        notes: &mut Vec<String>,
    ) -> std::result::Result<(Option<TiffRaster>, Option<u32>), Problem> {
        let ifds = overview::scan(&entry.path);
        if ifds.len() < 2 {
            return Ok((None, None));
        }
        let levels = overview::levels(&ifds);
        let widths: Vec<u32> = levels.iter().map(|l| l.width).collect();
        let li = match (self.opts.tiling.gsd, src_gsd) {
            (Some(g), Some(s)) => overview::choose(&widths, s, g),
            _ => 0,
        };
        let mut opened = None;
        if let Some(l) = levels.get(li).filter(|_| li > 0) {
            let mut t = TiffRaster::open_ifd(&entry.path, size, &self.opts.limits, l.index)?;
            if t.nodata.is_none() {
                t.set_nodata(base.nodata);
            }
            if t.samples != base.samples || t.sample != base.sample {
                return Err(Problem::new(
                    Reason::UnsupportedBandLayout,
                    format!(
                        "overview {li} has {} {} samples, the scene {} {}",
                        t.samples,
                        t.sample.name(),
                        base.samples,
                        base.sample.name()
                    ),
                ));
            }
            let g =
                src_gsd.map_or_else(String::new, |s| format!(", {} m", overview::level_gsd(s, base.width, t.width)));
            notes.push(format!(
                "overview level {li} of {} ({}x{}{g}) read for --gsd {}",
                levels.len() - 1,
                t.width,
                t.height,
                self.opts.tiling.gsd.unwrap_or_default()
            ));
            opened = Some(t);
        }
        let read = opened.as_mut().unwrap_or(base);
        if let Some(m) = overview::mask_for(&ifds, read.width, read.height) {
            match MaskPlane::open(&entry.path, size, &m, &self.opts.limits) {
                Ok(mp) => {
                    if let Err(why) = read.attach_mask(mp) {
                        notes.push(why);
                    }
                }
                Err(p) => notes.push(format!("internal mask not read: {p}")),
            }
        }
        Ok((opened, (levels.len() > 1).then_some(li as u32)))
    }

    /// Imports one file: its stages in order, each ending the file with a report when it refuses.
    fn file(&self, i: usize, entry: &Entry, send: &dyn Fn(Msg) -> bool) -> FileEnd {
        match self.stages(i, entry, send) {
            Ok(e) => e,
            Err(h) => end(i, *h.report, h.outcome),
        }
    }

    fn stages(&self, i: usize, entry: &Entry, send: &dyn Fn(Msg) -> bool) -> Result<FileEnd, Halt> {
        let rel = &entry.rel;
        let opts = self.opts;
        let skip = |p: Problem| Halt::skip(rel, p);
        // A file the ledger does not know needs its hash only for its records: a TIFF's is
        // computed on a thread of its own while the raster is decoded.
        let known = self.ledger_knows(rel)?;
        let mut read = if known {
            stages::read_and_hash(&entry.path, &opts.limits)
        } else {
            stages::read_unhashed(&entry.path, &opts.limits)
        }
        .map_err(skip)?;
        let hashing = read.hash.is_empty().then(|| Arc::new(PendingHash::start(entry.path.clone(), read.size)));
        if let Some(hook) = &opts.after_hash {
            hook(&entry.path);
        }
        let present = if known {
            self.keep_legacy_hash(rel, &entry.path, &mut read)?;
            self.ledger_decision(rel, &read)?
        } else {
            HashSet::new()
        };
        let stages::Opened { mut raster, georef, crs, format_name, mut notes } =
            stages::open_raster(&entry.path, &mut read, &opts.limits).map_err(skip)?;
        notes.extend(entry.notes.iter().cloned());
        let im = self.meta.by_image.get(rel);
        let bands = stages::choose_bands(
            opts.bands,
            raster.samples(),
            raster.rgb(),
            im.and_then(|m| m.platform.as_deref()),
            im.map_or(&[][..], |m| m.band_names.as_slice()),
            &mut notes,
        )
        .map_err(skip)?;
        let (w, h) = (raster.width(), raster.height());
        let src_gsd = georef
            .as_ref()
            .and_then(|g| g.pixel_size_m(f64::from(w) / 2.0, f64::from(h) / 2.0))
            .or(im.and_then(|m| m.gsd));
        if opts.tiling.gsd.is_some() && src_gsd.is_none() {
            notes.push(format!("{}: --gsd ignored, the source resolution is unknown", Reason::GsdUnknown.name()));
        }
        let level = self.read_level(entry, read.size, &mut raster, src_gsd, &mut notes).map_err(skip)?;
        let stretch = raster.prepare(bands).map_err(skip)?;
        if !stretch.is_identity() {
            notes.push(format!("{} stretched p2..p98: {}", raster.sample().name(), stretch.describe()));
        }
        let scale = stages::LevelScale::new((w, h), (raster.width(), raster.height()));
        let tiles = self.plan_tiles(rel, &read, &mut raster, scale, src_gsd, &mut notes)?;
        let scene_footprint = tiles.scene_box.and_then(|b| {
            georef
                .as_ref()
                .and_then(|g| g.footprint(b))
                .or_else(|| im.and_then(|m| m.footprint).map(|f| sub_bbox(f, b, w, h)))
        });
        let facts = FileFacts {
            format_name,
            crs: crs.as_deref(),
            bands,
            gsd: if tiles.plan.out.is_some() { opts.tiling.gsd } else { im.and_then(|m| m.gsd).or(tiles.level_gsd) },
            tile_count: tiles.kept.len() as u32,
            scene_footprint,
        };
        let ctx = Arc::new(FileCtx {
            rel: rel.clone(),
            fields: self.file_fields(rel, im, &read, &facts),
            tile_count: facts.tile_count,
            hashing,
        });
        let mut report = FileReport::new(rel.clone(), Status::Imported);
        report.format = Some(format_name);
        report.bytes = read.size;
        report.tiles = facts.tile_count;
        report.nodata_tiles = tiles.planned - facts.tile_count;
        report.level = level;
        report.reused = present.len() as u32;
        report.crs = crs;
        report.notes = notes;
        self.opts.progress.tiles_reused.fetch_add(present.len() as u64, Ordering::Relaxed);
        let placed = Placement { georef: georef.as_ref(), footprint: im.and_then(|m| m.footprint), scale };
        let e = self.send_tiles(i, &ctx, &report, &mut raster, &tiles, &present, &placed, send);
        if e.outcome != Outcome::Complete {
            return Ok(e);
        }
        if stages::changed_since(&entry.path, &read) {
            let mut r = report;
            (r.status, r.reason, r.detail) = (
                Status::Skipped,
                Some(Reason::ChangedDuringImport),
                Some("size or modification time changed while reading; run the import again".into()),
            );
            return Ok(with_ctx(end(i, r, Outcome::Dropped), &ctx, raster.peak_bytes()));
        }
        Ok(e)
    }

    /// Whether the collection holds a record of `rel` (its first tile's id): only then does the
    /// ledger decision need the file's hash.
    fn ledger_knows(&self, rel: &str) -> Result<bool, Halt> {
        let failed = |e: Error| ledger_failed(rel, &e);
        let col = self.db.snapshot().collection(self.collection).map_err(failed)?;
        Ok(col.get(record_id(rel, 0)).map_err(failed)?.is_some())
    }

    /// A file whose ledger entry carries the SHA-256 of an import before BLAKE3: when the file still
    /// has that SHA-256, its hash stays the recorded one (its tiles are unchanged, not encoded
    /// again, and new tiles carry the same hash); otherwise the file changed and the BLAKE3 hash
    /// stands.
    fn keep_legacy_hash(&self, rel: &str, path: &Path, read: &mut stages::ReadFile) -> Result<(), Halt> {
        let failed = |e: Error| ledger_failed(rel, &e);
        let col = self.db.snapshot().collection(self.collection).map_err(failed)?;
        let Some(first) = col.get(record_id(rel, 0)).map_err(failed)? else { return Ok(()) };
        if let Some(old) = text_field(&first.fields, fields::FILE_HASH).filter(|h| stages::is_legacy_hash(h))
            && int_field(&first.fields, fields::FILE_SIZE) == Some(read.size as i64)
            && stages::legacy_sha256(path).map_err(|p| Halt::skip(rel, p))? == old
        {
            old.clone_into(&mut read.hash);
        }
        Ok(())
    }

    /// The ledger decision: the tiles already present (none for a new or changed file); a file whose
    /// tiles are all present ends here as unchanged, one whose ids another path owns is skipped.
    fn ledger_decision(&self, rel: &str, read: &stages::ReadFile) -> Result<HashSet<u32>, Halt> {
        let failed = |e: Error| ledger_failed(rel, &e);
        let col = self.db.snapshot().collection(self.collection).map_err(failed)?;
        match ledger(&col, rel, read.size, &read.hash, &self.recipe).map_err(failed)? {
            Ledger::Fresh => Ok(HashSet::new()),
            Ledger::Partial(p) => Ok(p),
            Ledger::Unchanged(n) => {
                let mut r = FileReport::new(rel.to_owned(), Status::Unchanged);
                r.reason = Some(Reason::Unchanged);
                (r.bytes, r.tiles, r.reused) = (read.size, n, n);
                self.opts.progress.tiles_reused.fetch_add(u64::from(n), Ordering::Relaxed);
                Err(Halt::new(r, Outcome::Nothing))
            }
            Ledger::Collision(other) => Err(Halt::skip(
                rel,
                Problem::new(Reason::IdCollision, format!("record ids collide with those of {other:?}")),
            )),
        }
    }

    /// The level read: for a TIFF with overviews, the one `--gsd` asks for replaces `raster` (see
    /// [`Worker::open_level`]); returns the level read when the file has overviews.
    fn read_level(
        &self,
        entry: &Entry,
        size: u64,
        raster: &mut Raster,
        src_gsd: Option<f64>,
        notes: &mut Vec<String>,
    ) -> Result<Option<u32>, Problem> {
        let Raster::Tiff(base) = raster else { return Ok(None) };
        let (opened, level) = self.open_level(entry, size, base, src_gsd, notes)?;
        if let Some(t) = opened {
            *raster = Raster::Tiff(Box::new(t));
        }
        Ok(level)
    }

    /// The tiles: the grid over the level read, then, where the raster may have no-data, each
    /// window's share of valid pixels (before any tile is sent, so that the records, numbered over
    /// the tiles kept, know their count and the scene's valid footprint).
    fn plan_tiles(
        &self,
        rel: &str,
        read: &stages::ReadFile,
        raster: &mut Raster,
        scale: stages::LevelScale,
        src_gsd: Option<f64>,
        notes: &mut Vec<String>,
    ) -> Result<TilePlan, Halt> {
        let opts = self.opts;
        let (w, lw) = (scale.scene.0, raster.width());
        let level_gsd = src_gsd.map(|s| overview::level_gsd(s, w, lw));
        let plan = plan(lw, raster.height(), &opts.tiling, level_gsd);
        if let (Some(g), Some(s)) = (opts.tiling.gsd, level_gsd)
            && plan.out.is_none()
            && (g / s - 1.0).abs() > 1e-6
        {
            notes.push(format!(
                "{}: --gsd {g} m not applied, the source pixels are {s} m (a {}-pixel tile would cover less than one)",
                Reason::GsdNotApplied.name(),
                opts.tiling.tile
            ));
        }
        let planned = plan.windows.len() as u32;
        let mut kept: Vec<(usize, f64)> = Vec::with_capacity(plan.windows.len());
        if !raster.may_have_nodata() {
            kept.extend((0..plan.windows.len()).map(|k| (k, 1.0)));
            let scene_box = Some([0, 0, scale.scene.0, scale.scene.1]);
            return Ok(TilePlan { plan, planned, kept, level_gsd, scene_box });
        }
        let mut valid_box: Option<[u32; 4]> = None;
        for (k, win) in plan.windows.iter().enumerate() {
            if opts.stop.load(Ordering::Relaxed) {
                let mut r = FileReport::new(rel.to_owned(), Status::Interrupted);
                (r.reason, r.bytes) = (Some(Reason::Interrupted), read.size);
                r.detail = Some("stopped while looking for no-data; run the import again to continue".into());
                return Err(Halt::new(r, Outcome::Nothing));
            }
            let mask = match raster.read_rgb_valid(*win) {
                Ok((_, m)) => m,
                Err(pr) => return Err(Halt::skip(rel, Problem::new(pr.reason, format!("tile {k}: {}", pr.detail)))),
            };
            let frac = mask.as_deref().map_or(1.0, nodata::valid_fraction);
            if frac >= opts.min_valid && frac > 0.0 {
                kept.push((k, frac));
                if let Some(b) = mask.as_deref().and_then(|m| nodata::valid_bbox(m, win[2])) {
                    valid_box = Some(nodata::union(valid_box, [win[0] + b[0], win[1] + b[1], b[2], b[3]]));
                }
            }
        }
        if let Raster::Tiff(t) = raster {
            t.rewind();
        }
        let v = match &*raster {
            Raster::Tiff(t) => t.validity.describe(),
            Raster::Memory(_) => "alpha channel".into(),
        };
        notes.push(format!(
            "no-data from {v}: {} of {planned} tiles under --min-valid {} not encoded",
            planned - kept.len() as u32,
            opts.min_valid
        ));
        let scene_box = valid_box.map(|b| scale.to_scene(b));
        Ok(TilePlan { plan, planned, kept, level_gsd, scene_box })
    }

    /// The fields every record of the file carries: source and scene, its metadata, then the import's
    /// own ([`fields`]).
    fn file_fields(
        &self,
        rel: &str,
        im: Option<&ImageMeta>,
        read: &stages::ReadFile,
        facts: &FileFacts<'_>,
    ) -> Vec<(String, Value)> {
        let mut out = self.fields(rel, im);
        out.push((fields::FORMAT.into(), Value::Keyword(facts.format_name.into())));
        if let Some(c) = facts.crs {
            out.push((fields::CRS.into(), Value::Keyword(c.to_owned())));
        }
        out.push((fields::BANDS.into(), Value::Text(stages::bands_text(facts.bands))));
        if let Some(g) = facts.gsd {
            out.push((fields::GSD.into(), Value::Float(g)));
        }
        out.push((fields::TILE_COUNT.into(), Value::Integer(i64::from(facts.tile_count))));
        out.push((fields::FILE_SIZE.into(), Value::Integer(read.size as i64)));
        if !read.hash.is_empty() {
            // Empty while it is computed: the writer adds it (FileCtx::hashing).
            out.push((fields::FILE_HASH.into(), Value::Text(read.hash.clone())));
        }
        out.push((fields::TILING.into(), Value::Text(self.recipe.clone())));
        if let Some(b) = facts.scene_footprint
            && self.types.get(fields::SCENE_FOOTPRINT) == Some(&FieldType::GeoBbox)
        {
            out.push((fields::SCENE_FOOTPRINT.into(), Value::GeoBbox(b)));
        }
        out
    }

    /// The tiles kept and not yet present, read, filled where no-data, resampled, thumbnailed and
    /// preprocessed, sent one by one. Returns the file's end: complete when every tile was sent, else
    /// what stopped it (a read or encoder error, Ctrl-C, the writer gone).
    #[expect(clippy::too_many_arguments, reason = "the file's context, its raster and plan, and the channel")]
    fn send_tiles(
        &self,
        i: usize,
        ctx: &Arc<FileCtx>,
        report: &FileReport,
        raster: &mut Raster,
        tiles: &TilePlan,
        present: &HashSet<u32>,
        placed: &Placement<'_>,
        send: &dyn Fn(Msg) -> bool,
    ) -> FileEnd {
        let n = tiles.kept.len() as u32;
        let has_imagery_fields = self.types.get(fields::VALID_FRACTION) == Some(&FieldType::Float);
        let stopped = |raster: &Raster, status: Status, reason: Reason, detail: Option<String>, outcome: Outcome| {
            let mut r = report.clone();
            (r.status, r.reason, r.detail) = (status, Some(reason), detail);
            with_ctx(end(i, r, outcome), ctx, raster.peak_bytes())
        };
        for (j, &(k, frac)) in tiles.kept.iter().enumerate() {
            let j = j as u32;
            let Some(win) = tiles.plan.windows.get(k) else { continue };
            if present.contains(&j) {
                continue;
            }
            if self.opts.stop.load(Ordering::Relaxed) {
                let detail = format!("stopped before tile {j} of {n}; run the import again to continue");
                return stopped(raster, Status::Interrupted, Reason::Interrupted, Some(detail), Outcome::Interrupted);
            }
            let read = if j + 1 == n { raster.last_rgb_valid(*win) } else { raster.read_rgb_valid(*win) };
            let img = match read {
                Ok((mut img, mask)) => {
                    if let Some(m) = mask {
                        nodata::fill_neutral(&mut img, &m);
                    }
                    img
                }
                Err(pr) => {
                    let detail = Some(format!("tile {j}: {}", pr.detail));
                    return stopped(raster, Status::Skipped, pr.reason, detail, Outcome::Dropped);
                }
            };
            let img = match tiles.plan.out {
                Some((ow, oh)) => image::imageops::resize(&img, ow, oh, image::imageops::FilterType::Triangle),
                None => img,
            };
            let scene_win = placed.scale.to_scene(*win);
            let (w, h) = placed.scale.scene;
            let footprint = placed
                .georef
                .and_then(|g| g.footprint(scene_win))
                .or_else(|| placed.footprint.map(|b| sub_bbox(b, scene_win, w, h)));
            let thumbnail = thumbnail::jpeg(&img, self.opts.thumbnail_px);
            let mut pixels = vec![0.0; self.enc.input_len()];
            if let Err(e) = self.enc.preprocess(&img, &mut pixels) {
                return stopped(raster, Status::Failed, Reason::EncodeFailed, Some(e.to_string()), Outcome::Dropped);
            }
            let extra =
                if has_imagery_fields { vec![(fields::VALID_FRACTION.into(), Value::Float(frac))] } else { Vec::new() };
            let item = TileItem {
                file: i,
                ctx: Arc::clone(ctx),
                index: j,
                window: scene_win,
                footprint,
                thumbnail,
                pixels,
                extra,
            };
            if !send(Msg::Tile(Box::new(item))) {
                return stopped(raster, Status::Interrupted, Reason::Interrupted, None, Outcome::Interrupted);
            }
        }
        with_ctx(end(i, report.clone(), Outcome::Complete), ctx, raster.peak_bytes())
    }
}

/// Why a file's import ended before its tiles: its report and what became of its records.
struct Halt {
    report: Box<FileReport>,
    outcome: Outcome,
}

impl Halt {
    /// The file is skipped for `p`; nothing of it was written.
    fn skip(rel: &str, p: Problem) -> Halt {
        Halt::new(FileReport::problem(rel.to_owned(), Status::Skipped, p), Outcome::Nothing)
    }

    fn new(report: FileReport, outcome: Outcome) -> Halt {
        Halt { report: Box::new(report), outcome }
    }
}

/// The tiles of a file: the grid over the level read and the windows kept.
struct TilePlan {
    plan: Plan,
    /// Windows in the grid.
    planned: u32,
    /// The windows kept (index into the grid, valid fraction), in grid order.
    kept: Vec<(usize, f64)>,
    /// Ground resolution of the level read, when known.
    level_gsd: Option<f64>,
    /// The box of the scene's valid pixels (scene pixels), `None` when no tile was kept.
    scene_box: Option<[u32; 4]>,
}

/// What the file says about itself, for its fields.
struct FileFacts<'a> {
    format_name: &'static str,
    crs: Option<&'a str>,
    bands: [usize; 3],
    gsd: Option<f64>,
    tile_count: u32,
    scene_footprint: Option<[f64; 4]>,
}

/// Where a file's tiles are on the ground: its georeference, or the box its metadata gives.
struct Placement<'a> {
    georef: Option<&'a GeoRef>,
    footprint: Option<[f64; 4]>,
    scale: stages::LevelScale,
}

/// The end of a file whose ledger entry could not be read.
fn ledger_failed(rel: &str, e: &Error) -> Halt {
    let p = Problem::new(Reason::Unreadable, e.to_string());
    Halt::new(FileReport::problem(rel.to_owned(), Status::Failed, p), Outcome::Nothing)
}

fn with_ctx(mut e: FileEnd, ctx: &Arc<FileCtx>, peak: u64) -> FileEnd {
    e.ctx = Some(Arc::clone(ctx));
    e.peak_bytes = peak;
    e
}

/// The writer: records into transactions, commits, report lines after their commit.
struct Writer<'a, 'r> {
    db: &'a Db,
    collection: &'a str,
    opts: &'a ImportOptions,
    txn: Option<WriteTxn<'a>>,
    since: Instant,
    pending: Vec<FileReport>,
    report: &'r mut ReportWriter,
    summary: &'r mut Summary,
    /// Ids written in this run, per file, until the file ends.
    written: HashMap<usize, Vec<u64>>,
    /// Files the encoder failed on.
    failed: HashMap<usize, String>,
    ended: u64,
    sizes: &'a [Entry],
}

impl<'a> Writer<'a, '_> {
    fn txn(&mut self) -> Result<&mut WriteTxn<'a>> {
        if self.txn.is_none() {
            self.txn = Some(self.db.begin_write(self.collection)?);
            self.since = Instant::now();
        }
        self.txn.as_mut().ok_or_else(|| Error::Invalid("no write transaction".into()))
    }

    /// Commits what is buffered, then writes the report lines it made durable.
    fn commit(&mut self) -> Result<()> {
        if let Some(t) = self.txn.take() {
            t.commit()?;
        }
        for r in self.pending.drain(..) {
            self.report.line("file", &r);
            self.summary.add(&r);
        }
        Ok(())
    }

    fn maybe_commit(&mut self) -> Result<()> {
        let due = self
            .txn
            .as_ref()
            .is_none_or(|t| t.len() >= self.opts.commit_rows || self.since.elapsed() >= self.opts.commit_interval);
        if due { self.commit() } else { Ok(()) }
    }

    fn handle(&mut self, out: Out) -> Result<()> {
        match out {
            Out::Batch(items, vectors) => {
                for (t, v) in items.into_iter().zip(vectors) {
                    if self.failed.contains_key(&t.file) {
                        continue;
                    }
                    let id = record_id(&t.ctx.rel, t.index);
                    let mut rec = NewRecord { id, vector: v, fields: t.ctx.fields.clone() };
                    if let Some(hashing) = &t.ctx.hashing {
                        match hashing.get() {
                            Ok(h) => rec.fields.push((fields::FILE_HASH.into(), Value::Text(h.to_owned()))),
                            Err(reason) => {
                                self.failed.insert(t.file, reason.to_owned());
                                continue;
                            }
                        }
                    }
                    rec.fields.push((fields::WINDOW.into(), Value::Window(t.window)));
                    rec.fields.push((fields::TILE_INDEX.into(), Value::Integer(i64::from(t.index))));
                    if let Some(b) = t.footprint {
                        rec.fields.push((fields::FOOTPRINT.into(), Value::GeoBbox(b)));
                    }
                    if !t.thumbnail.is_empty() {
                        rec.fields.push((fields::THUMBNAIL.into(), Value::Blob(t.thumbnail)));
                    }
                    rec.fields.extend(t.extra);
                    match self.txn()?.upsert(rec) {
                        Ok(()) => {
                            self.written.entry(t.file).or_default().push(id);
                            self.opts.progress.tiles_written.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(Error::BadRecord { reason, .. }) => {
                            self.failed.insert(t.file, reason);
                        }
                        Err(e) => return Err(e),
                    }
                }
                self.maybe_commit()
            }
            Out::Failed(items, why) => {
                for t in items {
                    self.failed.insert(t.file, why.clone());
                }
                Ok(())
            }
            Out::End(e) => self.end(*e),
        }
    }

    fn end(&mut self, e: FileEnd) -> Result<()> {
        let FileEnd { file, mut report, ctx, mut outcome, peak_bytes } = e;
        self.ended += 1;
        let p = &self.opts.progress;
        p.files_done.fetch_add(1, Ordering::Relaxed);
        p.bytes_done.fetch_add(self.sizes.get(file).map_or(0, |e| e.size), Ordering::Relaxed);
        self.summary.peak_reader_bytes = self.summary.peak_reader_bytes.max(peak_bytes);
        if let Some(why) = self.failed.remove(&file)
            && matches!(outcome, Outcome::Complete | Outcome::Interrupted)
        {
            (report.status, report.reason, report.detail) = (Status::Failed, Some(Reason::EncodeFailed), Some(why));
            outcome = Outcome::Dropped;
        }
        let written = self.written.remove(&file).unwrap_or_default();
        report.written = written.len() as u32;
        match outcome {
            Outcome::Complete => {
                if let Some(ctx) = ctx {
                    // Records beyond the new tile count belong to an older version of the file.
                    let mut i = ctx.tile_count;
                    while self.txn()?.delete(record_id(&ctx.rel, i))? {
                        self.summary.records_deleted += 1;
                        i += 1;
                    }
                }
            }
            Outcome::Dropped => {
                for id in &written {
                    if self.txn()?.delete(*id)? {
                        self.summary.records_deleted += 1;
                    }
                }
                report.written = 0;
            }
            Outcome::Interrupted | Outcome::Nothing => {}
        }
        self.pending.push(report);
        if self.txn.as_ref().is_none_or(WriteTxn::is_empty) {
            if let Some(t) = self.txn.take() {
                drop(t);
            }
            return self.commit();
        }
        self.maybe_commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[expect(clippy::float_cmp, reason = "the halves of these boxes are exact in binary")]
    fn sub_bbox_splits_north_up() {
        let b = sub_bbox([10.0, 40.0, 12.0, 42.0], [0, 0, 50, 50], 100, 100);
        assert_eq!(b, [10.0, 41.0, 11.0, 42.0]);
        let b = sub_bbox([10.0, 40.0, 12.0, 42.0], [50, 50, 50, 50], 100, 100);
        assert_eq!(b, [11.0, 40.0, 12.0, 41.0]);
    }
}
