//! Entry points shared by the fuzz targets of this crate (`fuzz/fuzz_targets/*.rs`) and the corpus
//! replay in `tests/fuzz_corpus.rs`. Arbitrary bytes in; never a panic, except the assertions that
//! state each target's property (a failing one is a finding).
//!
//! | target | input | property |
//! | --- | --- | --- |
//! | [`metadata()`] | a JSON-lines metadata line or a `.npy` header | no panic |
//! | [`repl_line`] | one REPL line | no escape byte reaches the output |
//! | [`filter_parser`] | filter text | what parses prints to text that parses back to the same AST |
//! | [`image_decode`] | an imagery file | the import's decode path refuses what is over [`IMAGE_LIMITS`] before allocating, and reads what it opens |
//! | [`sidecar()`] | a STAC item, JSON sidecar and CSV manifest | no resolved href leaves the archive root |
//! | [`model_manifest`] | a model's `manifest.json` | every accepted path stays inside the model directory |
//! | [`stateful`] | a sequence of API operations with injected I/O faults | the database matches a `BTreeMap` model |

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use skysift_storage::io::{Fault, FaultVfs, RealVfs};
use skysift_storage::schema::{ALL_TYPES, FieldDef, FieldType, Metric, Schema, Value};

use crate::db::{CollectionSnapshot, CollectionSpec, CommitInfo, Db, NewRecord};
use crate::encode::{ModelManifest, Preprocessor};
use crate::filter::{Filter, parse};
use crate::index::{SearchParams, SearchScratch};
use crate::ingest::bands::default_bands;
use crate::ingest::decode::{Format, Limits, Raster, sniff};
use crate::ingest::geo::GeoRef;
use crate::ingest::tile::{Tiling, plan};
use crate::ingest::{archive_metadata, load_metadata, thumbnail, walk};
use crate::repl::Repl;
use crate::session::Session;

/// A metadata line: JSON parsing, conversion to every field type, timestamps, `.npy` headers.
pub fn metadata(data: &[u8]) {
    let _ = crate::ingest::vectors::parse_header(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = crate::time::parse_timestamp(text);
    if let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(text) {
        for (k, v) in obj.iter().take(64) {
            for ty in ALL_TYPES {
                let _ = load_metadata::convert(k, ty, v);
            }
        }
    }
}

fn repl() -> Option<&'static Mutex<Repl>> {
    static REPL: OnceLock<Option<(tempfile_free::Dir, Mutex<Repl>)>> = OnceLock::new();
    REPL.get_or_init(|| {
        // Kept for the whole process (statics are not dropped): on disk, not in `/dev/shm`.
        let dir = tempfile_free::Dir::new_in(&std::env::temp_dir())?;
        let db = Db::open(dir.path()).ok()?;
        db.create_collection("c", CollectionSpec::new(4, Metric::Cosine)).ok()?;
        let mut tx = db.begin_write("c").ok()?;
        for i in 0..8u64 {
            tx.insert(NewRecord::new(i, vec![1.0, i as f32, 0.5, -1.0])).ok()?;
        }
        tx.commit().ok()?;
        let s = Session::open(db, None, None).ok()?;
        Some((dir, Mutex::new(Repl::new(s, std::env::temp_dir().join("skysift-fuzz-gallery")))))
    })
    .as_ref()
    .map(|(_, r)| r)
}

/// One REPL line (on a small database without a model: text queries fail fast).
///
/// # Panics
///
/// When an escape byte reaches the REPL's output (the property the target checks).
pub fn repl_line(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else { return };
    if line.trim_start().starts_with("\\show") {
        return;
    }
    if let Some(r) = repl()
        && let Ok(mut r) = r.lock()
    {
        let out = r.handle_line(line);
        assert!(!out.output.contains('\u{1b}'), "escape byte reached the output");
        let _ = r.complete(line);
    }
}

/// Filter text: no input panics or overflows the stack; whatever parses prints (`Display`) to text
/// that parses back to the same AST; checking against a schema never panics.
///
/// # Panics
///
/// When the printed form of a parsed filter does not parse back to the same AST.
pub fn filter_parser(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(parsed) = parse(text) else { return };
    let printed = parsed.expr.to_string();
    let again = parse(&printed).unwrap_or_else(|e| panic!("{text:?} prints as {printed:?}, which does not parse: {e}"));
    assert_eq!(again.expr, parsed.expr, "{text:?} -> {printed:?}");
    if let Ok(schema) = filter_schema() {
        let _ = Filter::parse(text, &schema);
    }
}

/// The schema filters are checked against by [`filter_parser`] and the filter checker's unit
/// tests: one field of each type a filter compares.
pub fn filter_schema() -> Result<Schema, String> {
    let f = |name: &str, ty| FieldDef { name: name.into(), ty };
    let fields = vec![
        f("class", FieldType::Keyword),
        f("year", FieldType::Integer),
        f("cloud_cover", FieldType::Float),
        f("acquired", FieldType::Timestamp),
        f("cloudy", FieldType::Bool),
        f("footprint", FieldType::GeoBbox),
    ];
    Schema::new(4, Metric::Cosine, fields)
}

/// Decoder limits of [`image_decode`]: small, so that a header declaring a huge raster is refused
/// (and a fuzzer's memory limit catches any allocation made before the check).
pub const IMAGE_LIMITS: Limits = Limits {
    max_memory_pixels: 4 << 20,
    max_scene_pixels: 4 << 20,
    max_chunk_bytes: 4 << 20,
    max_memory_file_bytes: 4 << 20,
};

/// Tiling of [`image_decode`]: small tiles, chips up to 128 pixels, resampled to 10 m when the
/// source resolution is known.
const IMAGE_TILING: Tiling = Tiling { tile: 64, overlap: 8, gsd: Some(10.0), chip_max: 128 };

/// An imagery file through the import's decode path ([`IMAGE_LIMITS`]): format by signature, open
/// (declared sizes checked), georeferencing, default bands, stretch, tile plan; the first and last
/// tile are read, resampled and thumbnailed.
///
/// # Panics
///
/// When an opened raster is over the limits, or a tile read has another size than its window.
pub fn image_decode(data: &[u8]) {
    let Some(format) = sniff(data) else { return };
    let len = data.len() as u64;
    if format != Format::Tiff && len > IMAGE_LIMITS.max_memory_file_bytes {
        return; // the import refuses these before reading them
    }
    // TIFF is read from a file, window by window, as the import does.
    let Some(dir) = tempfile_free::Dir::new() else { return };
    let path = dir.path().join("scene");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(mut raster) = Raster::open(&path, Some(data), format, len, &IMAGE_LIMITS) else { return };
    let (w, h) = (raster.width(), raster.height());
    let limit = if format == Format::Tiff { IMAGE_LIMITS.max_scene_pixels } else { IMAGE_LIMITS.max_memory_pixels };
    assert!(u64::from(w) * u64::from(h) <= limit, "opened a {w}x{h} raster, over the limit of {limit} pixels");
    let _ = raster.describe();
    let georef = raster.geo_tags().and_then(|t| GeoRef::from_tags(t).ok().flatten());
    let src_gsd = georef.and_then(|g| g.pixel_size_m(f64::from(w) / 2.0, f64::from(h) / 2.0));
    let (bands, _) = default_bands(raster.samples(), raster.rgb(), None, &[]);
    if raster.prepare(bands).is_err() {
        return;
    }
    let p = plan(w, h, &IMAGE_TILING, src_gsd);
    let mut windows: Vec<[u32; 4]> = p.windows.first().into_iter().chain(p.windows.last()).copied().collect();
    windows.dedup();
    for win in windows {
        let Ok(img) = raster.read_rgb(win) else { return };
        assert_eq!(img.dimensions(), (win[2], win[3]), "window {win:?} of a {w}x{h} raster");
        let img = match p.out {
            Some((ow, oh)) => image::imageops::resize(&img, ow, oh, image::imageops::FilterType::Triangle),
            None => img,
        };
        if let Some(g) = georef {
            let _ = g.footprint(win);
        }
        let _ = thumbnail::jpeg(&img, 32);
    }
    let _ = raster.peak_bytes();
}

/// Whether `path` (absolute) stays inside `root` (canonical): lexically, and once its deepest
/// existing ancestor is resolved (symbolic links followed).
fn stays_inside(root: &Path, path: &Path) -> bool {
    if !path.starts_with(root) || path.components().any(|c| c == Component::ParentDir) {
        return false;
    }
    path.ancestors().find_map(|a| std::fs::canonicalize(a).ok()).is_some_and(|real| real.starts_with(root))
}

/// Every string in a JSON value (at most `budget` of them).
fn json_strings<'v>(v: &'v serde_json::Value, out: &mut Vec<&'v str>, budget: usize) {
    if out.len() >= budget {
        return;
    }
    match v {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(a) => a.iter().for_each(|x| json_strings(x, out, budget)),
        serde_json::Value::Object(o) => o.values().for_each(|x| json_strings(x, out, budget)),
        _ => {}
    }
}

/// Metadata beside the imagery (`ingest::archive_metadata`): the bytes become a STAC item (`a/item.json`),
/// the sidecar of `a/x.jpg` (`a/x.json`) and a CSV manifest (`a/meta.csv`) in a small archive that
/// has a symbolic link out of it (`a/out`). The archive is walked and its metadata collected as the
/// import does; every string of the JSON and every CSV cell is also resolved as an href.
///
/// # Panics
///
/// When metadata describes anything but imagery of the archive, a field name is not a valid schema
/// name, or an href resolves to a path outside the archive root.
pub fn sidecar(data: &[u8]) {
    let Some(dir) = tempfile_free::Dir::new() else { return };
    let (root, outside) = (dir.path().join("archive"), dir.path().join("outside"));
    let made = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(root.join("a"))?;
        std::fs::create_dir_all(root.join("b"))?;
        std::fs::create_dir_all(&outside)?;
        for f in ["a/x.jpg", "a/y.tif", "b/z.png"] {
            std::fs::write(root.join(f), b"\xFF\xD8\xFF")?;
        }
        std::fs::write(outside.join("secret.jpg"), b"\xFF\xD8\xFF")?;
        std::os::unix::fs::symlink(&outside, root.join("a/out"))?;
        for f in ["a/item.json", "a/x.json", "a/meta.csv"] {
            std::fs::write(root.join(f), data)?;
        }
        Ok(())
    })();
    let Ok(root) = made.and_then(|()| std::fs::canonicalize(&root)) else { return };
    let Ok(inv) = walk::walk(&root, &[]) else { return };
    let set = archive_metadata::collect(&root, &inv, &[]);
    let images: HashSet<&str> = inv.images.iter().map(|e| e.rel.as_str()).collect();
    for (image, meta) in &set.by_image {
        assert!(images.contains(image.as_str()), "metadata describes {image:?}, not imagery of the archive");
        for (name, v) in &meta.values {
            if let Some((_, ty)) = set.fields.iter().find(|(n, _)| n == name) {
                let _ = archive_metadata::to_value(v, *ty);
            }
        }
    }
    for (name, ty) in &set.fields {
        let field = FieldDef { name: name.clone(), ty: *ty };
        assert!(Schema::new(4, Metric::Cosine, vec![field]).is_ok(), "field {name:?} is not a valid schema name");
    }
    let doc_dir = root.join("a");
    let mut hrefs: Vec<String> = Vec::new();
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) {
        let mut strings = Vec::new();
        json_strings(&json, &mut strings, 64);
        hrefs.extend(strings.into_iter().map(str::to_owned));
    }
    let mut rdr = csv::ReaderBuilder::new().flexible(true).has_headers(false).from_reader(data);
    for row in rdr.records().take(16).filter_map(Result::ok) {
        hrefs.extend(row.iter().take(16).map(str::to_owned));
    }
    for href in &hrefs {
        for base in [&doc_dir, &root] {
            if let Ok(rel) = archive_metadata::resolve_href(&root, base, href) {
                assert!(
                    stays_inside(&root, &root.join(&rel)),
                    "href {href:?} (from {}) resolved to {rel:?}, outside the archive root",
                    base.display()
                );
            }
        }
    }
}

/// A model directory for [`model_manifest`], made once per process at a fixed path: tiny tower and
/// tokenizer files, a `templates/` folder, and symbolic links out of it (`outdir/`, `escape.onnx`)
/// and to nowhere (`dangling.onnx`).
fn model_fixture() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let top = tempfile_free::base().join("skysift-fuzz-model-fixture");
        let (model, outside) = (top.join("model"), top.join("outside"));
        std::fs::create_dir_all(model.join("templates")).ok()?;
        std::fs::create_dir_all(&outside).ok()?;
        for (name, bytes) in [
            ("image.onnx", &b"\x08\x07\x12\x04fuzz"[..]),
            ("text.onnx", b"\x08\x07\x12\x04fuzz"),
            ("image.onnx.data", b"\0\0\0\0"),
            ("tokenizer.json", b"{}"),
            ("templates/en.txt", b"a satellite image of {}.\n"),
        ] {
            std::fs::write(model.join(name), bytes).ok()?;
        }
        std::fs::write(outside.join("secret.onnx"), b"secret").ok()?;
        // Existing links from an earlier process are fine.
        let _ = std::os::unix::fs::symlink(&outside, model.join("outdir"));
        let _ = std::os::unix::fs::symlink(outside.join("secret.onnx"), model.join("escape.onnx"));
        let _ = std::os::unix::fs::symlink(model.join("no-such-file"), model.join("dangling.onnx"));
        std::fs::canonicalize(&model).ok()
    })
    .as_deref()
}

/// A model's `manifest.json`, checked against a model directory (`model_fixture`): parse and
/// validate, then resolve every path it names, list and digest the model files, and preprocess a
/// small image when the declared input is small.
///
/// # Panics
///
/// When an accepted path leaves the model directory, or a validated path fails to resolve.
pub fn model_manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some(dir) = model_fixture() else { return };
    let Ok(m) = ModelManifest::parse(text, dir) else { return };
    let root = m.dir().to_path_buf();
    let mut paths = vec![
        ("image.onnx", m.image.onnx.clone()),
        ("text.onnx", m.text.onnx.clone()),
        ("text.tokenizer", m.text.tokenizer.clone()),
    ];
    paths.extend(m.image.external_data.iter().map(|p| ("image.external_data", p.clone())));
    paths.extend(m.text.external_data.iter().map(|p| ("text.external_data", p.clone())));
    paths.extend(m.default_templates.iter().map(|p| ("default_templates", p.clone())));
    for (field, rel) in paths {
        let p = m.resolve(field, &rel).unwrap_or_else(|e| panic!("{field} {rel:?} validated, then refused: {e}"));
        assert!(stays_inside(&root, &p), "{field} {rel:?} resolves to {}, outside {}", p.display(), root.display());
    }
    let _ = m.warnings();
    let _ = m.preprocessing();
    if let Ok(files) = m.files() {
        for f in files {
            assert!(
                stays_inside(&root, &f.path),
                "model file {:?} is {}, outside the model",
                f.relative,
                f.path.display()
            );
        }
    }
    let small = m.image.size.iter().all(|&s| s <= 256) && m.image.resize_to.is_none_or(|r| r <= 256);
    if small {
        let pre = Preprocessor::new(&m.image);
        let img = image::RgbImage::from_fn(12, 7, |x, y| image::Rgb([x as u8 * 20, y as u8 * 30, 128]));
        let _ = pre.preprocess(&img);
    }
}

/// Operations per [`stateful`] input at most.
pub const STATEFUL_MAX_OPS: usize = 64;
/// Record ids of [`stateful`] are `0..STATEFUL_IDS`.
const STATEFUL_IDS: u8 = 16;
/// Rows that trigger the automatic flush after a commit in [`stateful`].
const STATEFUL_FLUSH_ROWS: usize = 8;
/// User fields of the collection at most (`k` plus those added).
const STATEFUL_MAX_FIELDS: usize = 5;
/// The collection of [`stateful`].
const COLLECTION: &str = "c";

/// A live record of the model.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    vector: Vec<f32>,
    fields: BTreeMap<String, Value>,
}

/// The committed state of the collection: user fields in order, live rows by id.
#[derive(Debug, Clone, PartialEq, Default)]
struct Collection {
    fields: Vec<(String, FieldType)>,
    rows: BTreeMap<u64, Row>,
}

/// The committed state of the database (`None`: the collection does not exist yet).
type Model = Option<Collection>;

/// A component of a test vector: never zero.
fn component(bits: u8) -> f32 {
    f32::from(bits & 3) - 1.5
}

/// The record `id` written with value byte `v` under `fields`: a 4-d vector, and each field set or
/// null by a bit of `v`.
fn record(id: u64, v: u8, fields: &[(String, FieldType)]) -> (NewRecord, Row) {
    let vector = vec![component(v), component(v >> 2), component(v >> 4), id as f32 / 16.0];
    let mut values = BTreeMap::new();
    for (j, (name, ty)) in fields.iter().enumerate() {
        if v.rotate_left(j as u32) & 0x40 == 0 {
            continue;
        }
        let value = match ty {
            FieldType::Integer => Value::Integer(i64::from(v) - 100),
            FieldType::Float => Value::Float(f64::from(v) / 8.0),
            FieldType::Bool => Value::Bool(v & 1 == 1),
            _ => Value::Keyword(format!("v{}", v % 5)),
        };
        values.insert(name.clone(), value);
    }
    let rec = NewRecord { id, vector: vector.clone(), fields: values.clone().into_iter().collect() };
    (rec, Row { vector, fields: values })
}

/// The input bytes, one at a time (zeros once they run out).
struct Input<'a>(std::slice::Iter<'a, u8>);

impl Input<'_> {
    fn next(&mut self) -> Option<u8> {
        self.0.next().copied()
    }
    fn byte(&mut self) -> u8 {
        self.next().unwrap_or(0)
    }
}

/// One operation of a write transaction.
#[derive(Debug, Clone, Copy)]
enum TxOp {
    Upsert(u64, u8),
    Insert(u64, u8),
    Delete(u64),
}

/// The visible state of the collection, read through `get` of every listed id; checks that
/// `count` agrees and that `get` finds nothing else in the id space.
fn observe(db: &Db) -> Model {
    let col = db.snapshot().collection(COLLECTION).ok()?;
    let fields = col.schema().user_fields().iter().map(|f| (f.name.clone(), f.ty)).collect();
    let mut rows = BTreeMap::new();
    for id in col.ids().unwrap_or_else(|e| panic!("listing ids: {e}")) {
        let r = col.get(id).unwrap_or_else(|e| panic!("get({id}): {e}"));
        let r = r.unwrap_or_else(|| panic!("id {id} is listed but get finds nothing"));
        let row = Row { vector: r.vector, fields: r.fields.into_iter().collect() };
        assert!(rows.insert(id, row).is_none(), "id {id} is listed twice");
    }
    assert_eq!(col.count(), rows.len() as u64, "count disagrees with the listed ids");
    for id in 0..u64::from(STATEFUL_IDS) {
        let found = col.get(id).unwrap_or_else(|e| panic!("get({id}): {e}")).is_some();
        assert_eq!(found, rows.contains_key(&id), "get({id}) disagrees with the listed ids");
    }
    Some(Collection { fields, rows })
}

/// Exact search returns the brute-force top `min(k, live)`; graph search returns `min(k, live)`
/// distinct live ids.
fn check_search(col: &CollectionSnapshot, model: &Collection, k: usize, q: u8) {
    let query = [component(q), component(q >> 2), component(q >> 4), component(q >> 6)];
    let want = k.min(model.rows.len());
    let mut scratch = SearchScratch::default();
    let exact = col.search_exact(&query, k, &mut scratch).unwrap_or_else(|e| panic!("exact search: {e}"));
    assert_eq!(exact.len(), want, "exact search for {k} of {} live rows", model.rows.len());
    let mut scores: Vec<f32> =
        model.rows.values().map(|r| r.vector.iter().zip(&query).map(|(a, b)| a * b).sum()).collect();
    scores.sort_by(|a, b| b.total_cmp(a));
    for (hit, best) in exact.iter().zip(&scores) {
        assert!(model.rows.contains_key(&hit.id), "exact search returned dead id {}", hit.id);
        assert!((hit.score - best).abs() < 1e-3, "exact search scored {} where brute force has {best}", hit.score);
    }
    let hits = col.search(&query, &SearchParams::k(k), &mut scratch).unwrap_or_else(|e| panic!("search: {e}"));
    assert_eq!(hits.len(), want, "search for {k} of {} live rows: {hits:?}", model.rows.len());
    let ids: HashSet<u64> = hits.iter().map(|h| h.id).collect();
    assert_eq!(ids.len(), hits.len(), "search returned an id twice: {hits:?}");
    assert!(ids.iter().all(|id| model.rows.contains_key(id)), "search returned a dead id: {hits:?}");
}

/// A database in a scratch directory, its fault-injecting file system, and the model.
struct Stateful {
    db: Option<Db>,
    vfs: FaultVfs,
    model: Model,
    dir: tempfile_free::Dir,
}

impl Stateful {
    fn open(&self) -> crate::Result<Db> {
        Db::builder(self.dir.path())
            .vfs(Arc::new(self.vfs.clone()))
            .flush_rows(STATEFUL_FLUSH_ROWS)
            .index_threads(1)
            .open()
    }

    /// The database reopened: it must show one of `candidates`, which becomes the model.
    fn reopen(&mut self, what: &str, candidates: &[&Model]) {
        self.db = None;
        let db = match self.open() {
            Ok(db) => db,
            Err(e) => {
                assert!(self.vfs.tripped(), "reopen ({what}) failed without an injected fault: {e}");
                self.vfs.disarm();
                self.open()
                    .unwrap_or_else(|e2| panic!("reopen ({what}) with faults disarmed failed: {e2} (before: {e})"))
            }
        };
        let seen = observe(&db);
        assert!(
            candidates.contains(&&seen),
            "after {what} the database shows {seen:?}; the model allows {candidates:?}"
        );
        self.model = seen;
        self.db = Some(db);
        self.check(7, 0x5A);
    }

    /// An operation failed: legitimate only when a fault was injected. Reopens with faults
    /// disarmed; the database must show the state before or after the operation.
    fn failed(&mut self, what: &str, err: &dyn std::fmt::Display, before: &Model, after: &Model) {
        assert!(self.vfs.tripped(), "{what} failed without an injected fault: {err}");
        self.vfs.disarm();
        self.reopen(&format!("{what} failed ({err})"), &[before, after]);
    }

    /// Runs a mutating operation that the model says succeeds (`expect_ok`, with state `after`) or
    /// fails before any I/O.
    fn mutate(&mut self, what: &str, after: Model, expect_ok: bool, f: impl FnOnce(&Db) -> crate::Result<()>) {
        let Some(db) = self.db.clone() else { return };
        let before = self.model.clone();
        match f(&db) {
            Ok(()) if expect_ok => self.model = after,
            Ok(()) => panic!("{what} succeeded; the model says it fails"),
            Err(_) if !expect_ok => {}
            Err(e) => {
                drop(db);
                self.failed(what, &e, &before, &after);
            }
        }
    }

    /// Checks the open database against the model: the whole visible state, then a search.
    fn check(&self, k: usize, q: u8) {
        let Some(db) = &self.db else { return };
        let seen = observe(db);
        assert_eq!(seen, self.model, "the database disagrees with the model");
        if let (Some(m), Ok(col)) = (&self.model, db.snapshot().collection(COLLECTION)) {
            check_search(&col, m, k, q);
        }
    }

    fn txn(&mut self, input: &mut Input<'_>, commit: bool) {
        let n = 1 + input.byte() % 6;
        let ops: Vec<TxOp> = (0..n)
            .map(|_| {
                let (kind, v) = (input.byte(), input.byte());
                let id = u64::from(kind % STATEFUL_IDS);
                match kind / STATEFUL_IDS % 3 {
                    0 => TxOp::Upsert(id, v),
                    1 => TxOp::Insert(id, v),
                    _ => TxOp::Delete(id),
                }
            })
            .collect();
        let Some(db) = self.db.clone() else { return };
        let before = self.model.clone();
        let Some(col) = &before else {
            assert!(db.begin_write(COLLECTION).is_err(), "a transaction began on a missing collection");
            return;
        };
        let mut rows = col.rows.clone();
        let result = run_txn(&db, col, &ops, commit, &mut rows);
        let after = if commit { Some(Collection { fields: col.fields.clone(), rows }) } else { before.clone() };
        match result {
            Ok(info) => {
                if let Some(e) = info.and_then(|i| i.flush_error) {
                    assert!(self.vfs.tripped(), "the automatic flush failed without an injected fault: {e}");
                }
                self.model = after;
            }
            Err(e) => {
                drop(db);
                self.failed(&format!("transaction {ops:?}"), &e, &before, &after);
            }
        }
    }

    fn add_field(&mut self, b: u8) {
        let ty = [FieldType::Keyword, FieldType::Integer, FieldType::Float, FieldType::Bool][usize::from(b % 4)];
        let fields = self.model.as_ref().map_or(0, |c| c.fields.len());
        let name = if b & 0x80 != 0 || fields >= STATEFUL_MAX_FIELDS { "k".to_owned() } else { format!("f{fields}") };
        let mut after = self.model.clone();
        let ok = after.as_mut().is_some_and(|c| {
            let fresh = c.fields.iter().all(|(n, _)| *n != name);
            c.fields.push((name.clone(), ty));
            fresh
        });
        self.mutate(&format!("add_field {name} {ty:?}"), after, ok, |db| db.add_field(COLLECTION, &name, ty));
    }

    fn step(&mut self, input: &mut Input<'_>) -> bool {
        let Some(op) = input.next() else { return false };
        let exists = self.model.is_some();
        match op % 9 {
            0 => {
                let after = self.model.clone().or_else(|| {
                    Some(Collection { fields: vec![("k".into(), FieldType::Keyword)], rows: BTreeMap::new() })
                });
                let spec = CollectionSpec::new(4, Metric::InnerProduct).field("k", FieldType::Keyword);
                self.mutate("create", after, !exists, |db| db.create_collection(COLLECTION, spec));
            }
            1 => self.txn(input, true),
            2 => self.txn(input, false),
            3 => self.mutate("flush", self.model.clone(), exists, |db| db.flush(COLLECTION)),
            4 => self.mutate("compact", self.model.clone(), exists, |db| db.compact(COLLECTION)),
            5 => {
                let b = input.byte();
                self.add_field(b);
            }
            6 => {
                let model = self.model.clone();
                self.reopen("reopen", &[&model]);
            }
            7 => {
                // EIO fails one operation; ENOSPC (a short write, then every later operation
                // fails: the disk stays full) until the next reopen disarms it.
                let b = input.byte();
                let enospc = b & 0x80 != 0;
                self.vfs.arm(1 + u64::from(b & 0x1F), if enospc { Fault::Enospc } else { Fault::Eio }, enospc);
            }
            _ => {
                let (k, q) = (1 + usize::from(input.byte() % 20), input.byte());
                self.check(k, q);
            }
        }
        true
    }
}

/// Runs one transaction, checking `insert` and `delete` answers against `rows` (updated as the
/// transaction goes); commits it, or drops it when `commit` is false.
fn run_txn(
    db: &Db,
    col: &Collection,
    ops: &[TxOp],
    commit: bool,
    rows: &mut BTreeMap<u64, Row>,
) -> crate::Result<Option<CommitInfo>> {
    let mut tx = db.begin_write(COLLECTION)?;
    for op in ops {
        match *op {
            TxOp::Upsert(id, v) => {
                let (rec, row) = record(id, v, &col.fields);
                tx.upsert(rec)?;
                rows.insert(id, row);
            }
            TxOp::Insert(id, v) => {
                let (rec, row) = record(id, v, &col.fields);
                match tx.insert(rec) {
                    Ok(()) => assert!(rows.insert(id, row).is_none(), "insert of live id {id} was accepted"),
                    Err(crate::Error::DuplicateId { .. }) => {
                        assert!(rows.contains_key(&id), "insert of new id {id} was refused as a duplicate");
                    }
                    Err(e) => return Err(e),
                }
            }
            TxOp::Delete(id) => {
                let existed = tx.delete(id)?;
                assert_eq!(existed, rows.remove(&id).is_some(), "delete({id}) answered {existed}");
            }
        }
    }
    if commit { tx.commit().map(Some) } else { Ok(None) }
}

/// A sequence of API operations on a fresh database whose file system injects faults on demand,
/// checked against a model of the committed state. Each op is one byte (`op % 9`) plus arguments:
///
/// | op | what | arguments |
/// | --- | --- | --- |
/// | 0 | create the collection (4-d, inner product, keyword field `k`) | |
/// | 1, 2 | a transaction of 1..=6 upserts, inserts and deletes; 1 commits, 2 drops it | count, then (kind/id, value) each |
/// | 3, 4 | flush, compact | |
/// | 5 | `add_field` (keyword, integer, float or bool; bit 7 reuses the name `k`) | type |
/// | 6 | reopen (drop, open) | |
/// | 7 | arm a fault at the `1 + (b & 31)`-th next mutating I/O operation, ENOSPC when bit 7 is set, else EIO | b |
/// | 8 | check state and a top-`k` search | k, query |
///
/// At most [`STATEFUL_MAX_OPS`] operations run. When an operation fails, a fault must have been
/// injected; the database is then reopened with faults disarmed and must show the state before
/// or after the failed operation (a commit whose sync failed may or may not be durable), which
/// the model adopts. After each reopen and at the end, the visible state must equal the model.
///
/// # Panics
///
/// On any disagreement with the model (the property the target checks).
pub fn stateful(data: &[u8]) {
    let Some(dir) = tempfile_free::Dir::new() else { return };
    let mut s = Stateful { db: None, vfs: FaultVfs::new(Arc::new(RealVfs), 0, Fault::Eio, false), model: None, dir };
    match s.open() {
        Ok(db) => s.db = Some(db),
        Err(_) => return, // the scratch directory is unusable: nothing to test
    }
    let mut input = Input(data.iter());
    for _ in 0..STATEFUL_MAX_OPS {
        if !s.step(&mut input) {
            break;
        }
    }
    s.check(10, 0xC3);
    s.vfs.disarm();
    let model = s.model.clone();
    s.reopen("the final reopen", &[&model]);
}

/// A scratch directory removed on drop, without a dev-dependency.
mod tempfile_free {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Where scratch directories go: `/dev/shm` when there is one (syncs cost nothing there),
    /// else the system's temporary directory.
    pub fn base() -> PathBuf {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() }
    }

    #[derive(Debug)]
    pub struct Dir(PathBuf);

    impl Dir {
        /// A fresh directory under [`base`].
        pub fn new() -> Option<Dir> {
            Dir::new_in(&base())
        }

        /// A fresh directory under `parent`.
        pub fn new_in(parent: &Path) -> Option<Dir> {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let p = parent.join(format!("skysift-fuzz-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).ok()?;
            Some(Dir(p))
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Every target by name, for the corpus replay.
pub const TARGETS: [(&str, skysift_storage::fuzzing::Target); 7] = [
    ("metadata", metadata),
    ("repl_line", repl_line),
    ("filter_parser", filter_parser),
    ("image_decode", image_decode),
    ("sidecar", sidecar),
    ("model_manifest", model_manifest),
    ("stateful", stateful),
];
